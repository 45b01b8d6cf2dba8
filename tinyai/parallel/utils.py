"""TinyAI's ParallelTrainingUtils, as module functions."""
from __future__ import annotations

import logging
import os
import pickle
from typing import Any, Mapping

from tinyai.autograd import Variable
from tinyai.backend.settings import is_int

logger = logging.getLogger(__name__)


def deep_copy_model(model: Any) -> Any:
    """An independent copy of ``model`` (parameters, buffers, structure) by a pickle round trip.

    Gradients and graph links are not copied: a replica starts clean.
    """
    grads = [(p, p.grad) for p in model.params()]
    for p, _ in grads:
        p.grad = None
    try:
        return pickle.loads(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
    finally:
        for p, grad in grads:
            p.grad = grad


def is_model_parallelizable(model: Any) -> bool:
    """True when ``model`` can be replicated (it pickles) and has parameters to train."""
    try:
        params = list(model.params())
    except Exception as exc:
        logger.warning("model cannot be replicated: listing its parameters failed (%s)", exc)
        return False
    if not params:
        logger.warning("model cannot be replicated: it has no parameters")
        return False
    if any(p.data is None for p in params):
        logger.warning("model cannot be replicated yet: some lazy parameters are not initialised "
                       "(run one forward pass first)")
        return False
    try:
        deep_copy_model(model)
    except Exception as exc:
        logger.warning("model cannot be replicated: it does not pickle (%s: %s)", type(exc).__name__, exc)
        return False
    return True


def get_recommended_thread_count(batch_count: int) -> int:
    """TinyAI's rule: 75% of the machine's cores (rounded down), at most ``batch_count``, at least 1.

    ``batch_count`` is the work available: the number of pieces that can run
    at once. (TinyAI counted batches, since each of its threads took whole
    batches; tinyai splits every batch, so the Trainer passes the samples of
    the largest batch.) The Trainer's ``thread_count=0`` does not use the 75%:
    see ``tinyai.training.parallel_training.default_worker_count``.

    >>> import os
    >>> get_recommended_thread_count(1)
    1
    """
    if not is_int(batch_count) or batch_count < 0:
        raise ValueError(f"get_recommended_thread_count: batch_count must be an int >= 0, got {batch_count!r}")
    cores = os.cpu_count() or 1
    return max(1, min(int(cores * 0.75), batch_count))


def apply_aggregated_gradients(model: Any, gradients: Mapping[str, Any], accumulate: bool = False) -> None:
    """Put averaged gradients (parameter name -> array) on the master model's parameters.

    With ``accumulate`` they are added to the gradients already there (gradient
    accumulation over several batches); otherwise they replace them.
    """
    named = dict(model.named_params())
    unknown = sorted(set(gradients) - set(named))
    if unknown:
        raise KeyError(f"apply_aggregated_gradients: the model has no parameters named {unknown}")
    for name, param in named.items():
        grad = gradients.get(name)
        if grad is None:
            if not accumulate:
                param.grad = None
        elif accumulate and param.grad is not None:
            param.grad = Variable(param.grad.data + grad, requires_grad=False)
        else:
            param.grad = Variable(grad, requires_grad=False)


def format_parallel_stats(thread_count: int, successful_batches: int, total_batches: int, average_loss: float,
                          processing_time_ms: float) -> str:
    """TinyAI's one-line statistics of an epoch of parallel training.

    >>> format_parallel_stats(2, 9, 10, 0.25, 1234.4)
    'parallel training stats [threads: 2, successful batches: 9/10, average loss: 0.250000, processing time: 1234ms]'
    """
    return (f"parallel training stats [threads: {thread_count}, successful batches: "
            f"{successful_batches}/{total_batches}, average loss: {average_loss:.6f}, "
            f"processing time: {processing_time_ms:.0f}ms]")
