"""DataParallel: one synchronous data-parallel step, whatever runs the shards.

A step on a global batch:

1. split the batch into one shard per worker;
2. every replica starts from the master's parameters;
3. each worker computes its shard's mean loss and gradients;
4. the gradients are averaged, weighted by shard size, onto the master;
5. the caller's optimizer updates the master once.

Because the loss is a mean over examples, step 4 reproduces the gradient of
the whole batch exactly, so k steps on 2, 3 or 4 workers give the same
parameters as k single-thread steps (up to floating-point rounding).

Two kinds of layer need more than that to keep the equality:

* batch normalisation takes statistics over the whole batch, so its workers
  sum their shard statistics through a communicator (synchronised batch
  norm); the master's running statistics are then the same as after a
  single-thread step, and are copied back from a replica;
* dropout draws random masks; every worker replays the master's random
  stream for the whole batch and keeps its own rows (``ShardRandom``), so
  the masks are those of single-thread training.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from tinyai.backend import get_array_module
from tinyai.parallel.aggregator import GradientAggregator
from tinyai.parallel.processor import BatchProcessResult
from tinyai.parallel.utils import apply_aggregated_gradients

logger = logging.getLogger(__name__)

BACKENDS = ("thread", "process")


class ShardError(RuntimeError):
    """A shard of a data-parallel step raised; ``worker_id`` says which one."""

    def __init__(self, message: str, worker_id: int, cause: BaseException | None) -> None:
        super().__init__(message)
        self.worker_id = worker_id
        self.cause = cause


@dataclass
class StepOutcome:
    """What one data-parallel step produced; ``prediction`` is None when a shard was skipped."""

    loss: float
    batch_size: int
    ok_shards: int
    failed_shards: int
    prediction: Any = None


def make_executor(backend: str, model: Any, loss: Any, workers: int) -> Any:
    """Start the executor for ``backend`` ("thread" or "process") with ``workers`` replicas."""
    if backend == "thread":
        from tinyai.parallel.thread_executor import ThreadExecutor

        return ThreadExecutor(model, loss, workers)
    if backend == "process":
        from tinyai.parallel.process_executor import ProcessExecutor

        return ProcessExecutor(model, loss, workers)
    raise ValueError(f"data parallel: unknown backend {backend!r}; choose one of {BACKENDS} or 'auto'")


class DataParallel:
    """Runs data-parallel steps of ``model`` under ``loss`` on an executor.

    Args:
        model: the master model; its parameters receive the averaged gradients.
        loss: a loss object with ``loss(target, prediction)``.
        workers: number of shards (and replicas) per step.
        backend: "thread" or "process".
        on_error: "raise" (stop at the first failed shard) or "skip" (average
            the shards that succeeded and count the others). With batch
            normalisation a failed shard stops its peers too (they wait for
            its statistics), so the whole step fails.

    Random draws come from the master's stream (``tinyai.backend.seed``),
    replayed for the whole batch by every worker, so dropout masks are those
    single-thread training would draw.
    """

    def __init__(self, model: Any, loss: Any, workers: int, backend: str = "thread",
                 on_error: str = "raise") -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"data parallel: on_error must be 'raise' or 'skip', got {on_error!r}")
        self.model = model
        self.loss = loss
        self.workers = workers
        self.backend = backend
        self.on_error = on_error
        self.executor = make_executor(backend, model, loss, workers)

    @property
    def alive(self) -> bool:
        return self.executor is not None and self.executor.alive

    def compute_gradients(self, x: Any, y: Any, scale: float = 1.0, accumulate: bool = False) -> StepOutcome:
        """Steps 1-4: leave the batch's mean gradient on the master's parameters.

        ``scale`` multiplies the gradient and ``accumulate`` adds it to the
        gradients already there: together they accumulate a weighted mean
        over several batches before one update.
        """
        results: list[BatchProcessResult] = self.executor.compute(self.model, x, y)
        failed = [r for r in results if not r.success]
        if failed and (self.on_error == "raise" or len(failed) == len(results)):
            first = failed[0]
            raise ShardError(f"data parallel: worker {first.worker_id} failed on its shard of "
                             f"{first.batch_size} examples: {first.exception}", first.worker_id, first.exception)
        for r in failed:
            logger.warning("data parallel: skipped the shard of worker %d (%s)", r.worker_id, r.exception)
        aggregator = GradientAggregator(len(results))
        for r in results:
            if r.success:
                aggregator.submit_gradients(r.gradients, r.batch_size)
            else:
                aggregator.submit_failure(r.worker_id, r.exception)
        average = aggregator.get_average_gradients()
        if scale != 1.0:
            average = {name: g * scale for name, g in average.items()}
        apply_aggregated_gradients(self.model, average, accumulate=accumulate)
        ok = [r for r in results if r.success]
        total = sum(r.batch_size for r in ok)
        loss = sum(r.loss * r.batch_size for r in ok) / total if total else math.nan
        prediction = None
        if not failed and all(r.prediction is not None for r in results):
            xp = get_array_module(results[0].prediction)
            prediction = xp.concatenate([r.prediction for r in results])
        return StepOutcome(loss, total, len(ok), len(failed), prediction)

    def shutdown(self, timeout: float = 30) -> None:
        """Release the executor's threads or processes. Safe to call twice."""
        if self.executor is not None:
            self.executor.shutdown(timeout)
            self.executor = None
