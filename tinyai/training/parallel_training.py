"""The Trainer's data-parallel side: its settings, the running engine, and the choice of backend.

TinyAI's Trainer switches between ``singleThreadTrain`` and ``parallelTrain``
by a flag. Here the flag and everything that keeps it honest live in one
object: ``ParallelTraining`` validates the settings, checks that the model
can be replicated (falling back to single-thread with a logged warning if
not), starts the workers, and releases them again.
"""
from __future__ import annotations

import logging
import os
from typing import Any

from tinyai.backend.settings import is_int
from tinyai.parallel.auto import choose_backend
from tinyai.parallel.engine import DataParallel, StepOutcome
from tinyai.parallel.utils import is_model_parallelizable

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "thread", "process", "mpi")


def check_thread_count(thread_count: Any, where: str) -> int:
    """``thread_count`` as an int >= 0, or a ValueError naming ``where``."""
    if not is_int(thread_count) or thread_count < 0:
        raise ValueError(f"{where}: thread_count must be an int >= 0 (0 = automatic), got {thread_count!r}")
    return int(thread_count)


class ParallelTraining:
    """Data-parallel settings of a Trainer and the engine that carries them out.

    Args:
        enable: whether to train data-parallel.
        thread_count: workers per step; 0 chooses one per core, at most the
            number of batches.
        backend: "thread", "process", or "auto" (time a few steps of each,
            single-thread included, and keep the fastest); or "mpi": the
            ranks of an MPI job (``mpiexec -n K python train.py``) are the
            workers, ``thread_count`` is ignored, and "auto" never picks it.
        on_error: "raise" or "skip" for a shard that fails (see DataParallel).
    """

    def __init__(self, enable: bool = False, thread_count: int = 0, backend: str = "auto",
                 on_error: str = "raise") -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"Trainer: on_error must be 'raise' or 'skip', got {on_error!r}")
        self.on_error = on_error
        self.engine: DataParallel | None = None
        self.workers = 0
        self.chosen_backend: str | None = None
        #: False on the MPI ranks other than 0, which neither print nor write checkpoints.
        self.is_root = True
        self.configure(enable, thread_count, backend)

    def configure(self, enable: bool, thread_count: int = 0, backend: str = "auto") -> None:
        """New settings; a running engine is shut down first."""
        check_thread_count(thread_count, "configure_parallel_training")
        if backend not in BACKENDS:
            raise ValueError(f"configure_parallel_training: backend must be one of {BACKENDS}, got {backend!r}")
        self.stop()
        self.enabled = bool(enable)
        self.is_root = True
        self.thread_count = thread_count
        self.backend = backend

    @property
    def active(self) -> bool:
        """True while an engine with live workers is running."""
        return self.engine is not None and self.engine.alive

    @property
    def running(self) -> bool:
        """True while an engine is started: training goes through it (a dead
        worker then makes the step fail loudly instead of training on silently
        in one thread)."""
        return self.engine is not None

    def start(self, model: Any, loss: Any, train_set: Any) -> None:
        """Check the model and start the workers (or decide that single-thread is better)."""
        self.stop()
        if not self.enabled:
            return
        if self.backend == "mpi":
            self._start_mpi(model, loss)
            return
        batches = train_set.get_batches()
        if not batches:
            return
        workers = self._worker_count(len(batches))
        if workers < 2:
            logger.warning("data parallel: %d worker(s) for %d batches; training single-threaded",
                           workers, len(batches))
            self.enabled = False
            return
        if not is_model_parallelizable(model):
            logger.warning("data parallel: the model cannot be replicated; training single-threaded")
            self.enabled = False
            return
        backend = self.backend
        if backend == "auto":
            sample = batches[0]
            choice = choose_backend(model, loss, sample.x, sample.y, workers)
            backend = choice.backend
            timings = ", ".join(f"{name} {seconds * 1e3:.1f} ms" for name, seconds in choice.timings.items())
            logger.info("data parallel: auto chose %s for batches of %d (%s)", backend, sample.size, timings)
            if backend == "single":
                self.chosen_backend = "single"
                return
        self.engine = DataParallel(model, loss, workers, backend=backend, on_error=self.on_error)
        self.workers = workers
        self.chosen_backend = backend

    def _start_mpi(self, model: Any, loss: Any) -> None:
        """Join the MPI job this script was launched in; its ranks split every batch."""
        from tinyai.parallel.mpi import MpiDataParallel

        engine = MpiDataParallel(model, loss, on_error=self.on_error)
        self.is_root = engine.is_root
        if engine.size < 2:
            logger.warning("data parallel: the MPI job has a single rank (launch with mpiexec -n K); "
                           "training single-threaded")
            engine.shutdown()
            self.enabled = False
            return
        if self.thread_count not in (0, engine.size):
            logger.warning("data parallel: thread_count %d is ignored by the mpi backend; the %d ranks of "
                           "the MPI job are the workers", self.thread_count, engine.size)
        self.engine = engine
        self.workers = engine.size
        self.chosen_backend = "mpi"

    def _worker_count(self, batch_count: int) -> int:
        if self.thread_count == 0:
            return max(1, min(os.cpu_count() or 1, batch_count))
        if self.thread_count > batch_count:
            logger.info("data parallel: thread_count %d is more than the %d batches; using %d",
                        self.thread_count, batch_count, batch_count)
            return batch_count
        return self.thread_count

    def step(self, x: Any, y: Any) -> StepOutcome:
        """The gradient of the batch's mean loss, left on the master's parameters."""
        return self.engine.compute_gradients(x, y)

    def stop(self, timeout: float = 30) -> None:
        """Release the workers, if any. Safe to call twice."""
        if self.engine is not None:
            engine, self.engine = self.engine, None
            engine.shutdown(timeout)
        self.workers = 0
