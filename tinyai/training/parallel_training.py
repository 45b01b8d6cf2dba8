"""The Trainer's data-parallel side: its options, the running executor and strategy, and their life cycle.

TinyAI's Trainer switches between ``singleThreadTrain`` and ``parallelTrain``
by a flag. Here the flag and everything that keeps it honest live in one
object: ``ParallelTraining`` holds the validated options, decides how many
workers a step gets, checks that the model can be replicated (falling back
to single-thread with a logged warning if not), picks the backend ("auto"
measures), starts an executor with a strategy, and releases them again.

Life cycle: ``start`` (at ``Trainer.init`` and on ``configure``) -> ``step``
and ``apply_update`` per batch -> ``shutdown``. After ``shutdown`` (or after
a failure released the workers) the object is *closed*: another step raises
a clear error instead of silently training on one thread, until
``configure`` is called to start afresh.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import threading
from typing import Any

from tinyai.parallel.auto import CANDIDATES, choose_backend
from tinyai.parallel.engine import DataParallel
from tinyai.parallel.options import ParallelOptions, check_thread_count
from tinyai.parallel.stats import ParallelStats
from tinyai.parallel.strategy import StepOutcome
from tinyai.parallel.strategy.factory import make_strategy
from tinyai.parallel.utils import format_parallel_stats, is_model_parallelizable

logger = logging.getLogger(__name__)

#: Timed turns per candidate when parallel_backend="auto" measures (the median decides).
AUTO_REPEATS = 5
#: Seconds the workers get to stop after a failure or Ctrl-C before they are abandoned or killed.
FAILURE_STOP_TIMEOUT = 1.0


def default_worker_count(max_samples: int) -> int:
    """thread_count=0: one worker per core, at most one per sample of the largest batch.

    TinyAI's rule (``get_recommended_thread_count``) keeps a quarter of the
    cores free; here the master only waits while the shards run, so every
    core can take a shard (on 2 cores the 75% rule would mean no parallelism).
    """
    return max(1, min(os.cpu_count() or 1, max_samples))


class ParallelTraining:
    """Data-parallel options of a Trainer and the engine (executor + strategy) that carries them out.

    Args:
        enable: whether to train data-parallel.
        options: a ``ParallelOptions`` (backend, thread_count, on_error, step_timeout).
    """

    def __init__(self, enable: bool = False, options: ParallelOptions | None = None, strategy: Any = None) -> None:
        self.options = options if options is not None else ParallelOptions()
        if strategy is not None and self.options.compression is not None:
            raise ValueError(f"Trainer: compression={self.options.compression!r} applies to data-parallel "
                             f"training (parallel_strategy='allreduce', 'parameter_server' or 'local_sgd'), not "
                             f"to strategy={type(strategy).__name__}, whose ranks exchange no compressed gradients")
        #: A strategy that brings its own executor (``Trainer(strategy=HybridParallel(grid))``), or None.
        self.strategy = strategy
        self.engine: DataParallel | None = None
        self.workers = 0
        self.chosen_backend: str | None = None
        self.enabled = bool(enable)
        #: Why this object is closed (shut down, or released after a failure), or None.
        self.closed: str | None = None
        #: False on the MPI ranks other than 0, which neither print nor write checkpoints.
        self.is_root = True
        #: What the strategies exchanged and did since ``start`` (``Trainer.parallel_stats()``).
        self.stats = ParallelStats()
        self._lock = threading.Lock()

    @property
    def thread_count(self) -> int:
        return self.options.thread_count

    @property
    def backend(self) -> str:
        return self.options.backend

    def configure(self, enable: bool, thread_count: int = 0, backend: str = "auto", **changes: Any) -> None:
        """New settings; a running engine is shut down first, and a closed one opens again.

        ``changes`` name other fields of ``ParallelOptions`` (compression, on_error, ...).
        """
        known = {field.name for field in dataclasses.fields(ParallelOptions)} - {"backend", "thread_count"}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise TypeError(f"configure_parallel_training: unknown option(s) {', '.join(unknown)}; "
                            f"known: {', '.join(sorted(known))}")
        options = dataclasses.replace(self.options, backend=backend,
                                      thread_count=check_thread_count(thread_count, "configure_parallel_training"),
                                      **changes)
        self._release(30)
        self.options = options
        self.enabled = bool(enable)
        self.is_root = True
        self.closed = None

    @property
    def active(self) -> bool:
        """True while an engine with live workers is running."""
        engine = self.engine
        return engine is not None and engine.alive and self.closed is None

    @property
    def running(self) -> bool:
        """True when training goes through ``step``: an engine is started, or it was and has been
        closed (a step then raises instead of training on silently in one thread)."""
        return self.engine is not None or (self.closed is not None and self.enabled)

    def start(self, model: Any, loss: Any, train_set: Any) -> None:
        """Check the model and start the workers (or decide that single-thread is better)."""
        self._release(30)
        self.closed = None
        self.stats.reset()
        if not self.enabled:
            if self.options.compression is not None:
                logger.warning("data parallel: compression=%r has no effect: data-parallel training is off",
                               self.options.compression)
            return
        if self.strategy is not None:
            self._start_own(model, loss)
            return
        if self.backend == "mpi":
            self._start_mpi(model, loss)
            return
        batches = train_set.get_batches()
        if not batches:
            return
        workers = self._worker_count(max(batch.size for batch in batches))
        if workers < 2:
            logger.warning("data parallel: %d worker for batches of at most %d samples; training "
                           "single-threaded", workers, max(batch.size for batch in batches))
            self.enabled = False
            return
        if not is_model_parallelizable(model):
            logger.warning("data parallel: the model cannot be replicated; training single-threaded")
            self.enabled = False
            return
        backend = self.backend
        engine = None
        if backend == "auto" and self.options.parallel_strategy == "parameter_server" and \
                self.options.ps_mode != "sync":
            backend = "thread"  # asynchronous workers reach the servers from threads only
        if backend == "auto":
            sample = max(batches, key=lambda b: b.size)
            choice = choose_backend(model, loss, sample.x, sample.y, workers, CANDIDATES, AUTO_REPEATS,
                                    keep_engine=True, step_timeout=self.options.step_timeout)
            backend, engine = choice.backend, choice.engine
            timings = ", ".join(f"{name} {seconds * 1e3:.1f} ms" for name, seconds in choice.timings.items())
            logger.info("data parallel: auto chose %s for batches of %d (%s)", backend, sample.size, timings)
            if backend == "single":
                self.chosen_backend = "single"
                return
            engine.model = model  # the probes ran on a replica; the real steps go to the master
            engine.strategy = make_strategy(self.options, self.stats, backend)
            engine.strategy.bind(model, loss, engine.executor)
        if engine is None:
            engine = DataParallel(model, loss, workers, backend=backend, on_error=self.options.on_error,
                                  step_timeout=self.options.step_timeout,
                                  strategy=make_strategy(self.options, self.stats, backend))
        engine.strategy.on_error = self.options.on_error
        self.engine = engine
        self.workers = workers
        self.chosen_backend = backend
        logger.info("data parallel: %d %s workers started", workers, backend)

    def _start_own(self, model: Any, loss: Any) -> None:
        """Run the given strategy on the executor it brings (the replicas of a process grid)."""
        executor = self.strategy.make_executor(model, loss)
        if executor is None:
            raise ValueError(f"Trainer: strategy={type(self.strategy).__name__} brings no executor of its own; "
                             "use enable_parallel=True and parallel_backend= for data-parallel strategies")
        self.strategy.stats = self.stats
        engine = DataParallel(model, loss, strategy=self.strategy, executor=executor)
        self.is_root = engine.is_root
        self.engine = engine
        self.workers = executor.workers
        self.chosen_backend = executor.kind

    def checkpoint_parts(self, model: Any, optimizer: Any) -> tuple[Any, Any, bool]:
        """(model, optimizer or their states, whether this rank writes) for the Trainer's checkpoint.

        Strategies whose ranks hold parts of the model gather them (every
        rank must call this then); otherwise the root writes the model as is.
        """
        engine = self.engine
        parts = engine.strategy.checkpoint_state(model, optimizer) if engine is not None else None
        return parts if parts is not None else (model, optimizer, self.is_root)

    def _start_mpi(self, model: Any, loss: Any) -> None:
        """Join the MPI job this script was launched in; its ranks split every batch."""
        engine = DataParallel(model, loss, backend="mpi", on_error=self.options.on_error,
                              strategy=make_strategy(self.options, self.stats, "mpi"))
        self.is_root = engine.is_root
        size = engine.executor.workers
        if size < 2:
            logger.warning("data parallel: the MPI job has a single rank (launch with mpiexec -n K); "
                           "training single-threaded")
            engine.shutdown()
            self.enabled = False
            return
        if self.thread_count not in (0, size):
            logger.warning("data parallel: thread_count %d is ignored by the mpi backend; the %d ranks of "
                           "the MPI job are the workers", self.thread_count, size)
        self.engine = engine
        self.workers = size
        self.chosen_backend = "mpi"

    def _worker_count(self, max_samples: int) -> int:
        """Workers per step: thread_count (or the default), at most one per sample of the largest batch."""
        cores = os.cpu_count() or 1
        if self.thread_count == 0:
            return default_worker_count(max_samples)
        if self.thread_count > cores:
            logger.warning("data parallel: thread_count %d is more than the %d cores of this machine; the "
                           "workers will take turns on the cores and each step gets slower", self.thread_count,
                           cores)
        if self.thread_count > max_samples:
            logger.info("data parallel: thread_count %d is more than the %d samples of the largest batch "
                        "(each shard needs one); using %d", self.thread_count, max_samples, max_samples)
            return max_samples
        return self.thread_count

    def check_open(self, where: str) -> None:
        """Raise a clear error if this object was closed."""
        if self.closed is not None and self.enabled:
            raise RuntimeError(f"{where}: data-parallel training is closed ({self.closed}); call "
                               "configure_parallel_training(True, ...) to start new workers, or create a "
                               "new Trainer")

    def step(self, x: Any, y: Any) -> StepOutcome:
        """One step's shard work (with the default strategy, the batch's mean gradient lands on p.grad)."""
        engine = self.engine
        if engine is None:
            self.check_open("Trainer.train")
            raise RuntimeError("Trainer.train: data-parallel training has no running workers")
        return engine.compute_gradients(x, y)

    @property
    def owns_epoch(self) -> bool:
        """True when the running strategy trains whole epochs itself (asynchronous parameter servers)."""
        return self.engine is not None and self.engine.strategy.owns_epoch

    def train_epoch(self, batches: list, optimizer: Any) -> list[float]:
        """The strategy's epoch: each batch's loss (``Strategy.train_epoch``)."""
        return self.engine.strategy.train_epoch(batches, optimizer)

    def end_epoch(self, optimizer: Any) -> None:
        """After an epoch's last batch (local SGD averages its replicas)."""
        if self.engine is not None:
            self.engine.strategy.end_epoch(optimizer)

    def apply_update(self, optimizer: Any) -> None:
        """The strategy's update (``optimizer.update()`` for synchronous all-reduce)."""
        self.engine.strategy.apply_update(optimizer)

    def stats_line(self, ok_batches: int, total_batches: int, avg_loss: float, ms: float) -> str:
        """TinyAI's per-epoch statistics line for this engine (``format_parallel_stats``)."""
        return format_parallel_stats(self.workers, ok_batches, total_batches, avg_loss, ms)

    def _release(self, timeout: float) -> bool:
        """Shut the engine down, if any. True if every worker stopped by itself."""
        with self._lock:
            engine, self.engine = self.engine, None
        self.workers = 0
        if engine is None:
            return True
        return engine.shutdown(timeout)

    def stop_after_failure(self, error: BaseException) -> None:
        """Release the workers quickly after ``error`` (a failed step, Ctrl-C) and close."""
        if self.engine is None:
            return
        clean = self._release(FAILURE_STOP_TIMEOUT)
        what = "Ctrl-C" if isinstance(error, KeyboardInterrupt) else type(error).__name__
        self.closed = f"the workers were released after {what}" + ("" if clean else "; a hung worker was abandoned")

    def shutdown(self, timeout: float = 30) -> None:
        """Release the workers within about ``timeout`` seconds and close. Safe to call twice, and
        from another thread while a step runs (that step then raises ``WorkerError``)."""
        had_engine = self.engine is not None
        clean = self._release(timeout)
        if had_engine or self.enabled:
            self.closed = "shutdown() was called" + ("" if clean else "; a hung worker was abandoned")
            logger.info("data parallel: parallel training resources released")

