"""Section "gpu": what the GPU buys, against the CPU and against CuPy itself.

Rows (each timed with the device synchronised after every call, CPU and GPU
interleaved in one process):

* training step (forward, loss, backward, update) of the MNIST MLP and of
  SimpleConvNet at batch 256 and 1024, CPU vs GPU; target: SimpleConvNet at
  batch 1024 at least 20x faster on the GPU than on the CPU;
* conv2d forward + backward at ResNet-like sizes (64 -> 64 channels, 3x3,
  56x56, batch 32) in TFLOP/s, against ``cupy.matmul`` on the same three GEMM
  shapes; target: at least 50% of matmul's throughput;
* optimizer updates per million parameters, fused kernel vs the chain of
  array operations (the reference); target: fused Adam at least 3x faster;
* per-operation launch overhead: a tinyai op on a tiny array vs the bare
  CuPy call;
* mixed precision vs float32 step time (SimpleConvNet, batch 256).

Without a GPU the section is skipped with the reason. With
``TINYAI_BENCH_GPU_STANDIN=1`` it runs on the CPU stand-in for CuPy at tiny
sizes: a smoke test of this file, its numbers mean nothing.
"""
from __future__ import annotations

import contextlib
import os
from typing import Any, Callable

import numpy as np

from benchmarks.common import compare, format_table, pass_or_miss

SECTION = "gpu"
TITLE = "GPU: training steps vs CPU, conv2d vs cupy.matmul, fused optimizers, launch overhead, mixed precision"

STEP_TARGET = 20.0       # SimpleConvNet b1024: GPU step at least this many times faster than the CPU step
CONV_TARGET = 0.5        # conv2d's GEMM throughput: at least this fraction of cupy.matmul's
ADAM_TARGET = 3.0        # fused Adam at least this many times faster than the unfused chain


def _backend() -> tuple[Any, Callable[[], None], str, Any]:
    """(array module, synchronise, label, context) for the GPU, the stand-in, or None when skipped."""
    import tinyai.backend as backend

    if os.environ.get("TINYAI_BENCH_GPU_STANDIN") == "1":
        from tinyai.testing.standin import standin_as_gpu, xp

        return xp, lambda: None, "CPU stand-in (smoke test: the numbers mean nothing)", standin_as_gpu()
    if not backend.is_gpu_available():
        return None, lambda: None, backend.gpu_unavailable_reason(), contextlib.nullcontext()
    import cupy

    name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
    name = name.decode() if isinstance(name, bytes) else name
    return cupy, cupy.cuda.Device().synchronize, f"{name}, CuPy {cupy.__version__}", contextlib.nullcontext()


def _seconds(target: float) -> float:
    """How long one timed repeat should last (next to nothing in the stand-in smoke test)."""
    return 0.001 if os.environ.get("TINYAI_BENCH_GPU_STANDIN") == "1" else target


def _synced(fn: Callable[[], Any], sync: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        fn()
        sync()
    return run


def _step(model_factory: Callable[[], Any], batch: int, x_shape: tuple[int, ...], to_device: bool,
          precision: str = "float32") -> Callable[[], None]:
    """One training step of a fresh model on a fixed random batch, on the CPU or the device."""
    import tinyai
    import tinyai.functions as F
    import tinyai.optim as optim
    from tinyai.training.precision import MixedPrecision

    tinyai.seed(0)
    model = model_factory()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, *x_shape)).astype(np.float32)
    t = rng.integers(0, 10, batch)
    if to_device:
        model.to_gpu()
        x, t = tinyai.to_gpu(x), tinyai.to_gpu(t)
    optimizer = optim.Adam(model, lr=1e-3)
    with tinyai.no_grad():                      # materialise lazy layers before timing
        model(x)
    if precision == "mixed":
        scaler = MixedPrecision(model, optimizer)

        def run() -> None:
            with scaler.autocast():
                loss = F.softmax_cross_entropy(scaler.to_float32(model(scaler.cast_input(x))), t)
                model.clear_grads()
                scaler.backward(loss)
            scaler.step()
        return run

    def run() -> None:
        model.clear_grads()
        loss = F.softmax_cross_entropy(model(x), t)
        loss.backward()
        optimizer.update()
    return run


def _models(tiny: bool) -> dict[str, tuple[Callable[[], Any], tuple[int, ...]]]:
    from tinyai import nn

    if tiny:
        return {"mlp": (lambda: nn.MlpBlock("mlp", 8, "relu", 64, 16, 10), (64,)),
                "convnet": (lambda: nn.SimpleConvNet(image_size=8, channels=(2, 2)), (1, 8, 8))}
    return {"mlp": (lambda: nn.MlpBlock("mlp", 256, "relu", 784, 128, 64, 10), (784,)),
            "convnet": (lambda: nn.SimpleConvNet(), (1, 28, 28))}


