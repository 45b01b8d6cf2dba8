"""The Strategy interface: how the gradients of the shards become an update.

An executor (``tinyai.parallel.executor``) runs shards somewhere; a strategy
decides what the work of the shards means for the model. The Trainer drives
a strategy with two calls per batch, and nothing else:

    outcome = strategy.compute_gradients(x, y)   # shards run; loss, sizes, failures
    ...                                          # the Trainer checks the loss, accumulates
    strategy.apply_update(optimizer)             # once per update (every accumulate_steps batches)

The contract:

* ``bind(model, loss, executor)`` — called once before the first step with
  the master model, the loss and a started executor.
* ``compute_gradients(x, y) -> StepOutcome`` — run the step's shard work on
  the executor. A strategy that lets the Trainer's optimizer do the update
  leaves the gradient to apply on the master's parameters (``p.grad``) —
  the Trainer may add several batches' gradients before one update
  (gradient accumulation happens there, in one place, for every strategy).
  A strategy that updates by itself (a parameter server applying updates
  where it keeps the parameters; local SGD updating each replica and
  averaging them now and then) may leave ``p.grad`` empty.
* ``apply_update(optimizer)`` — make the update. The default is
  ``optimizer.update()`` on the master. A strategy that owns the update step
  overrides it (and may ignore ``optimizer`` or use it only on a server).
* ``owns_epoch``, ``train_epoch(batches, optimizer)`` — a strategy whose
  workers each take whole batches on their own (asynchronous parameter
  servers) trains the epoch's batches itself; ``end_epoch(optimizer)`` runs
  after each epoch's last batch (local SGD averages its replicas there).
* ``close()`` — release what the strategy itself holds (not the executor).
* ``exact`` — True when training with the strategy equals single-process
  training on the same batches (up to rounding); such strategies are tested
  for that equality in float64.
* ``on_error`` — "raise" (a failed shard raises ``WorkerError``) or "skip"
  (the step goes on without it; ``StepOutcome.failed_shards`` counts it).

Executors give a strategy three tools: ``compute`` (forward and backward on
every shard, the master's state in force), ``allreduce_gradients`` (the
size-weighted mean of successful shards' gradients, identical on every rank),
and ``run`` (any function on every worker, with a per-worker ``state`` dict
that persists: replica optimizers, error-feedback residuals, ...).
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

from tinyai.backend import get_array_module
from tinyai.parallel.executor.base import Executor, WorkerError
from tinyai.parallel.options import ParallelOptions
from tinyai.parallel.processor import BatchProcessResult
from tinyai.parallel.stats import ParallelStats


@dataclass
class StepOutcome:
    """What one data-parallel step produced.

    Attributes:
        loss: the mean loss over the examples of the shards that succeeded.
        batch_size: how many examples those shards held.
        ok_shards, failed_shards: shard counts (failed ones only with on_error="skip").
        prediction: the whole batch's prediction in row order, or None when a shard was skipped.
    """

    loss: float
    batch_size: int
    ok_shards: int
    failed_shards: int
    prediction: Any = None


class Strategy(ABC):
    """How the shards' gradients become an update of the model (see the module docstring)."""

    #: A short name for messages and logs.
    name: ClassVar[str] = ""
    #: True when training equals single-process training on the same batches.
    exact: ClassVar[bool] = False

    def __init__(self, on_error: str = "raise") -> None:
        self.on_error = ParallelOptions(on_error=on_error).on_error  # checked where every option is
        #: What the strategy exchanged and did (``Trainer.parallel_stats()``).
        self.stats = ParallelStats()
        self.model: Any = None
        self.loss: Any = None
        self.executor: Executor | None = None

    def bind(self, model: Any, loss: Any, executor: Executor) -> None:
        """Attach the master model, the loss and a started executor (once, before the first step)."""
        self.model, self.loss, self.executor = model, loss, executor

    @abstractmethod
    def compute_gradients(self, x: Any, y: Any) -> StepOutcome:
        """Run one step's shard work on (x, y); see the module docstring for what it leaves behind."""

    def apply_update(self, optimizer: Any) -> None:
        """Update the model once; by default the optimizer steps the master on ``p.grad``."""
        optimizer.update()
        self.stats.record_update()

    def close(self) -> None:
        """Release what the strategy holds (the executor is shut down by its owner)."""

    # -- hooks for strategies whose workers take whole batches (asynchronous training) -----------
    #: True when the strategy trains a whole epoch by itself (``train_epoch``) instead of batch by batch.
    owns_epoch: ClassVar[bool] = False

    def train_epoch(self, batches: Sequence[Any], optimizer: Any) -> list[float]:
        """Train on every batch of an epoch; each batch's loss (only when ``owns_epoch``)."""
        raise TypeError(f"{type(self).__name__} trains batch by batch (compute_gradients, apply_update)")

    def end_epoch(self, optimizer: Any) -> None:
        """Called after the last batch of each epoch, before evaluation (local SGD averages here)."""

    # -- hooks for strategies that bring their own ranks (hybrid layouts) ------------------------
    def make_executor(self, model: Any, loss: Any) -> Executor | None:
        """The executor this strategy runs on when handed to ``Trainer(strategy=...)``.

        None (the default): the Trainer's own executor (``parallel_backend``).
        ``HybridParallel`` returns the replicas of its process grid.
        """
        return None

    def checkpoint_state(self, model: Any, optimizer: Any) -> tuple[Any, Any, bool] | None:
        """(model state, optimizer state, whether this rank writes) for a checkpoint, or None.

        None (the default): every worker holds the whole model, and the
        Trainer's root writes ``model``/``optimizer`` as they are. A strategy
        whose ranks hold parts of the model gathers them here; then every
        rank calls it (it may be collective).
        """
        return None

    # -- helpers for subclasses -----------------------------------------------------------------
    def check_failures(self, results: Sequence[BatchProcessResult]) -> list[BatchProcessResult]:
        """The failed results; raises WorkerError for the first one unless on_error="skip" and some succeeded."""
        failed = [r for r in results if not r.success]
        if failed and (self.on_error == "raise" or len(failed) == len(results)):
            first = failed[0]
            raise WorkerError(f"data parallel: worker {first.worker_id} failed on its shard of "
                              f"{first.batch_size} examples: {first.exception}", first.worker_id, first.exception)
        return failed

    @staticmethod
    def outcome_of(results: Sequence[BatchProcessResult]) -> StepOutcome:
        """Loss (size-weighted over the successful shards), counts, and the batch's prediction."""
        ok = [r for r in results if r.success]
        total = sum(r.batch_size for r in ok)
        loss = sum(r.loss * r.batch_size for r in ok) / total if total else math.nan
        prediction = None
        if len(ok) == len(results) and results and all(r.prediction is not None for r in results):
            xp = get_array_module(results[0].prediction)
            prediction = xp.concatenate([r.prediction for r in results])
        return StepOutcome(loss, total, len(ok), len(results) - len(ok), prediction)
