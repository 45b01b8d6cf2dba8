"""Section "conv": convolution networks against PyTorch on the same CPU.

Four measurements, each at 1 and at 2 BLAS threads (PyTorch gets the same
number of threads), the thread counts interleaved round by round in this one
process so that a busy minute of the machine hurts every column alike:

* **CNN step** — one SGD step at batch 64 of the network of issue 12:
  conv 3x3 1->16 pad 1, ReLU, max-pool 2, conv 3x3 16->32 pad 1, ReLU,
  max-pool 2, linear 1568->10, softmax cross-entropy (382 MFLOP). tinyai
  runs it as a user would (``SimpleConvNet`` inside a ``Model``, ``SGD``);
  the NumPy column is the same step written by hand with the plain im2col of
  the lesson; PyTorch runs ``torch.nn`` layers. Target: tinyai at most 1.0x
  PyTorch's time, as the median over 31 rounds of the ratio within a round
  (tinyai and PyTorch timed one after the other, in alternating order): on a
  shared machine the ratio of two medians taken at different moments moved
  between 0.95x and 1.02x from one run to the next.
* **conv2d** forward and backward, 64->64 channels, 3x3, 32x32 images, batch
  32, as achieved GFLOP/s against ``np.matmul`` on the same three GEMM shapes
  in the same run. Target: at least 50%.
* **pooling** — max-pool and avg-pool 2x2 forward and backward, in GB/s of
  the arrays read and written, against ``np.copyto`` of the same bytes.
* **MNIST CNN epoch** — the ``mnist-cnn`` example's epoch (8,000 images,
  batch 64, Adam) with tinyai's Trainer, against the same model and loop in
  PyTorch.

Before timing, one step of each implementation from the same weights is
compared, so the benchmark cannot time two different computations. Without
PyTorch the section still runs and reports tinyai against NumPy.
"""
from __future__ import annotations

import gc
import statistics
import time
from typing import Any, Callable

import numpy as np

from benchmarks.common import Timing, calls_for, format_table, pass_or_miss

SECTION = "conv"
TITLE = "Convolution: a CNN step and an MNIST epoch against PyTorch, conv2d and pooling against NumPy"

THREADS = (1, 2)
BATCH = 64
LR = 0.01
CNN_FLOP = 382e6  # per step, forward and backward (the count)
STEP_TARGET = 1.0  # tinyai / PyTorch
STEP_REPEAT, STEP_REPEAT_QUICK = 31, 3  # rounds of the CNN step comparison (about 0.3 s each per thread count)
GEMM_TARGET = 0.5  # tinyai conv2d GFLOP/s / matmul GFLOP/s


# -- threads ---------------------------------------------------------------------------------
class Threads:
    """Sets NumPy's BLAS and PyTorch to ``n`` threads for a block of timing."""

    def __init__(self, torch: Any) -> None:
        from threadpoolctl import ThreadpoolController  # dev extra

        self.controller = ThreadpoolController()
        self.torch = torch

    def set(self, n: int) -> None:
        self.controller.limit(limits=n, user_api="blas")
        if self.torch is not None:
            self.torch.set_num_threads(n)


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        return None
    return torch


def interleaved(cases: dict[tuple[int, str], Callable[[], Any]], threads: Threads, repeat: int,
                target_seconds: float = 0.1, warmup: int = 2,
                samples: dict[tuple[int, str], list[float]] | None = None) -> dict[tuple[int, str], Timing]:
    """Time every (threads, name) case, round after round: in each round every
    thread count in turn, and at each count every implementation in turn,
    in reverse order every other round (so that none always runs right after
    the same other). ``samples``, if given, receives each case's seconds per
    call round by round, for ratios paired within a round."""
    counts = sorted({n for n, _ in cases})
    calls = {}
    for n in counts:
        threads.set(n)
        for key, fn in cases.items():
            if key[0] == n:
                for _ in range(warmup):
                    fn()
                calls[key] = calls_for(fn, target_seconds)
    samples = {} if samples is None else samples
    samples.update({key: [] for key in cases})
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for round_number in range(repeat):
            for n in counts:
                threads.set(n)
                in_turn = [(key, fn) for key, fn in cases.items() if key[0] == n]
                for key, fn in in_turn if round_number % 2 == 0 else reversed(in_turn):
                    start = time.perf_counter()
                    for _ in range(calls[key]):
                        fn()
                    samples[key].append((time.perf_counter() - start) / calls[key])
    finally:
        if gc_was_enabled:
            gc.enable()
    timings = {}
    for key, values in samples.items():
        if len(values) > 1:
            q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
        else:
            q1 = median = q3 = values[0]
        timings[key] = Timing(median, min(values), q1, q3, repeat, calls[key])
    return timings


