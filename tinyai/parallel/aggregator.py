"""GradientAggregator: collect the gradients of every shard, hand out their average.

In synchronous data parallelism each worker computes the gradient of the loss
on its shard of the batch. The loss is a *mean* over examples, so the
gradient of the whole batch of N examples is

    g = sum_k (n_k / N) g_k

where shard k holds n_k examples and g_k is its mean gradient. Weighting by
shard size makes uneven shards (a batch of 10 on 3 workers: 4 + 3 + 3) give
exactly the full-batch gradient, not an approximation.

A shard that failed is recorded as a failure, never as a zero gradient: a
zero would drag the average towards zero (TinyAI's Java aggregator did that).

TinyAI's own idiom works too: ``submit_gradients(model_params)`` with no
batch size and a map of Parameters. Without a batch size every submission
weighs the same (the plain mean of TinyAI's ``divNum(expectedSubmissions)``);
a Parameter contributes its *gradient* (``p.grad``), not its value.
"""
from __future__ import annotations

import threading
from typing import Any, Mapping

from tinyai.autograd import Variable
from tinyai.backend.settings import is_int
from tinyai.nn import Parameter


class GradientAggregator:
    """Thread-safe weighted average of the gradients of ``expected_submissions`` shards.

    >>> import numpy as np
    >>> agg = GradientAggregator(2)
    >>> agg.submit_gradients({"W": np.array([1.0])}, batch_size=3)
    >>> agg.submit_gradients({"W": np.array([5.0])}, batch_size=1)
    >>> agg.get_average_gradients()["W"]
    array([2.])
    """

    def __init__(self, expected_submissions: int) -> None:
        if not is_int(expected_submissions) or expected_submissions < 1:
            raise ValueError(f"GradientAggregator: expected_submissions must be a positive integer, "
                             f"got {expected_submissions!r}")
        self.expected_submissions = expected_submissions
        self._done = threading.Condition()
        self.reset()

    def reset(self) -> None:
        """Forget every submission: ready for the next step."""
        with self._done:
            self._sums: dict[str, Any] = {}
            self._total_weight = 0
            self._arrived = 0
            self._failures: list[tuple[int, BaseException]] = []
            self._weighted: bool | None = None

    def submit_gradients(self, gradients: Mapping[str, Any], batch_size: int | None = None) -> None:
        """Add one shard's gradients, weighted by its ``batch_size``.

        ``gradients`` maps parameter names to gradient arrays, or to
        Parameters (TinyAI's ``Map<String, Parameter>``), whose ``grad`` is
        taken; a Parameter without a gradient adds nothing. Without
        ``batch_size`` every submission has weight 1 (equal weights); a step
        must not mix weighted and unweighted submissions.
        """
        if batch_size is not None and (not is_int(batch_size)
                                       or batch_size <= 0):
            raise ValueError(f"GradientAggregator.submit_gradients: batch_size must be a positive int or None, "
                             f"got {batch_size!r}")
        arrays = {name: _gradient_array(name, value) for name, value in gradients.items()}
        weighted = batch_size is not None
        with self._done:
            self._check_room()
            if self._weighted is not None and self._weighted != weighted:
                raise ValueError("GradientAggregator.submit_gradients: this step mixes submissions with and "
                                 "without batch_size; give every shard its batch size, or none (equal weights)")
            self._weighted = weighted
            batch_size = batch_size if weighted else 1
            for name, grad in arrays.items():
                if grad is None:
                    continue
                weighted = grad * batch_size
                current = self._sums.get(name)
                self._sums[name] = weighted if current is None else current + weighted
            self._total_weight += batch_size
            self._arrived += 1
            self._done.notify_all()

    def submit_failure(self, worker_id: int, error: BaseException) -> None:
        """Record that a shard failed: it counts as arrived but adds no gradient."""
        with self._done:
            self._check_room()
            self._failures.append((worker_id, error))
            self._arrived += 1
            self._done.notify_all()

    def _check_room(self) -> None:
        if self._arrived >= self.expected_submissions:
            raise RuntimeError(f"GradientAggregator: all {self.expected_submissions} expected submissions "
                               "have arrived already; call reset() before the next step")

    @staticmethod
    def aggregate(worker_gradients: "list[Mapping[str, Any]]") -> dict[str, Any]:
        """The plain mean, name by name, of several workers' gradient maps (TinyAI's ``aggregate``).

        A name missing from some maps is averaged over the maps that have it.
        Equal weights: use ``submit_gradients(..., batch_size)`` for shards of
        different sizes.

        >>> import numpy as np
        >>> GradientAggregator.aggregate([{"W": np.array([1.0])}, {"W": np.array([3.0])}])["W"]
        array([2.])
        """
        sums: dict[str, Any] = {}
        counts: dict[str, int] = {}
        for k, gradients in enumerate(worker_gradients):
            for name, value in gradients.items():
                grad = _gradient_array(name, value)
                if grad is None:
                    continue
                sums[name] = grad.copy() if name not in sums else sums[name] + grad
                counts[name] = counts.get(name, 0) + 1
        return {name: total / counts[name] for name, total in sums.items()}

    def is_ready(self) -> bool:
        """True when every expected shard has reported (with gradients or a failure)."""
        with self._done:
            return self._arrived >= self.expected_submissions

    def get_submission_count(self) -> int:
        """How many shards have reported so far, failures included."""
        with self._done:
            return self._arrived

    @property
    def failures(self) -> list[tuple[int, BaseException]]:
        """(worker id, exception) for each shard that failed this step."""
        with self._done:
            return list(self._failures)

    def get_average_gradients(self, timeout: float | None = None) -> dict[str, Any]:
        """Block until every shard reported, then return the size-weighted mean gradients.

        Only the shards that succeeded enter the average. Raises TimeoutError
        when ``timeout`` seconds pass first, and RuntimeError when every shard failed.
        """
        with self._done:
            if not self._done.wait_for(lambda: self._arrived >= self.expected_submissions, timeout):
                raise TimeoutError(f"GradientAggregator: {self._arrived} of {self.expected_submissions} "
                                   f"submissions arrived within {timeout} s")
            if self._total_weight == 0:
                raise RuntimeError(f"GradientAggregator: all {self.expected_submissions} shards failed; "
                                   "there is no gradient to average")
            return {name: total / self._total_weight for name, total in self._sums.items()}


def _gradient_array(name: str, value: Any) -> Any:
    """The gradient array a submitted value stands for (a Parameter's grad, a Variable's data, an array)."""
    if isinstance(value, Parameter):
        return None if value.grad is None else value.grad.data
    if isinstance(value, Variable):
        return value.data
    if value is not None and not hasattr(value, "dtype"):
        raise TypeError(f"GradientAggregator.submit_gradients: the gradient of {name!r} must be an array, a "
                        f"Variable or a Parameter (whose grad is taken), got {type(value).__name__}")
    return value
