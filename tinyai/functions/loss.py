"""Loss functions: from a prediction and a target to one number to minimise.

All of them return the *mean* over the examples, so the learning rate does
not have to change with the batch size.
"""
from __future__ import annotations

from typing import Any

from tinyai.autograd import Function, Variable, as_variable
from tinyai.backend import get_array_module
from tinyai.backend.settings import is_number
from tinyai.functions.activations import sigmoid
from tinyai.functions.fused import softmax_cross_entropy_grad
from tinyai.functions.reductions import mean
from tinyai.functions.shape import sum_to
from tinyai.functions.softmax import softmax


def _check_labels(name: str, labels, n_rows: int, n_classes: int) -> None:
    if labels.dtype.kind not in "iu":
        raise TypeError(f"{name}: labels must be integers (class indices), got dtype {labels.dtype}")
    if labels.size != n_rows:
        raise ValueError(f"{name}: {labels.size} labels for {n_rows} rows of logits")
    # One device-to-host answer per batch (each int() on a GPU array is a synchronisation).
    if labels.size and bool(((labels < 0) | (labels >= n_classes)).any()):
        raise ValueError(f"{name}: labels must lie in [0, {n_classes}), "
                         f"got values from {int(labels.min())} to {int(labels.max())}")


class SoftmaxCrossEntropy(Function):
    """-mean(log softmax(x)[label]); gradient (softmax(x) - onehot(label)) / N.

    Logits of shape (N, C) with labels (N,), or (N, T, C) with labels (N, T):
    all leading axes are examples.
    """

    def forward(self, x, t):
        xp = get_array_module(x)
        if x.ndim < 2:
            raise ValueError(f"softmax_cross_entropy: logits need shape (N, C), got {tuple(x.shape)}")
        if t.shape != x.shape[:-1]:
            raise ValueError(f"softmax_cross_entropy: labels of shape {tuple(t.shape)} do not match "
                             f"logits of shape {tuple(x.shape)}; expected labels of shape {tuple(x.shape[:-1])}")
        n_classes = x.shape[-1]
        x2 = x.reshape(-1, n_classes)
        t2 = t.reshape(-1)
        _check_labels("softmax_cross_entropy", t2, x2.shape[0], n_classes)
        self.labels = t  # constants for backward
        row_max = x2.max(axis=1, keepdims=True)
        shifted = x2 - row_max
        log_z = xp.log(xp.exp(shifted).sum(axis=1))
        self.lse = log_z + row_max[:, 0]  # log-sum-exp of each row: softmax for backward, without a recount
        picked = shifted[xp.arange(x2.shape[0]), t2]
        return xp.asarray((log_z - picked).mean(), dtype=x.dtype)

    def backward(self, gy):
        x, _ = self.saved_inputs()
        return SoftmaxCrossEntropyGrad(self.labels, self.lse)(x, gy), None


class SoftmaxCrossEntropyGrad(Function):
    """(softmax(x) - onehot(labels)) * gy / N: the gradient of softmax cross-entropy, an operation of its own.

    Its forward is one fused kernel on a GPU (three array passes on the CPU)
    that rebuilds softmax from the log-sum-exp of each row, saved by the
    loss's forward pass. Its backward is what second derivatives need.
    """

    def __init__(self, labels: Any, lse: Any) -> None:
        self.labels = labels  # constants: the class indices and each row's log-sum-exp
        self.lse = lse

    def forward(self, x, gy):
        return softmax_cross_entropy_grad(x, self.labels, self.lse, gy * (1.0 / self.labels.size))

    def backward(self, ggx):
        # gx = (p - onehot) * s with p = softmax(x) and s = gy / N. Through p,
        # the Jacobian-vector product of softmax, p * (v - sum(p * v)); through s, a sum.
        x, gy = self.saved_inputs()
        n = self.labels.size
        p = softmax(x)
        onehot = get_array_module(self.labels).eye(x.shape[-1], dtype=x.dtype)[self.labels]
        pv = p * ggx
        gx = (pv - p * pv.sum(axis=-1, keepdims=True)) * (gy * (1.0 / n))
        ggy = sum_to(ggx * (p - onehot) * (1.0 / n), gy.shape)
        return gx, ggy