# -- the CNN step, three ways ----------------------------------------------------------------------
def cnn_weights(seed: int = 0) -> list[np.ndarray]:
    """[W1, b1, W2, b2, W3, b3] of the CNN, float32, He-scaled, layouts as tinyai and PyTorch use them
    (conv weights (out, in, kh, kw); the linear weight (in, out) as in tinyai)."""
    rng = np.random.default_rng(seed)

    def he(shape: tuple[int, ...], fan_in: int) -> np.ndarray:
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    return [he((16, 1, 3, 3), 9), np.zeros(16, np.float32), he((32, 16, 3, 3), 144), np.zeros(32, np.float32),
            he((1568, 10), 1568), np.zeros(10, np.float32)]


def cnn_batch(seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((BATCH, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, BATCH)


def tinyai_cnn_step(weights: list[np.ndarray], x: np.ndarray, labels: np.ndarray) -> Callable[[], float]:
    """The step as a user writes it: SimpleConvNet in a Model, SGD, loss.backward()."""
    import tinyai.functions as F
    from tinyai.autograd import Variable
    from tinyai.nn import SimpleConvNet
    from tinyai.optim import SGD
    from tinyai.training import Model

    model = Model("cnn", SimpleConvNet())
    model(Variable(x[:1], requires_grad=False))  # builds the lazy parts, if any
    params = dict(model.named_params())
    block = model.block
    for layer, (w, b) in zip((block.conv1, block.conv2, block.fc), zip(weights[::2], weights[1::2])):
        layer.W.data[...] = w
        layer.b.data[...] = b
    optimizer = SGD(model, lr=LR)
    xv, tv = Variable(x, requires_grad=False), Variable(labels, requires_grad=False)
    assert len(params) == 6

    def step() -> float:
        loss = F.softmax_cross_entropy(model(xv), tv)
        optimizer.clear_grads()
        loss.backward()
        optimizer.update()
        return float(loss.data)

    return step


def _plain_im2col(x: np.ndarray, k: int, pad: int) -> np.ndarray:
    """(N, C, H, W) -> (N, C, k, k, H, W) windows of a stride-1 'same' convolution, one slice copy per offset."""
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    col = np.empty((n, c, k, k, h, w), dtype=x.dtype)
    for i in range(k):
        for j in range(k):
            col[:, :, i, j] = xp[:, :, i:i + h, j:j + w]
    return col


def _plain_col2im(col: np.ndarray, pad: int) -> np.ndarray:
    n, c, k, _, h, w = col.shape
    img = np.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=col.dtype)
    for i in range(k):
        for j in range(k):
            img[:, :, i:i + h, j:j + w] += col[:, :, i, j]
    return img[:, :, pad:pad + h, pad:pad + w]


def numpy_cnn_step(weights: list[np.ndarray], x: np.ndarray, labels: np.ndarray) -> Callable[[], float]:
    """The same step by hand: the plain im2col, tensordot, pooling by reshape, backward derived on paper."""
    W1, b1, W2, b2, W3, b3 = weights
    rows = np.arange(len(labels))

    def conv(a: np.ndarray, W: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        col = _plain_im2col(a, 3, 1)
        y = np.tensordot(W, col, axes=((1, 2, 3), (1, 2, 3))).transpose(1, 0, 2, 3) + b[:, None, None]
        return y, col

    def conv_backward(gy: np.ndarray, col: np.ndarray, W: np.ndarray, need_gx: bool) -> tuple:
        gW = np.tensordot(gy, col, axes=((0, 2, 3), (0, 4, 5)))
        gb = gy.sum(axis=(0, 2, 3))
        gx = _plain_col2im(np.tensordot(W, gy, axes=(0, 1)).transpose(3, 0, 1, 2, 4, 5), 1) if need_gx else None
        return gx, gW, gb

    def pool(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n, c, h, w = a.shape
        windows = a.reshape(n, c, h // 2, 2, w // 2, 2)
        y = windows.max(axis=(3, 5))
        return y, windows == y[:, :, :, None, :, None]

    def pool_backward(gy: np.ndarray, hits: np.ndarray) -> np.ndarray:
        n, c, h, _, w, _ = hits.shape
        return (hits * gy[:, :, :, None, :, None]).reshape(n, c, 2 * h, 2 * w)

    def step() -> float:
        z1, col1 = conv(x, W1, b1)
        r1 = z1 > 0
        p1, hits1 = pool(z1 * r1)
        z2, col2 = conv(p1, W2, b2)
        r2 = z2 > 0
        p2, hits2 = pool(z2 * r2)
        flat = p2.reshape(BATCH, -1)
        logits = flat @ W3 + b3
        shifted = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        total = e.sum(axis=1, keepdims=True)
        loss = float(np.mean(np.log(total[:, 0]) - shifted[rows, labels]))
        g = e / total
        g[rows, labels] -= 1
        g *= 1.0 / BATCH
        gW3, gb3 = flat.T @ g, g.sum(axis=0)
        g = pool_backward((g @ W3.T).reshape(p2.shape), hits2) * r2
        gp1, gW2, gb2 = conv_backward(g, col2, W2, True)
        g = pool_backward(gp1, hits1) * r1
        _, gW1, gb1 = conv_backward(g, col1, W1, False)
        for p, gp in zip(weights, (gW1, gb1, gW2, gb2, gW3, gb3)):
            p -= LR * gp
        return loss

    return step


def torch_cnn_step(torch: Any, weights: list[np.ndarray], x: np.ndarray, labels: np.ndarray) -> Callable[[], float]:
    nn = torch.nn
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(1568, 10))
    with torch.no_grad():
        for layer, (w, b) in zip((model[0], model[3], model[7]), zip(weights[::2], weights[1::2])):
            layer.weight.copy_(torch.from_numpy(w.T.copy() if w.ndim == 2 else w))
            layer.bias.copy_(torch.from_numpy(b))
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    xt, tt = torch.from_numpy(x), torch.from_numpy(labels)

    def step() -> float:
        loss = torch.nn.functional.cross_entropy(model(xt), tt)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    return step


def check_same_step(torch: Any) -> float:
    """One step of each from the same weights; the largest loss difference (raises when they disagree)."""
    x, labels = cnn_batch()
    losses = {"tinyai": tinyai_cnn_step(cnn_weights(), x, labels)(),
              "numpy": numpy_cnn_step(cnn_weights(), x, labels)()}
    if torch is not None:
        losses["pytorch"] = torch_cnn_step(torch, cnn_weights(), x, labels)()
    # A second step shows that the updates agree too.
    second = {"tinyai": tinyai_cnn_step(cnn_weights(), x, labels), "numpy": numpy_cnn_step(cnn_weights(), x, labels)}
    seconds = {}
    for name, step in second.items():
        step()
        seconds[name] = step()
    worst = max(abs(v - losses["numpy"]) for v in losses.values())
    worst = max(worst, abs(seconds["tinyai"] - seconds["numpy"]))
    if worst > 1e-4:
        raise RuntimeError(f"conv: the CNN steps disagree (first-step losses {losses}, second {seconds})")
    return worst


# -- conv2d against matmul --------------------------------------------------------------------
CONV = {"batch": 32, "channels": 64, "size": 32, "kernel": 3}


def conv2d_cases() -> tuple[Callable[[], Any], Callable[[], Any], float]:
    """(tinyai conv2d forward+backward, the same three GEMMs by np.matmul, FLOP of either)."""
    import tinyai.functions as F
    from tinyai.autograd import Variable

    n, c, s, k = CONV["batch"], CONV["channels"], CONV["size"], CONV["kernel"]
    rng = np.random.default_rng(0)
    x = Variable(rng.standard_normal((n, c, s, s), dtype=np.float32))
    W = Variable(rng.standard_normal((c, c, k, k), dtype=np.float32) * 0.05)
    b = Variable(np.zeros(c, np.float32))
    gy = rng.standard_normal((n, c, s, s), dtype=np.float32)

    def tinyai_conv() -> None:
        x.grad = W.grad = b.grad = None
        F.conv2d(x, W, b, pad=1).backward(gy)

    # The GEMMs of a convolution: y = W (O, K) @ col (K, N L); gW = gy (O, N L) @ col^T; gcol = W^T @ gy.
    kk, nl = c * k * k, n * s * s
    A, B = rng.standard_normal((c, kk), dtype=np.float32), rng.standard_normal((kk, nl), dtype=np.float32)
    G = rng.standard_normal((c, nl), dtype=np.float32)
    out1, out2, out3 = np.empty((c, nl), np.float32), np.empty((c, kk), np.float32), np.empty((kk, nl), np.float32)

    def matmuls() -> None:
        np.matmul(A, B, out=out1)
        np.matmul(G, B.T, out=out2)
        np.matmul(A.T, G, out=out3)

    flop = 3 * 2.0 * c * kk * nl
    return tinyai_conv, matmuls, flop


# -- pooling against copy ----------------------------------------------------------------------
POOL_SHAPE = (32, 64, 32, 32)


def pooling_cases() -> dict[str, tuple[Callable[[], Any], float]]:
    """name -> (fn, bytes read and written). The pools move x in, y out, gy in, gx out."""
    import tinyai.functions as F
    from tinyai.autograd import Variable

    rng = np.random.default_rng(0)
    x = Variable(rng.standard_normal(POOL_SHAPE, dtype=np.float32))
    gy = rng.standard_normal((POOL_SHAPE[0], POOL_SHAPE[1], POOL_SHAPE[2] // 2, POOL_SHAPE[3] // 2),
                             dtype=np.float32)
    src, dst = x.data.copy(), np.empty_like(x.data)

    def pool_case(pool: Callable) -> Callable[[], None]:
        def run() -> None:
            x.grad = None
            pool(x, 2).backward(gy)
        return run

    moved = 2 * x.data.nbytes + 2 * gy.nbytes
    return {"max_pool2d": (pool_case(F.max_pool2d), moved),
            "avg_pool2d": (pool_case(F.avg_pool2d), moved),
            "np.copyto": (lambda: np.copyto(dst, src), 2 * x.data.nbytes)}


# -- the MNIST CNN epoch -------------------------------------------------------------------------
def mnist_epoch_cases(torch: Any, quick: bool) -> dict[str, Callable[[], Any]]:
    """One epoch of the mnist-cnn example (SimpleConvNet, Adam, batch 64, the 8,000 training
    images) with tinyai's Trainer, and the same model and loop in PyTorch."""
    from tinyai import losses, nn, optim
    from tinyai.data import ArrayDataset, MnistDataSet
    from tinyai.training import Model, Trainer

    data = MnistDataSet(batch_size=BATCH, flatten=False).prepare()
    train = data.get_train_dataset()
    if quick:
        train = ArrayDataset(train.x[:640], train.y[:640], BATCH)
    model = Model("mnist-cnn", nn.SimpleConvNet())
    optimizer = optim.Adam(model, lr=1e-3)
    loss = losses.SoftmaxCrossEntropy()

    def tinyai_epoch() -> None:
        trainer = Trainer(1, progress="off")
        trainer.init(train, model, loss, optimizer)
        trainer.train()

    cases: dict[str, Callable[[], Any]] = {"tinyai": tinyai_epoch}
    if torch is not None:
        cases["pytorch"] = _torch_epoch(torch, np.asarray(train.x, np.float32), np.asarray(train.y, np.int64))
    return cases


def _torch_epoch(torch: Any, x: np.ndarray, y: np.ndarray) -> Callable[[], None]:
    nn = torch.nn
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(1568, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    generator = torch.Generator().manual_seed(0)

    def epoch() -> None:
        order = torch.randperm(len(xt), generator=generator)
        for start in range(0, len(xt), BATCH):
            idx = order[start:start + BATCH]
            loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    return epoch


# -- the section -----------------------------------------------------------------------------------
def run(quick: bool = False) -> dict[str, Any]:
    """Every measurement at every thread count; returns the rows and the verdicts."""
    torch = _torch()
    threads = Threads(torch)
    repeat = 3 if quick else 15
    difference = check_same_step(torch)

    x, labels = cnn_batch()
    cases: dict[tuple[int, str], Callable[[], Any]] = {}
    for n in THREADS:
        cases[n, "tinyai"] = tinyai_cnn_step(cnn_weights(), x, labels)
        cases[n, "numpy"] = numpy_cnn_step(cnn_weights(), x, labels)
        if torch is not None:
            cases[n, "pytorch"] = torch_cnn_step(torch, cnn_weights(), x, labels)
    rounds: dict[tuple[int, str], list[float]] = {}
    t = interleaved(cases, threads, STEP_REPEAT_QUICK if quick else STEP_REPEAT, samples=rounds)
    step_rows = []
    for n in THREADS:
        row = {"threads": n, "tinyai_ms": t[n, "tinyai"].median * 1e3, "numpy_ms": t[n, "numpy"].median * 1e3,
               "best_ms": {name: t[key].best * 1e3 for key in t if key[0] == n for name in [key[1]]},
               "spread": max(t[key].spread for key in t if key[0] == n),
               "tinyai_gflops": CNN_FLOP / t[n, "tinyai"].median / 1e9}
        if torch is not None:
            row["pytorch_ms"] = t[n, "pytorch"].median * 1e3
            # The median of the ratios paired within each round: a slow spell of a
            # shared machine slows both sides of a pair alike, and cancels out.
            paired = [ours / theirs for ours, theirs in zip(rounds[n, "tinyai"], rounds[n, "pytorch"])]
            row["ratio_to_pytorch"] = statistics.median(paired)
            row["ratio_of_medians"] = t[n, "tinyai"].median / t[n, "pytorch"].median
            if len(paired) > 1:
                quartiles = statistics.quantiles(paired, n=4, method="inclusive")
                row["ratio_iqr"] = [quartiles[0], quartiles[2]]
            row["target"] = STEP_TARGET
            row["pass"] = row["ratio_to_pytorch"] <= STEP_TARGET
        step_rows.append(row)

    conv_cases, flop = {}, 0.0
    for n in THREADS:
        conv_cases[n, "tinyai"], conv_cases[n, "matmul"], flop = conv2d_cases()
    t = interleaved(conv_cases, threads, repeat)
    conv_rows = []
    for n in THREADS:
        ours, theirs = flop / t[n, "tinyai"].median / 1e9, flop / t[n, "matmul"].median / 1e9
        conv_rows.append({"threads": n, "tinyai_ms": t[n, "tinyai"].median * 1e3, "tinyai_gflops": ours,
                          "matmul_gflops": theirs, "ratio": ours / theirs, "target": GEMM_TARGET,
                          "pass": ours / theirs >= GEMM_TARGET})

    pool_cases, moved = {}, {}
    for n in THREADS:
        for name, (fn, nbytes) in pooling_cases().items():
            pool_cases[n, name], moved[name] = fn, nbytes
    t = interleaved(pool_cases, threads, repeat)
    pool_rows = []
    for n in THREADS:
        copy_rate = moved["np.copyto"] / t[n, "np.copyto"].median / 1e9
        for name in ("max_pool2d", "avg_pool2d"):
            rate = moved[name] / t[n, name].median / 1e9
            pool_rows.append({"threads": n, "op": name, "ms": t[n, name].median * 1e3, "gb_per_s": rate,
                              "copy_gb_per_s": copy_rate, "ratio": rate / copy_rate})

    epoch_cases = {}
    for n in THREADS:
        for name, fn in mnist_epoch_cases(torch, quick).items():
            epoch_cases[n, name] = fn
    t = interleaved(epoch_cases, threads, 1 if quick else 3, target_seconds=0.0, warmup=1)
    epoch_rows = []
    for n in THREADS:
        row = {"threads": n, "tinyai_s": t[n, "tinyai"].median}
        if torch is not None:
            row["pytorch_s"] = t[n, "pytorch"].median
            row["ratio_to_pytorch"] = row["tinyai_s"] / row["pytorch_s"]
        epoch_rows.append(row)

    return {"batch": BATCH, "dtype": "float32", "repeat": repeat, "step_rounds": STEP_REPEAT_QUICK if quick else STEP_REPEAT, "pytorch": None if torch is None else torch.__version__,
            "largest_loss_difference": difference, "cnn_step": step_rows, "conv2d": conv_rows, "conv2d_shape": CONV,
            "pooling": pool_rows, "pooling_shape": list(POOL_SHAPE), "mnist_epoch": epoch_rows,
            "mnist_epoch_images": 640 if quick else 8000}


def report(data: dict[str, Any]) -> str:
    """The section as four printed tables."""
    have_torch = data["pytorch"] is not None
    headers = ["threads", "tinyai ms", "NumPy (plain im2col) ms"] + (
        ["PyTorch ms", "tinyai / PyTorch", "IQR of ratio", "target"] if have_torch else []) + ["tinyai GFLOP/s", "IQR"]
    rows = []
    for r in data["cnn_step"]:
        row = [r["threads"], f"{r['tinyai_ms']:.1f}", f"{r['numpy_ms']:.1f}"]
        if have_torch:
            iqr = r.get("ratio_iqr")
            row += [f"{r['pytorch_ms']:.1f}", f"{r['ratio_to_pytorch']:.2f}x",
                    f"{iqr[0]:.2f}-{iqr[1]:.2f}" if iqr else "-", f"{pass_or_miss(r['pass'])} (<= {r['target']:g}x)"]
        rows.append(row + [f"{r['tinyai_gflops']:.0f}", f"{r['spread'] * 100:.0f}%"])
    parts = [f"CNN step, batch {data['batch']} (conv 1->16, pool, conv 16->32, pool, linear; 382 MFLOP)"
             + ("" if have_torch else "; PyTorch is not installed"),
             format_table(headers, rows)]
    shape = data["conv2d_shape"]
    parts.append(f"\nconv2d forward+backward, {shape['channels']}->{shape['channels']} channels, "
                 f"{shape['kernel']}x{shape['kernel']}, {shape['size']}x{shape['size']}, batch {shape['batch']}")
    parts.append(format_table(
        ["threads", "tinyai ms", "tinyai GFLOP/s", "np.matmul GFLOP/s", "ratio", "target"],
        [[r["threads"], f"{r['tinyai_ms']:.1f}", f"{r['tinyai_gflops']:.0f}", f"{r['matmul_gflops']:.0f}",
          f"{r['ratio'] * 100:.0f}%", f"{pass_or_miss(r['pass'])} (>= {r['target'] * 100:.0f}%)"]
         for r in data["conv2d"]]))
    parts.append(f"\npooling 2x2 forward+backward on {tuple(data['pooling_shape'])} float32 "
                 "(bytes: x and gx, y and gy)")
    parts.append(format_table(
        ["threads", "op", "ms", "GB/s", "np.copyto GB/s", "ratio"],
        [[r["threads"], r["op"], f"{r['ms']:.2f}", f"{r['gb_per_s']:.1f}", f"{r['copy_gb_per_s']:.1f}",
          f"{r['ratio'] * 100:.0f}%"] for r in data["pooling"]]))
    parts.append(f"\nMNIST CNN example, one epoch ({data['mnist_epoch_images']} images, batch {data['batch']}, Adam)")
    parts.append(format_table(
        ["threads", "tinyai s", "PyTorch s", "tinyai / PyTorch"],
        [[r["threads"], f"{r['tinyai_s']:.2f}", f"{r['pytorch_s']:.2f}" if have_torch else "-",
          f"{r['ratio_to_pytorch']:.2f}x" if have_torch else "-"] for r in data["mnist_epoch"]]))
    parts.append(f"(CNN step: medians of {data['step_rounds']} rounds, its ratio the median of the ratios within a round; "
                 f"the rest: medians of {data['repeat']} interleaved repeats; 1 and 2 threads alternating; "
                 f"losses of the implementations agree to {data['largest_loss_difference']:.1e})")
    return "\n".join(parts)