def _training_steps(xp: Any, sync: Callable[[], None], tiny: bool, repeat: int) -> list[dict[str, Any]]:
    rows = []
    batches = (4, 8) if tiny else (256, 1024)
    for name, (factory, shape) in _models(tiny).items():
        for batch in batches:
            timings = compare({"cpu": _step(factory, batch, shape, False),
                               "gpu": _synced(_step(factory, batch, shape, True), sync)},
                              repeat=repeat, warmup=2, target_seconds=_seconds(0.05))
            speedup = timings["cpu"].median / timings["gpu"].median
            row = {"model": name, "batch": batch, "cpu_ms": timings["cpu"].median * 1e3,
                   "gpu_ms": timings["gpu"].median * 1e3, "speedup": speedup}
            if name == "convnet" and batch == batches[-1]:
                row["target"] = STEP_TARGET
                row["ok"] = speedup >= STEP_TARGET
            rows.append(row)
    return rows


def _conv(xp: Any, sync: Callable[[], None], tiny: bool, repeat: int) -> dict[str, Any]:
    """conv2d forward + backward vs the three GEMMs it is made of, timed with cupy.matmul."""
    import tinyai
    import tinyai.functions as F

    n, c, hw, k = (2, 4, 8, 3) if tiny else (32, 64, 56, 3)
    rng = np.random.default_rng(0)
    x = tinyai.Variable(xp.asarray(rng.standard_normal((n, c, hw, hw)).astype(np.float32)))
    w = tinyai.Variable(xp.asarray(rng.standard_normal((c, c, k, k)).astype(np.float32) * 0.05))
    gy = xp.asarray(rng.standard_normal((n, c, hw, hw)).astype(np.float32))

    def conv() -> None:
        x.grad = w.grad = None
        F.conv2d(x, w, None, 1, 1).backward(gy)

    rows, inner, cout = n * hw * hw, c * k * k, c
    cols = xp.asarray(rng.standard_normal((rows, inner)).astype(np.float32))
    wmat = xp.asarray(rng.standard_normal((inner, cout)).astype(np.float32))
    gmat = xp.asarray(rng.standard_normal((rows, cout)).astype(np.float32))

    def gemms() -> None:
        xp.matmul(cols, wmat)        # forward
        xp.matmul(gmat, wmat.T)      # gradient of the columns
        xp.matmul(cols.T, gmat)      # gradient of the weights

    timings = compare({"conv2d": _synced(conv, sync), "matmul": _synced(gemms, sync)},
                      repeat=repeat, warmup=2, target_seconds=_seconds(0.05))
    flops = 3 * 2 * rows * inner * cout
    conv_tflops = flops / timings["conv2d"].median / 1e12
    matmul_tflops = flops / timings["matmul"].median / 1e12
    fraction = conv_tflops / matmul_tflops
    return {"shape": f"x ({n}, {c}, {hw}, {hw}), W ({c}, {c}, {k}, {k}), pad 1", "gflop": flops / 1e9,
            "conv2d_ms": timings["conv2d"].median * 1e3, "matmul_ms": timings["matmul"].median * 1e3,
            "conv2d_tflops": conv_tflops, "matmul_tflops": matmul_tflops, "fraction": fraction,
            "target": CONV_TARGET, "ok": fraction >= CONV_TARGET}


def _optimizers(xp: Any, sync: Callable[[], None], tiny: bool, repeat: int) -> list[dict[str, Any]]:
    from tinyai.optim import kernels

    size = 1000 if tiny else 1_000_000
    rng = np.random.default_rng(0)
    rows = []
    for rule, (fused, reference) in kernels.UPDATES.items():
        arrays = {key: xp.asarray(np.abs(rng.standard_normal(size)).astype(np.float32)) for key in "pgab"}
        extra = {"sgd": (0.01,), "momentum": (arrays["a"], 0.01, 0.9, False),
                 "adam": (arrays["a"], arrays["b"], 1e-3, 0.9, 0.999, 1e-8, 10, 0.0),
                 "rmsprop": (arrays["a"], 1e-3, 0.99, 1e-8), "adagrad": (arrays["a"], 1e-3, 1e-8)}[rule]
        fns = {"fused": _synced(lambda f=fused: f(arrays["p"], arrays["g"], *extra), sync),
               "unfused": _synced(lambda f=reference: f(arrays["p"], arrays["g"], *extra), sync)}
        timings = compare(fns, repeat=repeat, warmup=3, target_seconds=_seconds(0.02))
        per_million = 1e6 / size
        speedup = timings["unfused"].median / timings["fused"].median
        row = {"optimizer": rule, "fused_us_per_million": timings["fused"].median * 1e6 * per_million,
               "unfused_us_per_million": timings["unfused"].median * 1e6 * per_million, "speedup": speedup}
        if rule == "adam":
            row["target"] = ADAM_TARGET
            row["ok"] = speedup >= ADAM_TARGET
        rows.append(row)
    return rows


