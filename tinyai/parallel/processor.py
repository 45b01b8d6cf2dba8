"""ParallelBatchProcessor: the work of one worker on one shard of a batch.

Forward, loss, backward on the worker's own replica, then hand the gradients
over. A shard that raises is reported as a failed result (and, with an
aggregator, as a failure), never as a zero gradient.

The loss of the whole batch of N examples is L = sum_k (n_k / N) L_k, with
L_k the mean loss of shard k. A worker therefore starts its backward pass
with the gradient n_k / N (its share of L), not 1. For most models that only
scales the result, but where the shards are coupled (synchronised batch norm
sums gradient terms across shards) only the shares add up to the gradient of
L. The gradient is reported divided by the share again — the shard's mean
gradient — which is what ``GradientAggregator`` averages by shard size.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from tinyai.autograd import Variable
from tinyai.backend import get_array_module


@dataclass
class BatchProcessResult:
    """What one worker reports for one shard (TinyAI's BatchProcessResult).

    Attributes:
        worker_id: the worker that computed the shard (TinyAI's ``threadId``).
        loss: the shard's mean loss (``lossValue``); NaN when it failed.
        batch_size: the number of examples in the shard (``batchSize``).
        success: whether forward, loss and backward completed (``isSuccess()``).
        exception: what the shard raised, or None (``getException()``).
        gradients: parameter name -> the gradient of the shard's *mean*
            loss (empty when it failed; not in TinyAI, where the processor
            submitted them to the aggregator itself).
        prediction: the model's output on the shard (for the training
            metric), or None.
    """

    worker_id: int
    loss: float
    batch_size: int
    success: bool
    exception: BaseException | None = None
    gradients: dict[str, Any] = field(default_factory=dict, repr=False)
    prediction: Any = field(default=None, repr=False)


def named_gradients(model: Any) -> dict[str, Any]:
    """Parameter name -> gradient array, for the parameters that received one."""
    return {name: p.grad.data for name, p in model.named_params() if p.grad is not None}


class ParallelBatchProcessor:
    """Compute one shard's loss and gradients on a replica.

    Args:
        model: the worker's replica (a Model or Block).
        loss: a loss object with ``loss(target, prediction)``.
        x, y: the shard's inputs and targets (arrays).
        worker_id: which worker runs it (reported back).
        aggregator: if given, the gradients (or the failure) are submitted to it.
        total_batch_size: N, the size of the whole batch this shard belongs
            to (defaults to the shard's own size: a batch of one shard).
    """

    def __init__(self, model: Any, loss: Any, x: Any, y: Any, worker_id: int, aggregator: Any = None,
                 total_batch_size: int | None = None) -> None:
        self.model = model
        self.loss = loss
        self.x = x
        self.y = y
        self.worker_id = worker_id
        self.aggregator = aggregator
        self.total_batch_size = total_batch_size

    def __call__(self) -> BatchProcessResult:
        """The callable entry point (TinyAI's ``Callable<BatchProcessResult>.call()``)."""
        return self.run()

    def call(self) -> BatchProcessResult:
        """TinyAI's name for ``run()``: lets a processor be handed to any executor that calls ``call()``."""
        return self.run()

    def run(self) -> BatchProcessResult:
        size = len(self.x)
        share = size / (self.total_batch_size or size)
        try:
            self.model.clear_grads()
            prediction = self.model(Variable(self.x, requires_grad=False))
            loss = self.loss.loss(Variable(self.y, requires_grad=False), prediction)
            xp = get_array_module(loss.data)
            loss.backward(xp.full(loss.shape, share, dtype=loss.dtype))
            loss.unchain_backward()
            gradients = named_gradients(self.model)
            if share != 1:
                gradients = {name: g / share for name, g in gradients.items()}
            value = float(loss.item())
            predicted = prediction.data if isinstance(prediction, Variable) else None
        except Exception as exc:
            if self.aggregator is not None:
                self.aggregator.submit_failure(self.worker_id, exc)
            return BatchProcessResult(self.worker_id, math.nan, size, False, exc)
        if self.aggregator is not None:
            self.aggregator.submit_gradients(gradients, size)
        return BatchProcessResult(self.worker_id, value, size, True, None, gradients, predicted)
