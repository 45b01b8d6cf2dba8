"""Choosing how to run a step: single-thread, threads or processes, by measuring.

Whether splitting a batch pays depends on the model, the batch size and the
machine: a small batch on two threads is slower than on one (the shards are
too small to hide the extra Python work), a large convolution batch is much
faster. So ``auto`` does not guess: it times a few gradient computations with
each candidate on a real batch and keeps the fastest. Nothing is updated while
measuring, so the choice does not change the training result.
"""
from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from tinyai.autograd import Variable

logger = logging.getLogger(__name__)


@dataclass
class BackendChoice:
    """The chosen backend and the median seconds per step measured for each candidate."""

    backend: str
    timings: dict[str, float] = field(default_factory=dict)


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def choose_backend(model: Any, loss: Any, x: Any, y: Any, workers: int,
                   candidates: Sequence[str] = ("single", "thread", "process"), repeats: int = 5) -> BackendChoice:
    """Time each candidate on (x, y) and return the fastest (ties go to the simpler one).

    The candidates are timed in turns (single, thread, process, single,
    thread, ...), so a moment when the machine is busy slows all of them
    alike, and the median of ``repeats`` turns decides. A candidate that
    cannot start (a model that does not pickle, processes not allowed here)
    is left out, with its reason logged.
    """
    from tinyai.parallel.engine import DataParallel

    steps: dict[str, Callable[[], Any]] = {}
    engines = []
    try:
        for candidate in candidates:
            if candidate == "single":
                steps["single"] = lambda: _single_step(model, loss, x, y)
                continue
            try:
                engine = DataParallel(model, loss, workers, backend=candidate)
            except Exception as exc:
                logger.warning("auto: the %s backend could not start (%s: %s)", candidate, type(exc).__name__, exc)
                continue
            engines.append(engine)
            steps[candidate] = functools.partial(engine.compute_gradients, x, y)
        if not steps:
            raise RuntimeError("auto: no candidate backend could run a step")
        samples: dict[str, list[float]] = {name: [] for name in steps}
        for turn in range(repeats + 1):
            for name, step in steps.items():
                start = time.perf_counter()
                step()
                if turn > 0:  # the first turn warms caches, pools and workers up
                    samples[name].append(time.perf_counter() - start)
    finally:
        for engine in engines:
            engine.shutdown()
        model.clear_grads()
    timings = {name: _median(values) for name, values in samples.items()}
    order = list(candidates)
    best = min(timings, key=lambda name: (timings[name], order.index(name)))
    logger.info("auto: chose %s (%s)", best, ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in timings.items()))
    return BackendChoice(best, timings)


def _single_step(model: Any, loss: Any, x: Any, y: Any) -> None:
    """Forward and backward on the whole batch in this thread (no update)."""
    model.clear_grads()
    value = loss.loss(Variable(y, requires_grad=False), model(Variable(x, requires_grad=False)))
    value.backward()
    value.unchain_backward()
