"""softmax and log_softmax along an axis, stable for any size of logit.

Subtracting the maximum before exponentiating changes nothing mathematically
(softmax(x) = softmax(x - c)) but keeps exp() from overflowing: logits of
+-1e4 give exact probabilities, not NaN. float16 logits are exponentiated
and summed in float32 (``tinyai.backend.widen``) and rounded back at the end.
"""
from __future__ import annotations

from typing import Any

from tinyai.autograd import Function, Variable, as_variable
from tinyai.backend import get_array_module, narrow_like, widen
from tinyai.functions.math import exp
from tinyai.functions.reductions import sum as sum_
from tinyai.functions.shape import check_axis


def softmax_array(x: Any, axis: int = -1) -> Any:
    """softmax of a raw array along ``axis`` (the shift by the maximum avoids overflow)."""
    xp = get_array_module(x)
    wide = widen(x)  # float16 logits: exponentials and their sum in float32
    e = xp.exp(wide - wide.max(axis=axis, keepdims=True))
    return narrow_like(e / e.sum(axis=axis, keepdims=True), x)


class Softmax(Function):
    def __init__(self, axis: int) -> None:
        self.axis = axis

    def forward(self, x):
        return softmax_array(x, self.axis)

    def backward(self, gy):
        # Jacobian-vector product of softmax: y * (gy - sum(y * gy)).
        y, = self.saved_outputs()
        gx = y * gy
        return gx - y * gx.sum(axis=self.axis, keepdims=True)


class LogSoftmax(Function):
    def __init__(self, axis: int) -> None:
        self.axis = axis

    def forward(self, x):
        xp = get_array_module(x)
        wide = widen(x)
        shifted = wide - wide.max(axis=self.axis, keepdims=True)
        return narrow_like(shifted - xp.log(xp.exp(shifted).sum(axis=self.axis, keepdims=True)), x)

    def backward(self, gy):
        # d log_softmax: gy - softmax(x) * sum(gy), and softmax(x) = exp(y).
        y, = self.saved_outputs()
        return gy - exp(y) * sum_(gy, axis=self.axis, keepdims=True)


def softmax(x: Any, axis: int = -1) -> Variable:
    """exp(x) / sum(exp(x)) along ``axis``: probabilities that sum to 1."""
    x = as_variable(x)
    return Softmax(check_axis(axis, x.ndim, "softmax"))(x)


def log_softmax(x: Any, axis: int = -1) -> Variable:
    """log(softmax(x)) along ``axis``, computed without forming softmax (no log(0))."""
    x = as_variable(x)
    return LogSoftmax(check_axis(axis, x.ndim, "log_softmax"))(x)
