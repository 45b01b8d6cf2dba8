"""Losses for class labels: softmax cross-entropy (plain and masked) and sigmoid cross-entropy."""
from __future__ import annotations

from typing import Any

from tinyai.autograd import Variable
from tinyai.backend import get_array_module
from tinyai.functions.loss import sigmoid_cross_entropy, softmax_cross_entropy
from tinyai.functions.reductions import sum as sum_
from tinyai.functions.shape import get_item, reshape
from tinyai.functions.softmax import log_softmax
from tinyai.losses.base import Loss, on_device_of


def _class_labels(loss: Loss, logits: Variable, labels: Any, expected: tuple[int, ...]) -> Any:
    """Integer labels of shape ``expected``, on the logits' device.

    Accepts TinyAI's habits: a trailing axis of size 1 (labels stored as an
    (N, 1) column) and float arrays holding whole numbers (labels kept in a
    float NdArray). Anything else with the wrong shape or non-integral values
    is refused with the shapes involved.
    """
    labels = on_device_of(logits.data, labels)
    xp = get_array_module(labels)
    if labels.shape == (*expected, 1):
        labels = labels.reshape(expected)
    if labels.shape != expected:
        raise ValueError(f"{loss.name}: labels of shape {tuple(labels.shape)} do not match logits of shape "
                         f"{tuple(logits.shape)}; expected labels of shape {expected}")
    if labels.dtype.kind == "f":
        if labels.size and not bool(xp.all(labels == xp.floor(labels))):
            raise ValueError(f"{loss.name}: float labels must hold whole class indices; "
                             "for soft (probability) targets pass an array shaped like the logits")
        labels = labels.astype(xp.int64)
    elif labels.dtype.kind == "b":
        labels = labels.astype(xp.int64)
    elif labels.dtype.kind not in "iu":
        raise TypeError(f"{loss.name}: labels must be integer class indices, got dtype {labels.dtype}")
    return labels


class SoftmaxCrossEntropy(Loss):
    """Cross-entropy of softmax(logits) against class labels, averaged over examples.

    ``-mean over examples of log softmax(x)[label]``. Shapes: logits (N, C)
    with labels (N,) (or (N, 1)); or (N, T, C) with labels (N, T), every
    token counting as one example. Labels must lie in [0, C).

    Soft targets are accepted too: a float target shaped like the logits
    (one-hot or smoothed probabilities, rows summing to 1) gives
    ``-mean over examples of sum_c target_c * log softmax(x)_c``.
    (PyTorch: ``CrossEntropyLoss``.)
    """

    def compute(self, prediction: Variable, target: Variable) -> Variable:
        if prediction.ndim < 2:
            raise ValueError(f"{self.name}: logits need shape (N, C) or (N, ..., C), "
                             f"got shape {tuple(prediction.shape)}")
        if target.dtype.kind == "f" and target.shape == prediction.shape:
            probabilities = on_device_of(prediction.data, target.data).astype(prediction.dtype)
            rows = prediction.size // prediction.shape[-1]
            return -sum_(log_softmax(prediction) * probabilities) * (1.0 / rows)
        labels = _class_labels(self, prediction, target.data, tuple(prediction.shape[:-1]))
        return self._named(softmax_cross_entropy, prediction, Variable(labels, requires_grad=False))


