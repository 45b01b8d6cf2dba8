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
from tinyai.backend.settings import bool_setting
from tinyai.functions.shape import broadcast_to, reshape

Axis = int | Sequence[int] | None


def _normalize_axis(axis: Axis, shape: tuple[int, ...], name: str) -> tuple[int, ...]:
    """``axis`` as a sorted tuple of axes 0..ndim-1, or an error naming the reduction ``name``.

    An axis is an int (NumPy integers too), a sequence of ints without
    repeats, or None for all axes. A bool is refused: ``axis=True`` would
    otherwise be taken as axis 1.
    """
    ndim = len(shape)
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, numbers.Integral) and not isinstance(axis, bool):
        axes = (axis,)
    elif isinstance(axis, (tuple, list)):
        axes = tuple(axis)
    else:
        raise TypeError(f"{name}: axis must be an int, a tuple of ints or None, "
                        f"got {type(axis).__name__} {axis!r}")
    for a in axes:
        if isinstance(a, bool) or not isinstance(a, numbers.Integral):
            raise TypeError(f"{name}: axis entries must be ints, got {type(a).__name__} {a!r} in axis={axis!r}")
        if not -ndim <= a < builtins.max(ndim, 1):
            raise ValueError(f"{name}: axis {a} is out of range for an input of shape {tuple(shape)} "
                             f"({ndim} dimensions)")
    normal = tuple(sorted(int(a) % ndim for a in axes)) if ndim else ()
    if len(set(normal)) != len(normal):
        raise ValueError(f"{name}: axis={axis!r} names the same axis twice (input of shape {tuple(shape)})")
    return normal


def _check_keepdims(keepdims: Any, name: str) -> bool:
    """``keepdims`` as a bool, or a TypeError naming the reduction: a string
    such as ``"no"`` would be truthy and keep the axes against its meaning."""
    return bool_setting(keepdims, name, "keepdims")


def _keepdims_shape(in_shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(1 if i in axes else n for i, n in enumerate(in_shape))


def _grad_to_input(gy: Any, in_shape: tuple[int, ...], axes: tuple[int, ...]) -> Any:
    """Restore the reduced axes of ``gy`` and broadcast it over the input."""
    return broadcast_to(gy.reshape(_keepdims_shape(in_shape, axes)), in_shape)


class Sum(Function):
    def __init__(self, axis: Axis, keepdims: bool) -> None:
        self.axis, self.keepdims = axis, _check_keepdims(keepdims, "sum")

    def forward(self, x):
        self.axes = _normalize_axis(self.axis, x.shape, "sum")
        return narrow_like(widen(x).sum(axis=self.axes, keepdims=self.keepdims), x)  # float16 adds up in float32

    def backward(self, gy):
        x, = self.saved_inputs()
        return _grad_to_input(gy, x.shape, self.axes)


class Mean(Function):
    def __init__(self, axis: Axis, keepdims: bool) -> None:
        self.axis, self.keepdims = axis, _check_keepdims(keepdims, "mean")

    def forward(self, x):
        self.axes = _normalize_axis(self.axis, x.shape, "mean")
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
        self.axis, self.keepdims = axis, _check_keepdims(keepdims, self.name)

    def forward(self, x):
        self.axes = _normalize_axis(self.axis, x.shape, self.name)
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
        self.axis, self.keepdims = axis, _check_keepdims(keepdims, "logsumexp")

    def forward(self, x):
        xp = get_array_module(x)
        self.axes = _normalize_axis(self.axis, x.shape, "logsumexp")
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
    keepdims = _check_keepdims(keepdims, "var")
    axes = _normalize_axis(axis, x.shape, "var")
    if isinstance(ddof, bool) or not isinstance(ddof, numbers.Integral) or ddof < 0:
        raise ValueError(f"var: ddof must be a non-negative int, got {type(ddof).__name__} {ddof!r}")
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
