"""DataParallel: an executor and a strategy, paired, for use without a Trainer.

    engine = DataParallel(model, loss, workers=2, backend="thread")
    for x, y in batches:
        engine.compute_gradients(x, y)     # the batch's gradient on model's p.grad
        optimizer.update()
    engine.shutdown()

It is what the Trainer does each step, written out: ``make_executor`` starts
the workers, a ``Strategy`` (synchronous all-reduce unless another is given)
turns their shards into gradients on the master. See
``tinyai.parallel.executor`` and ``tinyai.parallel.strategy``.
"""
from __future__ import annotations

from typing import Any

from tinyai.parallel.executor import Executor, make_executor
from tinyai.parallel.options import ParallelOptions
from tinyai.parallel.strategy import StepOutcome, Strategy, SynchronousAllReduce


class DataParallel:
    """Data-parallel steps of ``model`` under ``loss``.

    Args:
        model: the master model; its parameters receive the averaged gradients.
        loss: a loss object with ``loss(target, prediction)``.
        workers: number of shards (and replicas) per step; ignored by "mpi"
            (the ranks of the job are the workers).
        backend: "thread", "process" or "mpi".
        on_error: "raise" or "skip" (see ``SynchronousAllReduce``).
        step_timeout: seconds before a busy worker is reported as hung.
        strategy: the strategy to use; ``SynchronousAllReduce(on_error)`` if None.
        executor: an executor already started (then ``workers``, ``backend``
            and ``step_timeout`` are not used); made by ``make_executor`` if None.
    """

    def __init__(self, model: Any, loss: Any, workers: int = 2, backend: str = "thread",
                 on_error: str = "raise", step_timeout: float | None = None,
                 strategy: Strategy | None = None, executor: Executor | None = None) -> None:
        options = ParallelOptions(backend, workers, on_error, step_timeout)
        if backend == "auto":
            raise ValueError("DataParallel: backend must be 'thread', 'process' or 'mpi' "
                             "(the Trainer's 'auto' measures them; see tinyai.parallel.auto)")
        self.model = model
        if executor is None:
            executor = make_executor(backend, model, loss, workers, options.step_timeout)
        self.executor: Executor | None = executor
        self.strategy = strategy if strategy is not None else SynchronousAllReduce(on_error)
        self.strategy.bind(model, loss, self.executor)

    @property
    def alive(self) -> bool:
        return self.executor is not None and self.executor.alive

    @property
    def is_root(self) -> bool:
        return self.executor is None or self.executor.is_root

    def compute_gradients(self, x: Any, y: Any) -> StepOutcome:
        """One step's shard work; with the default strategy, the batch's mean gradient lands on ``p.grad``."""
        if self.executor is None:
            raise RuntimeError("DataParallel: compute_gradients after shutdown()")
        return self.strategy.compute_gradients(x, y)

    def shutdown(self, timeout: float = 30) -> bool:
        """Release the workers within about ``timeout`` seconds. Safe to call twice."""
        if self.executor is None:
            return True
        executor, self.executor = self.executor, None
        self.strategy.close()
        return executor.shutdown(timeout)
