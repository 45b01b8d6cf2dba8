"""Data-parallel training throughput: single-thread vs thread x2 vs process x2 vs auto.

One full training step each time (shard, forward, backward, average, SGD
update), on MNIST-shaped float32 data, for the 784-128-64-10 MLP and
SimpleConvNet. Throughput is samples per second; the ratio is over the
single-thread step. Splitting a small batch costs more in overhead than a
second core gives back; large batches and convolutions (whose im2col work
BLAS cannot spread over cores) are where data parallelism pays.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

SECTION = "parallel"
TITLE = "Data-parallel training step (samples/s; ratio over single-thread)"

CASES = [("mlp", 64), ("mlp", 256), ("mlp", 1024), ("cnn", 64), ("cnn", 256)]
MODES = ("single", "thread", "process", "auto")


def _model(kind: str) -> Any:
    import tinyai as ta
    from tinyai import nn

    ta.seed(0)
    if kind == "mlp":
        return nn.MlpBlock("mlp", 64, "relu", 784, 128, 64, 10)
    return nn.SimpleConvNet()


def _data(kind: str, batch: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    shape = (batch, 784) if kind == "mlp" else (batch, 1, 28, 28)
    return rng.random(shape, dtype=np.float32), rng.integers(0, 10, batch)


def _seconds_per_step(step, seconds: float, min_steps: int) -> float:
    step()  # warm-up
    times = []
    deadline = time.perf_counter() + seconds
    while len(times) < min_steps or time.perf_counter() < deadline:
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _measure_case(kind: str, batch: int, quick: bool) -> dict[str, Any]:
    import tinyai as ta
    from tinyai.losses import SoftmaxCrossEntropy
    from tinyai.optim import SGD
    from tinyai.parallel.auto import choose_backend
    from tinyai.parallel.engine import DataParallel

    x, y = _data(kind, batch)
    loss = SoftmaxCrossEntropy()
    seconds, min_steps = (0.5, 3) if quick else (3.0, 10)
    results: dict[str, Any] = {}

    model = _model(kind)
    optimizer = SGD(model, lr=0.01)

    def single() -> None:
        model.clear_grads()
        value = loss.loss(ta.Variable(y, requires_grad=False), model(ta.Variable(x, requires_grad=False)))
        value.backward()
        optimizer.update()
        value.unchain_backward()

    results["single"] = _seconds_per_step(single, seconds, min_steps)
    for backend in ("thread", "process"):
        engine = DataParallel(model, loss, 2, backend=backend)
        try:
            def parallel_step() -> None:
                model.clear_grads()
                engine.compute_gradients(x, y)
                optimizer.update()

            results[backend] = _seconds_per_step(parallel_step, seconds, min_steps)
        finally:
            engine.shutdown()
    choice = choose_backend(model, loss, x, y, workers=2, candidates=("single", "thread", "process"))
    results["auto_choice"] = choice.backend
    results["auto_timings"] = choice.timings
    results["auto"] = results[choice.backend]
    return {
        "model": kind, "batch": batch,
        "samples_per_s": {m: batch / results[m] for m in MODES},
        "speedup": {m: results["single"] / results[m] for m in MODES},
        "auto_choice": choice.backend,
    }


def run(quick: bool = False) -> dict[str, Any]:
    cases = CASES[:2] if quick else CASES
    rows = [_measure_case(kind, batch, quick) for kind, batch in cases]
    targets = []
    for row in rows:
        if (row["model"], row["batch"]) == ("cnn", 256):
            best = max(row["speedup"]["thread"], row["speedup"]["process"])
            targets.append({"target": "SimpleConvNet batch 256, 2 workers >= 1.6x", "value": best,
                            "met": best >= 1.6})
        if (row["model"], row["batch"]) == ("mlp", 1024):
            best = max(row["speedup"]["thread"], row["speedup"]["process"])
            targets.append({"target": "MLP batch 1024, 2 workers >= 1.5x", "value": best, "met": best >= 1.5})
    worst_auto = min(row["speedup"]["auto"] for row in rows)
    targets.append({"target": "auto never more than 5% slower than single", "value": worst_auto,
                    "met": worst_auto >= 0.95})
    return {"rows": rows, "targets": targets}


def report(data: dict[str, Any]) -> str:
    lines = [f"{'model':6} {'batch':>5} | " + " | ".join(f"{m:>15}" for m in MODES) + " | auto chose"]
    for row in data["rows"]:
        cells = [f"{row['samples_per_s'][m]:8.0f} x{row['speedup'][m]:4.2f}" for m in MODES]
        lines.append(f"{row['model']:6} {row['batch']:>5} | " + " | ".join(f"{c:>15}" for c in cells)
                     + f" | {row['auto_choice']}")
    for target in data["targets"]:
        lines.append(f"{'PASS' if target['met'] else 'MISS'}  {target['target']}: {target['value']:.2f}x")
    return "\n".join(lines)