def _launch_overhead(xp: Any, sync: Callable[[], None], repeat: int) -> dict[str, Any]:
    """Microseconds per op, forward only, on a 10-element device array: tinyai vs bare CuPy."""
    import tinyai

    a = xp.asarray(np.ones(10, np.float32))
    v = tinyai.Variable(a, requires_grad=False)
    chain = 100

    def tinyai_ops() -> None:
        y = v
        for _ in range(chain):
            y = y + v

    def bare_ops() -> None:
        y = a
        for _ in range(chain):
            y = y + a

    timings = compare({"tinyai": _synced(tinyai_ops, sync), "cupy": _synced(bare_ops, sync)},
                      repeat=repeat, warmup=2, target_seconds=_seconds(0.02))
    tinyai_us = timings["tinyai"].median / chain * 1e6
    bare_us = timings["cupy"].median / chain * 1e6
    return {"tinyai_us_per_op": tinyai_us, "cupy_us_per_op": bare_us, "tinyai_extra_us": tinyai_us - bare_us}


def _mixed(xp: Any, sync: Callable[[], None], tiny: bool, repeat: int) -> dict[str, Any]:
    factory, shape = _models(tiny)["convnet"]
    batch = 8 if tiny else 256
    timings = compare({"float32": _synced(_step(factory, batch, shape, True), sync),
                       "mixed": _synced(_step(factory, batch, shape, True, precision="mixed"), sync)},
                      repeat=repeat, warmup=2, target_seconds=_seconds(0.05))
    return {"model": "convnet", "batch": batch, "float32_ms": timings["float32"].median * 1e3,
            "mixed_ms": timings["mixed"].median * 1e3,
            "speedup": timings["float32"].median / timings["mixed"].median}


def run(quick: bool = False) -> dict[str, Any]:
    xp, sync, label, context = _backend()
    if xp is None:
        return {"skipped": label}
    tiny = os.environ.get("TINYAI_BENCH_GPU_STANDIN") == "1"
    repeat = 3 if quick or tiny else 15
    with context:
        return {"device": label,
                "training_steps": _training_steps(xp, sync, tiny, repeat),
                "conv2d": _conv(xp, sync, tiny, repeat),
                "optimizers": _optimizers(xp, sync, tiny, repeat),
                "launch_overhead": _launch_overhead(xp, sync, repeat),
                "mixed_precision": _mixed(xp, sync, tiny, repeat)}


def _target(row: dict[str, Any]) -> str:
    return f"{pass_or_miss(row['ok'])} (>= {row['target']:g})" if "target" in row else ""


def report(data: dict[str, Any]) -> str:
    if "skipped" in data:
        return f"skipped: {data['skipped']}"
    out = [f"device: {data['device']}", "",
           format_table(["model", "batch", "CPU ms/step", "GPU ms/step", "speed-up", "target"],
                        [[r["model"], r["batch"], f"{r['cpu_ms']:.2f}", f"{r['gpu_ms']:.3f}", f"{r['speedup']:.1f}x",
                          _target(r)] for r in data["training_steps"]])]
    c = data["conv2d"]
    out += ["", f"conv2d fwd+bwd, {c['shape']}, {c['gflop']:.1f} GFLOP:",
            format_table(["", "ms", "TFLOP/s"],
                         [["conv2d", f"{c['conv2d_ms']:.3f}", f"{c['conv2d_tflops']:.2f}"],
                          ["cupy.matmul, same GEMMs", f"{c['matmul_ms']:.3f}", f"{c['matmul_tflops']:.2f}"]]),
            f"conv2d reaches {c['fraction']:.0%} of matmul's throughput: {_target(c)}"]
    out += ["", format_table(["optimizer", "fused us/1M params", "unfused us/1M params", "speed-up", "target"],
                             [[r["optimizer"], f"{r['fused_us_per_million']:.1f}", f"{r['unfused_us_per_million']:.1f}",
                               f"{r['speedup']:.1f}x", _target(r)] for r in data["optimizers"]])]
    o = data["launch_overhead"]
    out += ["", f"launch overhead: tinyai {o['tinyai_us_per_op']:.1f} us/op, bare CuPy {o['cupy_us_per_op']:.1f} us/op "
            f"(tinyai adds {o['tinyai_extra_us']:.1f} us)"]
    m = data["mixed_precision"]
    out += [f"mixed precision ({m['model']}, batch {m['batch']}): float32 {m['float32_ms']:.2f} ms, "
            f"mixed {m['mixed_ms']:.2f} ms per step ({m['speedup']:.2f}x)"]
    return "\n".join(out)
