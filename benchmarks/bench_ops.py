"""Section "op overhead": what one elementwise operation costs in tinyai beyond its arithmetic.

On a 10-element array the arithmetic itself takes well under a microsecond,
so the time measured is almost all bookkeeping: building the output Variable,
linking it into the graph, and in backward walking the graph and creating the
gradient Variables. That overhead is what a user feels on small models.

Each measurement runs a chain of ``CHAIN`` operations of one kind,
``y = y + a_i``, ``y = y * a_i`` or ``y = tanh(y)``, then one backward pass,
and divides by ``CHAIN``. The ``a_i`` are leaves that require a gradient (as
parameters do), so backward computes both operands' gradients. The NumPy
column does the same arithmetic by hand, forward and backward, with no graph.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from benchmarks.common import compare, format_table, pass_or_miss

SECTION = "op_overhead"
TITLE = "Op overhead: microseconds per elementwise op on a 10-element float32 array"

SIZE = 10
CHAIN = 100
TARGET_US = 10.0  # forward and backward together, per op
KINDS = ("add", "mul", "tanh", "mixed")


def _kind_of_step(kind: str, i: int) -> str:
    return ("add", "mul", "tanh")[i % 3] if kind == "mixed" else kind


def tinyai_chain(kind: str, with_backward: bool) -> Callable[[], Any]:
    """A closure that runs the tinyai chain once (and its backward pass if asked)."""
    import tinyai.functions as F
    from tinyai.autograd import Variable

    rng = np.random.default_rng(0)
    x = Variable(rng.standard_normal(SIZE).astype(np.float32))
    leaves = [Variable(rng.uniform(0.5, 1.0, SIZE).astype(np.float32)) for _ in range(CHAIN)]
    steps = [_kind_of_step(kind, i) for i in range(CHAIN)]
    seed = np.ones(SIZE, dtype=np.float32)

    def run() -> None:
        y = x
        for step, a in zip(steps, leaves):
            if step == "add":
                y = y + a
            elif step == "mul":
                y = y * a
            else:
                y = F.tanh(y)
        if with_backward:
            x.grad = None
            for a in leaves:
                a.grad = None
            y.backward(seed)

    return run


def numpy_chain(kind: str) -> Callable[[], Any]:
    """The same chain in plain NumPy: forward keeps what backward needs, backward by hand."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(SIZE).astype(np.float32)
    leaves = [rng.uniform(0.5, 1.0, SIZE).astype(np.float32) for _ in range(CHAIN)]
    steps = [_kind_of_step(kind, i) for i in range(CHAIN)]
    seed = np.ones(SIZE, dtype=np.float32)

    def run() -> None:
        saved = []
        y = x
        for step, a in zip(steps, leaves):
            if step == "add":
                y = y + a
                saved.append(None)
            elif step == "mul":
                saved.append(y)
                y = y * a
            else:
                y = np.tanh(y)
                saved.append(y)
        gy = seed
        grads = [None] * CHAIN
        for i in range(CHAIN - 1, -1, -1):
            step = steps[i]
            if step == "add":
                grads[i] = gy  # both operands receive gy unchanged
            elif step == "mul":
                grads[i] = gy * saved[i]
                gy = gy * leaves[i]
            else:
                gy = gy * (1 - saved[i] * saved[i])
        return gy

    return run


def run(quick: bool = False) -> dict[str, Any]:
    """Measure every kind of op; returns the rows and the target verdict."""
    repeat = 7 if quick else 41
    rows = []
    for kind in KINDS:
        t = compare({"forward": tinyai_chain(kind, with_backward=False),
                     "forward_backward": tinyai_chain(kind, with_backward=True),
                     "numpy": numpy_chain(kind)}, repeat=repeat)
        per_op = {name: timing.median / CHAIN * 1e6 for name, timing in t.items()}
        best = {name: timing.best / CHAIN * 1e6 for name, timing in t.items()}
        rows.append({
            "op": kind,
            "tinyai_forward_us": per_op["forward"],
            "tinyai_forward_backward_us": per_op["forward_backward"],
            "numpy_forward_backward_us": per_op["numpy"],
            "overhead_us": per_op["forward_backward"] - per_op["numpy"],
            "best_us": best,
            "spread": {name: timing.spread for name, timing in t.items()},
            "target_us": TARGET_US,
            "pass": per_op["forward_backward"] < TARGET_US,
        })
    return {"size": SIZE, "chain": CHAIN, "dtype": "float32", "repeat": repeat, "rows": rows}


def report(data: dict[str, Any]) -> str:
    """The section as a printed table."""
    rows = [[r["op"], f"{r['tinyai_forward_us']:.2f}", f"{r['tinyai_forward_backward_us']:.2f}",
             f"{r['numpy_forward_backward_us']:.2f}", f"{r['overhead_us']:.2f}",
             f"{r['best_us']['forward_backward']:.2f}", f"{max(r['spread'].values()) * 100:.0f}%",
             f"{pass_or_miss(r['pass'])} (< {r['target_us']:g})"] for r in data["rows"]]
    headers = ["op", "tinyai fwd", "tinyai fwd+bwd", "NumPy fwd+bwd", "overhead", "best fwd+bwd", "IQR", "target fwd+bwd"]
    return format_table(headers, rows) + f"\n(µs per op, median (best: fastest repeat) of {data['repeat']} repeats of a chain of {data['chain']})"
