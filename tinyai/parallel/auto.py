"""Choosing how to run a step: single-thread, threads or processes, by measuring.

Whether splitting a batch pays depends on the model, the batch size and the
machine: a small batch on two threads is slower than on one (the shards are
too small to hide the extra Python work), a large convolution batch is much
faster. So ``auto`` does not guess: it times a few gradient computations with
each candidate on a real batch and keeps the fastest. Nothing is updated while
measuring, so the choice does not change the training result.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from tinyai.autograd import Variable

logger = logging.getLogger(__name__)


@dataclass
class BackendChoice:
    """The chosen backend and the median seconds per step measured for each candidate."""

    backend: str
    timings: dict[str, float] = field(default_factory=dict)


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def time_single_step(model: Any, loss: Any, x: Any, y: Any, repeats: int) -> float:
    """Median seconds of forward + backward on the whole batch in this thread."""
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        model.clear_grads()
        value = loss.loss(Variable(y, requires_grad=False), model(Variable(x, requires_grad=False)))
        value.backward()
        value.unchain_backward()
        times.append(time.perf_counter() - start)
    model.clear_grads()
    return _median(times[1:])  # the first call warms caches up


def choose_backend(model: Any, loss: Any, x: Any, y: Any, workers: int,
                   candidates: Sequence[str] = ("single", "thread", "process"), repeats: int = 3) -> BackendChoice:
    """Time each candidate on (x, y) and return the fastest (ties go to the simpler one).

    A candidate that cannot start (a model that does not pickle, processes
    not allowed here) is left out, with its reason logged.
    """
    from tinyai.parallel.engine import DataParallel

    timings: dict[str, float] = {}
    for candidate in candidates:
        if candidate == "single":
            timings["single"] = time_single_step(model, loss, x, y, repeats)
            continue
        try:
            engine = DataParallel(model, loss, workers, backend=candidate)
        except Exception as exc:
            logger.warning("auto: the %s backend could not start (%s: %s)", candidate, type(exc).__name__, exc)
            continue
        try:
            engine.compute_gradients(x, y)  # warm-up: first shards, BLAS pools
            timings[candidate] = engine.time_step(x, y, repeats)
        finally:
            engine.shutdown()
    if not timings:
        raise RuntimeError("auto: no candidate backend could run a step")
    best = min(timings, key=lambda name: (timings[name], list(candidates).index(name)))
    logger.info("auto: chose %s (%s)", best, ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in timings.items()))
    return BackendChoice(best, timings)
