"""Reductions: sum, mean, max, min, var and logsumexp over chosen axes.

The backward of a reduction sends the gradient of each reduced value back to
the elements it came from. The reduced axes must first be put back (as size-1
axes, ``keepdims``) so that the gradient broadcasts to the input's shape.
"""
from __future__ import annotations

import builtins
import numbers
from typing import Any, Sequence

from tinyai.autograd import Function, Variable, as_variable
from tinyai.backend import get_array_module, narrow_like, widen
from tinyai.functions.shape import broadcast_to, reshape

Axis = int | Sequence[int] | None


def _normalize_axis(axis: Axis, ndim: int, name: str) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)  # np.int64 too
    for a in axes:
        if not -ndim <= a < builtins.max(ndim, 1):
            raise ValueError(f"{name}: axis {a} is out of range for an array of {ndim} dimensions")
    return tuple(sorted(a % ndim for a in axes)) if ndim else ()


def _keepdims_shape(in_shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(1 if i in axes else n for i, n in enumerate(in_shape))


def _grad_to_input(gy: Any, in_shape: tuple[int, ...], axes: tuple[int, ...]) -> Any:
    """Restore the reduced axes of ``gy`` and broadcast it over the input."""
    return broadcast_to(gy.reshape(_keepdims_shape(in_shape, axes)), in_shape)


class Sum(Function):
    def __init__(self, axis: Axis, keepdims: bool) -> None:
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.axes = _normalize_axis(self.axis, x.ndim, "sum")
        return narrow_like(widen(x).sum(axis=self.axes, keepdims=self.keepdims), x)  # float16 adds up in float32

    def backward(self, gy):
        x, = self.saved_inputs()
        return _grad_to_input(gy, x.shape, self.axes)


class Mean(Function):
    def __init__(self, axis: Axis, keepdims: bool) -> None:
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.axes = _normalize_axis(self.axis, x.ndim, "mean")
        if x.size == 0:
            raise ValueError(f"mean: the input of shape {x.shape} is empty")
        return narrow_like(widen(x).mean(axis=self.axes, keepdims=self.keepdims), x)

    def backward(self, gy):
        x, = self.saved_inputs()
        count = 1
        for a in self.axes:
            count *= x.shape[a]
        return _grad_to_input(gy * (1.0 / count), x.shape, self.axes)


class _Extremum(Function):
    """max or min. Where several elements tie for the extreme value, the
    gradient is shared equally between them (each gets gy / number of ties),
    which keeps the sum of the input gradients equal to gy."""

    name = ""

    def __init__(self, axis: Axis, keepdims: bool) -> None:
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.axes = _normalize_axis(self.axis, x.ndim, self.name)
        if x.size == 0:
            raise ValueError(f"{self.name}: the input of shape {x.shape} is empty")
        reduce = x.max if self.name == "max" else x.min
        y = reduce(axis=self.axes, keepdims=True)
        # Each element's share of the gradient: a constant for backward.
        hits = (x == y).astype(x.dtype)
        self.share = hits / hits.sum(axis=self.axes, keepdims=True)
        return y if self.keepdims else y.reshape(tuple(n for i, n in enumerate(x.shape) if i not in self.axes))

    def backward(self, gy):
        return _grad_to_input(gy, self.share.shape, self.axes) * self.share


class Max(_Extremum):
    name = "max"


class Min(_Extremum):
    name = "min"


class LogSumExp(Function):
    """log(sum(exp(x))) along ``axis``, computed as m + log(sum(exp(x - m))) with
    m the maximum, so that it neither overflows nor underflows."""

    def __init__(self, axis: Axis, keepdims: bool) -> None:
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        xp = get_array_module(x)
        self.axes = _normalize_axis(self.axis, x.ndim, "logsumexp")
        m = x.max(axis=self.axes, keepdims=True)
        y = m + xp.log(xp.exp(x - m).sum(axis=self.axes, keepdims=True))
        return y if self.keepdims else y.reshape(tuple(n for i, n in enumerate(x.shape) if i not in self.axes))

    def backward(self, gy):
        from tinyai.functions.math import exp  # the derivative is softmax(x)

        x, = self.saved_inputs()
        y, = self.saved_outputs()
        y = reshape(y, _keepdims_shape(x.shape, self.axes))
        return _grad_to_input(gy, x.shape, self.axes) * exp(x - y)


def sum(x: Any, axis: Axis = None, keepdims: bool = False) -> Variable:  # noqa: A001
    """Sum of elements over ``axis`` (all axes when None)."""
    return Sum(axis, keepdims)(x)


def mean(x: Any, axis: Axis = None, keepdims: bool = False) -> Variable:
    """Arithmetic mean over ``axis`` (all axes when None)."""
    return Mean(axis, keepdims)(x)


def max(x: Any, axis: Axis = None, keepdims: bool = False) -> Variable:  # noqa: A001
    """Largest element over ``axis``; tied maxima share the gradient equally."""
    return Max(axis, keepdims)(x)


def min(x: Any, axis: Axis = None, keepdims: bool = False) -> Variable:  # noqa: A001
    """Smallest element over ``axis``; tied minima share the gradient equally."""
    return Min(axis, keepdims)(x)


def var(x: Any, axis: Axis = None, keepdims: bool = False, ddof: int = 0) -> Variable:
    """Variance mean((x - mean(x))**2) over ``axis``; ``ddof=1`` for the unbiased estimate.

    Built from ``mean``, ``sub`` and ``mul``, so its gradient (and second
    derivative) follows from theirs: 2 (x - mean) / (n - ddof).
    """
    x = as_variable(x)
    axes = _normalize_axis(axis, x.ndim, "var")
    count = 1
    for a in axes:
        count *= x.shape[a]
    if count - ddof <= 0:
        raise ValueError(f"var: {count} elements over axis {axis} with ddof={ddof} leave no degrees of freedom")
    centred = x - mean(x, axis=axes, keepdims=True)
    total = sum(centred * centred, axis=axes, keepdims=keepdims)
    return total * (1.0 / (count - ddof))


def logsumexp(x: Any, axis: Axis = None, keepdims: bool = False) -> Variable:
    """log(sum(exp(x))) over ``axis``, without overflow for large x."""
    return LogSumExp(axis, keepdims)(x)
