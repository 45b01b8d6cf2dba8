"""Choosing how to run a step: single-thread, threads or processes, by measuring.

Whether splitting a batch pays depends on the model, the batch size and the
machine: a small batch on two threads is slower than on one (the shards are
too small to hide the extra Python work), a large convolution batch is much
faster. So ``auto`` does not guess: it times a few gradient computations with
each candidate on a real batch and keeps the fastest.

Measuring must not change what is measured. Every probe runs on a *replica*
of the model (a deep copy), never on the master: the master's parameters,
gradients and buffers (batch-norm running statistics) are untouched. The
random stream that dropout draws from is saved before the probes and
restored after them. So training with ``auto`` gives the same model as
training with whichever backend it picked — or with a single thread.
"""
from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from tinyai.autograd import Variable
from tinyai.backend import get_rng

logger = logging.getLogger(__name__)

#: What auto measures; "mpi" is never a candidate (an MPI job is started by mpiexec, not chosen).
CANDIDATES = ("single", "thread", "process")
#: Seconds of untimed steps before each timed one: longer than OpenBLAS's idle threads spin
#: (2**28 cycles, about 0.1 s) after a multi-threaded product.
SETTLE_SECONDS = 0.15
#: Then a turn times steps for this long (at least one step) and keeps their mean.
TIMED_SECONDS = 0.05


@dataclass
class BackendChoice:
    """The chosen backend, the median seconds per step measured for each candidate,
    and (when asked to keep it) the winner's started engine, ready for training."""

    backend: str
    timings: dict[str, float] = field(default_factory=dict)
    engine: Any = None


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def choose_backend(model: Any, loss: Any, x: Any, y: Any, workers: int,
                   candidates: Sequence[str] = CANDIDATES, repeats: int = 5, keep_engine: bool = False,
                   step_timeout: float | None = None) -> BackendChoice:
    """Time each candidate on (x, y) and return the fastest (ties go to the simpler one).

    The candidates are timed in turns (single, thread, process, single,
    thread, ...), so a moment when the machine is busy slows all of them
    alike, and the median of ``repeats`` turns decides. In its turn a
    candidate first runs untimed steps for ``SETTLE_SECONDS`` (at least one),
    then timed steps for ``TIMED_SECONDS`` (at least one; their mean is the
    turn's time, steadier than one short step on a busy machine). Training
    runs one backend step after step, and the untimed steps absorb what the
    previous candidate left behind (the first turn's also warm caches and
    workers up). That matters: after single-thread's products on two BLAS
    threads, OpenBLAS's second thread spins on its core for about 0.1 s
    waiting for more work, and a two-worker step started meanwhile loses much
    of a core to it (SimpleConvNet, batch 256: 72 ms instead of 39 ms), which
    made the parallel candidates look slower than they train.

    A candidate that cannot start (a model that does not pickle, a model on
    a device for processes, a script without a ``__main__`` guard) is left
    out, with its reason logged once. ``model`` itself is never run: see the module docstring.
    With ``keep_engine`` the winner's engine is returned running (its
    replicas equal the master), so training does not start it a second time.
    """
    from tinyai.parallel.engine import DataParallel
    from tinyai.parallel.executor.thread import model_array_module
    from tinyai.parallel.utils import deep_copy_model

    try:
        probe = deep_copy_model(model)
    except Exception as exc:
        logger.warning("auto: the model cannot be replicated (%s: %s); only single-thread training can run",
                       type(exc).__name__, exc)
        return BackendChoice("single")
    rng = get_rng()
    saved_state = rng.bit_generator.state
    steps: dict[str, Callable[[], Any]] = {}
    engines: dict[str, Any] = {}
    kept = None
    try:
        for candidate in candidates:
            if candidate == "single":
                steps["single"] = functools.partial(_single_step, probe, loss, x, y)
                continue
            if candidate == "process" and model_array_module(model) is not np:
                logger.info("auto: the model lives on a device; worker processes cannot share it, so the "
                            "process backend is not a candidate")
                continue
            try:
                engine = DataParallel(probe, loss, workers, backend=candidate, step_timeout=step_timeout)
            except Exception as exc:
                logger.warning("auto: the %s backend could not start (%s: %s)", candidate, type(exc).__name__, exc)
                continue
            engines[candidate] = engine
            steps[candidate] = functools.partial(engine.compute_gradients, x, y)
        if not steps:
            raise RuntimeError("auto: no candidate backend could run a step")
        samples: dict[str, list[float]] = {name: [] for name in steps}
        for _ in range(repeats):
            for name, step in steps.items():
                settled = time.perf_counter() + SETTLE_SECONDS
                step()  # untimed steps absorb what the previous candidate left behind (see above)
                while time.perf_counter() < settled:
                    step()
                samples[name].append(_seconds_per_step(step))
        timings = {name: _median(values) for name, values in samples.items()}
        best = fastest(timings, list(candidates))
        if keep_engine and best in engines:
            kept = engines.pop(best)
    finally:
        for engine in engines.values():
            engine.shutdown(5)
        rng.bit_generator.state = saved_state
    logger.info("auto: chose %s (%s)", best, ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in timings.items()))
    return BackendChoice(best, timings, kept)


def _seconds_per_step(step: Callable[[], Any]) -> float:
    """The mean time of the steps run in TIMED_SECONDS (at least one)."""
    count, start = 0, time.perf_counter()
    while True:
        step()
        count += 1
        elapsed = time.perf_counter() - start
        if elapsed >= TIMED_SECONDS:
            return elapsed / count


def fastest(timings: dict[str, float], order: list[str]) -> str:
    """The candidate with the smallest time; a tie goes to the one earlier in ``order`` (the simpler)."""
    return min(timings, key=lambda name: (timings[name], order.index(name)))


def _single_step(model: Any, loss: Any, x: Any, y: Any) -> None:
    """Forward and backward on the whole batch in this thread (no update)."""
    from tinyai.parallel.executor.thread import model_array_module, on_device_of

    xp = model_array_module(model)
    model.clear_grads()
    value = loss.loss(Variable(on_device_of(xp, y), requires_grad=False),
                      model(Variable(on_device_of(xp, x), requires_grad=False)))
    value.backward()
    value.unchain_backward()