class MaskedSoftmaxCrossEntropy(Loss):
    """Softmax cross-entropy over a padded sequence batch, averaged over the real tokens only.

    Shapes: logits (N, T, C), labels (N, T), and which tokens count given by
    one of

    * ``mask``: (N, T), true/1 for a real token, false/0 for padding;
    * ``valid_lens``: (N,), sequence n has its first ``valid_lens[n]`` tokens real;
    * ``ignore_index`` (constructor): tokens whose label equals it are padding
      (used when neither of the above is passed, as when a Trainer calls
      ``loss(target, prediction)``).

    Loss = sum over real tokens of -log softmax(x)[label] / number of real
    tokens: padding contributes neither to the sum nor to the count, so the
    result does not depend on how much padding a batch has. Labels at padded
    positions are never read, so any filler value is fine there.

    A third positional argument is taken as a mask when 2-D and as valid
    lengths when 1-D: ``loss(target, prediction, mask)``.
    """

    def __init__(self, ignore_index: int | None = None) -> None:
        self.ignore_index = ignore_index

    def compute(self, prediction: Variable, target: Variable, mask: Any = None,
                valid_lens: Any = None) -> Variable:
        if prediction.ndim != 3:
            raise ValueError(f"{self.name}: logits need shape (N, T, C), got shape {tuple(prediction.shape)}")
        n, steps, classes = prediction.shape
        xp = get_array_module(prediction.data)
        labels = on_device_of(prediction.data, target.data)
        if labels.shape != (n, steps):
            raise ValueError(f"{self.name}: labels of shape {tuple(labels.shape)} do not match logits of "
                             f"shape {tuple(prediction.shape)}; expected labels of shape {(n, steps)}")
        if isinstance(mask, Variable):
            mask = mask.data
        if isinstance(valid_lens, Variable):
            valid_lens = valid_lens.data
        if mask is not None and valid_lens is None and getattr(mask, "ndim", 2) == 1:
            mask, valid_lens = None, mask  # a 1-D third argument: valid lengths
        if mask is not None and valid_lens is not None:
            raise ValueError(f"{self.name}: pass either mask or valid_lens, not both")
        if valid_lens is not None:
            keep = self._mask_from_lengths(xp, on_device_of(prediction.data, valid_lens), n, steps)
        elif mask is not None:
            mask = on_device_of(prediction.data, mask)
            if mask.shape != (n, steps):
                raise ValueError(f"{self.name}: mask of shape {tuple(mask.shape)} does not match labels of "
                                 f"shape {(n, steps)}")
            keep = mask != 0
        elif self.ignore_index is not None:
            keep = labels != self.ignore_index
        else:
            keep = None

        flat_logits = reshape(prediction, (n * steps, classes))
        flat_labels = labels.reshape(n * steps)
        if keep is not None:
            rows = xp.nonzero(keep.reshape(n * steps))[0]
            if rows.size == 0:
                raise ValueError(f"{self.name}: every token of the batch is masked; there is nothing to average")
            if rows.size < n * steps:
                # Pick the real tokens' rows; the plain loss then averages over exactly them.
                flat_logits = get_item(flat_logits, rows)
                flat_labels = flat_labels[rows]
        flat_labels = _class_labels(self, flat_logits, flat_labels, (flat_logits.shape[0],))
        return self._named(softmax_cross_entropy, flat_logits, Variable(flat_labels, requires_grad=False))

    def _mask_from_lengths(self, xp: Any, lengths: Any, n: int, steps: int) -> Any:
        if lengths.shape != (n,):
            raise ValueError(f"{self.name}: valid_lens of shape {tuple(lengths.shape)} should have shape ({n},)")
        if lengths.dtype.kind not in "iu":
            raise TypeError(f"{self.name}: valid_lens must be integers, got dtype {lengths.dtype}")
        if n and (int(lengths.min()) < 0 or int(lengths.max()) > steps):
            raise ValueError(f"{self.name}: valid_lens must lie in [0, {steps}], "
                             f"got values from {int(lengths.min())} to {int(lengths.max())}")
        return xp.arange(steps)[None, :] < lengths[:, None]

    def __repr__(self) -> str:
        return f"{self.name}(ignore_index={self.ignore_index})"


class SigmoidCrossEntropy(Loss):
    """Binary cross-entropy on logits, averaged over every element.

    ``mean(-t log sigmoid(x) - (1 - t) log(1 - sigmoid(x)))``, computed
    without overflow. Shapes: logits and targets identical; targets in [0, 1]
    (0/1 labels or probabilities). (PyTorch: ``BCEWithLogitsLoss``.)
    """

    def compute(self, prediction: Variable, target: Variable) -> Variable:
        if prediction.shape != target.shape:
            raise ValueError(f"{self.name}: logits of shape {tuple(prediction.shape)} and targets of shape "
                             f"{tuple(target.shape)} differ")
        if not target.requires_grad:
            data = on_device_of(prediction.data, target.data)
            if data.size and (float(data.min()) < 0 or float(data.max()) > 1):
                raise ValueError(f"{self.name}: targets must lie in [0, 1], got values from "
                                 f"{float(data.min()):g} to {float(data.max()):g}")
            target = Variable(data.astype(prediction.dtype), requires_grad=False)
        return self._named(sigmoid_cross_entropy, prediction, target)