class SigmoidCrossEntropy(Function):
    """Binary cross-entropy on logits: mean(softplus(x) - t x); gradient (sigmoid(x) - t) / N.

    Computed as max(x, 0) - t x + log(1 + exp(-|x|)), which never overflows.
    """

    def forward(self, x, t):
        xp = get_array_module(x)
        if x.shape != t.shape:
            raise ValueError(f"sigmoid_cross_entropy: logits of shape {tuple(x.shape)} and targets of "
                             f"shape {tuple(t.shape)} differ")
        t = self.float_target = t.astype(x.dtype)
        loss = xp.maximum(x, 0) - t * x + xp.log1p(xp.exp(-xp.abs(x)))
        return xp.asarray(loss.mean(), dtype=x.dtype)

    def backward(self, gy):
        x, t = self.saved_inputs()
        scale = gy * (1.0 / x.size)
        # A float target of the logits' dtype is used as it is (a Variable when
        # recorded), so that gx keeps its dependence on t: d(gx)/dt = -scale.
        target = t if t.dtype == x.dtype else self.float_target
        gx = (sigmoid(x) - target) * scale
        gt = -x * scale if self.needs_input_grad[1] else None
        return gx, gt


class Huber(Function):
    """Mean Huber loss: 0.5 d^2 where |d| <= delta, delta (|d| - 0.5 delta) beyond, d = x - t."""

    def __init__(self, delta: float) -> None:
        self.delta = delta

    def forward(self, x, t):
        xp = get_array_module(x)
        if x.shape != t.shape:
            raise ValueError(f"huber_loss: prediction of shape {tuple(x.shape)} and target of "
                             f"shape {tuple(t.shape)} differ")
        d = x - t
        a = xp.abs(d)
        # Constants for backward: where d is in the quadratic zone, and the
        # slope +-delta outside it.
        self.inside = a <= self.delta
        self.outside_slope = xp.where(self.inside, 0, self.delta * xp.sign(d)).astype(x.dtype)
        loss = xp.where(self.inside, 0.5 * d * d, self.delta * (a - 0.5 * self.delta))
        return xp.asarray(loss.mean(), dtype=x.dtype)

    def backward(self, gy):
        x, t = self.saved_inputs()
        # d inside the quadratic zone, delta * sign(d) outside: d clipped to [-delta, delta].
        gd = (x - t) * self.inside + self.outside_slope
        gd = gd * (gy * (1.0 / x.size))
        return gd, -gd


def _check_not_empty(name: str, x: Variable) -> None:
    """A mean over no examples is 0 / 0: refuse it rather than return NaN."""
    if x.size == 0:
        raise ValueError(f"{name}: got an empty batch (shape {tuple(x.shape)}); the mean loss over "
                         "no examples is undefined")


def softmax_cross_entropy(logits: Any, labels: Any) -> Variable:
    """Cross-entropy between softmax(logits) and integer class labels, averaged over examples.

    Shapes: logits (N, C) and labels (N,) of integers in [0, C); returns a scalar.
    An empty batch is refused (ValueError): its mean is undefined.
    """
    logits = as_variable(logits)
    _check_not_empty("softmax_cross_entropy", logits)
    return SoftmaxCrossEntropy()(logits, labels)


def sigmoid_cross_entropy(logits: Any, targets: Any) -> Variable:
    """Binary cross-entropy between sigmoid(logits) and targets in [0, 1], averaged."""
    logits = as_variable(logits)
    targets = as_variable(targets)
    _check_not_empty("sigmoid_cross_entropy", logits)
    return SigmoidCrossEntropy()(logits, targets)


def mean_squared_error(prediction: Any, target: Any) -> Variable:
    """mean((prediction - target)**2) over all elements; the shapes must match exactly."""
    prediction, target = as_variable(prediction), as_variable(target)
    if prediction.shape != target.shape:
        raise ValueError(f"mean_squared_error: prediction of shape {prediction.shape} and target "
                         f"of shape {target.shape} differ")
    _check_not_empty("mean_squared_error", prediction)
    diff = prediction - target
    return mean(diff * diff)


def huber_loss(prediction: Any, target: Any, delta: float = 1.0) -> Variable:
    """Mean Huber loss: squared error near 0, absolute error beyond ``delta``."""
    if not is_number(delta) or not delta > 0:  # delta <= 0 would make the loss 0 or negative
        raise ValueError(f"huber_loss: delta must be a finite number > 0, got {delta!r}")
    prediction = as_variable(prediction)
    _check_not_empty("huber_loss", prediction)
    return Huber(delta)(prediction, as_variable(target))


__all__ = ["softmax_cross_entropy", "sigmoid_cross_entropy", "mean_squared_error", "huber_loss",
           "SoftmaxCrossEntropy", "SigmoidCrossEntropy", "Huber"]
