"""Synchronous all-reduce: the strategy that makes k workers equal one.

A step on a global batch of N examples:

1. the executor splits the batch into one shard per worker; every replica
   starts from the master's parameters, buffers and random stream;
2. each worker computes its shard's mean loss and gradient g_k;
3. one all-reduce averages the gradients weighted by shard size:
   g = sum_k n_k g_k / N — exactly the gradient of the whole batch's mean loss;
4. g lands on the master's parameters; the optimizer updates once.

So k steps on 2, 3 or 4 workers give the parameters of k single-thread steps
(up to floating-point rounding): the strategy is *exact*. Two kinds of layer
need help from the executor for that: batch normalisation sums its statistics
over the shards (synchronised batch norm), and dropout replays the master's
random stream for the whole batch and keeps its own rows (``ShardRandom``).

A shard that fails: with on_error="raise" the step raises ``WorkerError``
naming the worker; with "skip" the average is taken over the shards that
succeeded (the mean gradient of the examples that were computed, not a
gradient diluted by a zero) and logged.
"""
from __future__ import annotations

import logging
from typing import Any

from tinyai.parallel.stats import DENSE_ITEMSIZE, allreduce_wire_bytes
from tinyai.parallel.strategy.base import StepOutcome, Strategy
from tinyai.parallel.utils import apply_aggregated_gradients

logger = logging.getLogger(__name__)


class SynchronousAllReduce(Strategy):
    """Average the shards' gradients (weighted by size) onto the master; the optimizer updates once."""

    name = "allreduce"
    exact = True

    def compute_gradients(self, x: Any, y: Any) -> StepOutcome:
        """Leave the batch's mean-loss gradient on the master's parameters (``p.grad``)."""
        results = self.executor.compute(self.model, x, y)
        for r in self.check_failures(results):
            logger.warning("data parallel: skipped the shard of worker %d (%s)", r.worker_id, r.exception)
        average = self.executor.allreduce_gradients(results)
        apply_aggregated_gradients(self.model, average)
        if len(results) > 1:  # the direct exchange's bytes (``tinyai.parallel.stats``)
            nbytes = sum(g.nbytes for g in average.values())
            entries = sum(g.size for g in average.values())
            self.stats.record_exchange(allreduce_wire_bytes(nbytes, len(results), "direct"),
                                       allreduce_wire_bytes(entries * DENSE_ITEMSIZE, len(results), "direct"))
        return self.outcome_of(results)
