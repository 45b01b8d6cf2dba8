"""Section "mlp step": one SGD step of a 784-128-64-10 ReLU MLP, tinyai against hand-written NumPy.

The tinyai step is written with ``tinyai.functions`` only (``F.linear``,
``F.relu``, ``F.softmax_cross_entropy``), then ``loss.backward()`` and an
in-place update of each parameter. The NumPy step is what a careful person
writes by hand: the same forward pass, the backward pass derived on paper
(no gradient for the input batch, which nobody needs), the same update.
The ratio of the two times is tinyai's price for not deriving gradients by
hand; at batch 256 the matrix products should dominate and the ratio
approach 1.

Both run in float32 with as many BLAS threads as the machine gives them.
Before timing, one step of each from the same starting weights is compared,
so the benchmark cannot quietly time two different computations.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from benchmarks.common import compare, format_table, pass_or_miss

SECTION = "mlp_step"
TITLE = "MLP step: one SGD step of a 784-128-64-10 ReLU MLP with softmax cross-entropy (float32)"

SIZES = (784, 128, 64, 10)
LR = 1e-3
TARGETS = {256: 1.2, 32: 1.5}  # batch size -> largest acceptable tinyai / NumPy time ratio


def initial_params(seed: int = 0) -> list[np.ndarray]:
    """[W1, b1, W2, b2, W3, b3] with He-scaled normal weights and zero biases, float32."""
    rng = np.random.default_rng(seed)
    params = []
    for n_in, n_out in zip(SIZES[:-1], SIZES[1:]):
        params.append((rng.standard_normal((n_in, n_out)) * np.sqrt(2.0 / n_in)).astype(np.float32))
        params.append(np.zeros(n_out, dtype=np.float32))
    return params


def batch(size: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """A random input batch (size, 784) in float32 and integer labels in [0, 10)."""
    rng = np.random.default_rng(seed)
    return rng.random((size, SIZES[0]), dtype=np.float32), rng.integers(0, SIZES[-1], size)


def numpy_step(params: list[np.ndarray], x: np.ndarray, labels: np.ndarray) -> Callable[[], float]:
    """One SGD step by hand; updates ``params`` in place and returns the loss."""
    W1, b1, W2, b2, W3, b3 = params
    rows = np.arange(len(labels))
    n = len(labels)

    def step() -> float:
        # forward
        z1 = x @ W1 + b1
        h1 = np.maximum(z1, 0)
        z2 = h1 @ W2 + b2
        h2 = np.maximum(z2, 0)
        z3 = h2 @ W3 + b3
        shifted = z3 - z3.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        total = e.sum(axis=1, keepdims=True)
        loss = float(np.mean(np.log(total[:, 0]) - shifted[rows, labels]))
        # backward: d loss / d z3 = (softmax - onehot) / n
        g3 = e / total
        g3[rows, labels] -= 1
        g3 *= 1.0 / n
        gW3, gb3 = h2.T @ g3, g3.sum(axis=0)
        g2 = (g3 @ W3.T) * (z2 > 0)
        gW2, gb2 = h1.T @ g2, g2.sum(axis=0)
        g1 = (g2 @ W2.T) * (z1 > 0)
        gW1, gb1 = x.T @ g1, g1.sum(axis=0)
        # update in place
        for p, g in zip(params, (gW1, gb1, gW2, gb2, gW3, gb3)):
            p -= LR * g
        return loss

    return step


def tinyai_step(params: list[np.ndarray], x: np.ndarray, labels: np.ndarray) -> Callable[[], float]:
    """The same step with tinyai: forward with F, ``backward()``, in-place update."""
    import tinyai.functions as F
    from tinyai.autograd import Variable

    W1, b1, W2, b2, W3, b3 = variables = [Variable(p) for p in params]

    def step() -> float:
        xv = Variable(x, requires_grad=False)
        tv = Variable(labels, requires_grad=False)
        h1 = F.relu(F.linear(xv, W1, b1))
        h2 = F.relu(F.linear(h1, W2, b2))
        loss = F.softmax_cross_entropy(F.linear(h2, W3, b3), tv)
        for p in variables:
            p.grad = None
        loss.backward()
        for p in variables:
            p.data -= LR * p.grad.data
        return float(loss.data)

    return step


def check_same_step(batch_size: int) -> float:
    """Run one step of each from the same weights; raise if losses or new weights differ."""
    x, labels = batch(batch_size)
    by_hand, by_tinyai = initial_params(), initial_params()
    loss_hand = numpy_step(by_hand, x, labels)()
    loss_tinyai = tinyai_step(by_tinyai, x, labels)()
    worst = max(float(np.max(np.abs(a - b))) for a, b in zip(by_hand, by_tinyai))
    if abs(loss_hand - loss_tinyai) > 1e-4 or worst > 1e-5:
        raise RuntimeError(f"mlp step: tinyai and NumPy disagree at batch {batch_size} "
                           f"(losses {loss_tinyai} and {loss_hand}, largest weight difference {worst})")
    return worst


def run(quick: bool = False) -> dict[str, Any]:
    """Time both steps at each batch size of TARGETS; returns rows with ratios and verdicts."""
    repeat = 7 if quick else 41
    rows = []
    for batch_size, target in TARGETS.items():
        difference = check_same_step(batch_size)
        x, labels = batch(batch_size)
        t = compare({"tinyai": tinyai_step(initial_params(), x, labels),
                     "numpy": numpy_step(initial_params(), x, labels)}, repeat=repeat, target_seconds=0.05)
        ratio = t["tinyai"].median / t["numpy"].median
        rows.append({
            "batch": batch_size,
            "tinyai_ms": t["tinyai"].median * 1e3,
            "numpy_ms": t["numpy"].median * 1e3,
            "overhead_ms": (t["tinyai"].median - t["numpy"].median) * 1e3,
            "spread": {name: timing.spread for name, timing in t.items()},
            "ratio": ratio,
            "best_ms": {name: timing.best * 1e3 for name, timing in t.items()},
            "best_ratio": t["tinyai"].best / t["numpy"].best,
            "target_ratio": target,
            "pass": ratio <= target,
            "max_weight_difference_after_one_step": difference,
        })
    return {"sizes": list(SIZES), "dtype": "float32", "repeat": repeat, "rows": rows}


def report(data: dict[str, Any]) -> str:
    """The section as a printed table."""
    rows = [[r["batch"], f"{r['tinyai_ms']:.3f}", f"{r['numpy_ms']:.3f}", f"{r['overhead_ms']:.3f}",
             f"{max(r['spread'].values()) * 100:.0f}%", f"{r['ratio']:.2f}x", f"{r['best_ratio']:.2f}x",
             f"{pass_or_miss(r['pass'])} (<= {r['target_ratio']:g}x)"] for r in data["rows"]]
    headers = ["batch", "tinyai ms", "NumPy ms", "overhead ms", "IQR", "ratio", "best ratio", "target"]
    note = (f"\n(ms per step, median of {data['repeat']} interleaved repeats; ratio: of the medians, "
            "best ratio: of the fastest repeats)")
    return format_table(headers, rows) + note
