"""Operations that move values around without changing them.

``broadcast_to`` and ``sum_to`` are a pair: each one's backward is the other.
Broadcasting copies a value to many places, so the gradient coming back from
those places must be added up (``sum_to``); summing collects many values into
one, so the gradient of the sum is copied back out (``broadcast_to``). Every
binary operation relies on this pair to undo NumPy's implicit broadcasting in
its backward pass.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from tinyai.autograd import Function, Variable, as_variable
from tinyai.autograd.config import _backward_on_arrays
from tinyai.backend import get_array_module, scatter_add


def check_axis(axis: Any, ndim: int, op: str, what: str = "axis") -> int:
    """``axis`` as an index 0..ndim-1 (negative counts from the end), or an error naming ``op``.

    NumPy integers are accepted like ints; anything else is a TypeError, an
    axis out of range a ValueError that gives the valid range.
    """
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{op}: {what} must be an int, got {type(axis).__name__} {axis!r}")
    if not -ndim <= axis < ndim:
        valid = f"from {-ndim} to {ndim - 1}" if ndim else "none: the array is 0-dimensional"
        raise ValueError(f"{op}: {what} {int(axis)} is out of range for an array of {ndim} "
                         f"dimension(s) (valid: {valid})")
    return int(axis) % ndim


def check_shape(shape: Any, op: str) -> tuple[int, ...]:
    """``shape`` as a tuple of non-negative Python ints, or an error naming ``op``.

    NumPy integers are accepted; floats, bools and strings are not (a tuple
    holding 1.0 would otherwise pass through NumPy's comparisons unnoticed).
    """
    if not isinstance(shape, (tuple, list)):
        raise TypeError(f"{op}: shape must be a tuple of ints, got {type(shape).__name__} {shape!r}")
    # Every backward that sums a broadcast gradient comes here with an array's
    # own shape, a tuple of Python ints: that case is checked in one plain loop.
    plain = type(shape) is tuple
    for n in shape:
        if type(n) is not int:
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
                raise TypeError(f"{op}: shape must be a tuple of non-negative ints, got {tuple(shape)!r}")
            plain = False
        if n < 0:
            raise TypeError(f"{op}: shape must be a tuple of non-negative ints, got {tuple(shape)!r}")
    return shape if plain else tuple(int(n) for n in shape)


# -- sum_to / broadcast_to ---------------------------------------------------------
def _broadcasts(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """Whether each axis of ``shape`` is 1 or the size of the same axis of ``target`` (equally long)."""
    for n, m in zip(shape, target):
        if n != 1 and n != m:
            return False
    return True


def sum_to_array(x: Any, shape: tuple[int, ...]) -> Any:
    """Sum the array ``x`` down to ``shape`` (the inverse of NumPy broadcasting).

    Leading axes that broadcasting added are summed away, and axes where
    ``shape`` has size 1 are summed with keepdims.
    """
    lead = x.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and x.shape[lead + i] != 1)
    y = x.sum(axis=axes, keepdims=True) if axes else x
    return y.reshape(shape) if lead > 0 else y


class BroadcastTo(Function):
    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def forward(self, x):
        xp = get_array_module(x)
        try:
            return xp.broadcast_to(x, self.shape)
        except ValueError:
            raise ValueError(f"broadcast_to: cannot broadcast shape {x.shape} to {self.shape}") from None

    def backward(self, gy):
        x, = self.saved_inputs()
        return sum_to(gy, x.shape)


class SumTo(Function):
    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def forward(self, x):
        shape, lead = self.shape, x.ndim - len(self.shape)
        if lead < 0 or not _broadcasts(shape, x.shape[lead:]):
            raise ValueError(f"sum_to: shape {x.shape} cannot be summed down to {shape} "
                             f"({shape} does not broadcast to {x.shape})")
        return sum_to_array(x, shape)

    def backward(self, gy):
        x, = self.saved_inputs()
        return broadcast_to(gy, x.shape)


def broadcast_to(x: Any, shape: Sequence[int]) -> Any:
    """Repeat ``x`` along new or size-1 axes to reach ``shape`` (NumPy's rules).

    ``x`` itself when it already has that shape. Like every tinyai function
    it takes arrays and Variables alike, and inside a plain backward pass an
    array gives an array (see tinyai.autograd.function).
    """
    # x itself when it already has the shape: a Variable, or an array inside a
    # plain backward pass (anywhere else an array goes in and a Variable comes out).
    if x.shape == shape and (isinstance(x, Variable) or _backward_on_arrays.get()):
        return x
    return BroadcastTo(check_shape(shape, "broadcast_to"))(x)


def sum_to(x: Any, shape: Sequence[int]) -> Any:
    """Sum ``x`` down to ``shape``: the adjoint of ``broadcast_to``.

    Leading axes that broadcasting added are summed away, and axes where
    ``shape`` has size 1 are summed keeping the axis. ``x`` itself when it
    already has that shape. Arrays and Variables alike, as ``broadcast_to``.
    """
    if x.shape == shape and (_backward_on_arrays.get() or isinstance(x, Variable)):  # as in broadcast_to
        return x
    return SumTo(check_shape(shape, "sum_to"))(x)


# -- reshape, transpose ---------------------------------------------------------------
class Reshape(Function):
    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def forward(self, x):
        try:
            return x.reshape(self.shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape an array of shape {x.shape} into {self.shape}") from None

    def backward(self, gy):
        x, = self.saved_inputs()
        return gy.reshape(x.shape)  # the method: arrays and Variables both have it


def reshape(x: Any, *shape: Any) -> Variable:
    """``x`` with a new shape and the same elements; one axis may be -1.

    Accepts ``reshape(x, (2, 3))`` and ``reshape(x, 2, 3)``.
    """
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    if not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) for n in shape):
        raise TypeError(f"reshape: the new shape must be ints, got {shape!r}")
    shape = tuple(int(n) for n in shape)
    if x.shape == shape and (_backward_on_arrays.get() or isinstance(x, Variable)):  # as in broadcast_to
        return x
    return Reshape(shape)(x)


class Transpose(Function):
    def __init__(self, axes: tuple[int, ...] | None) -> None:
        self.axes = axes

    def forward(self, x):
        if self.axes is not None and sorted(a % x.ndim for a in self.axes) != list(range(x.ndim)):
            raise ValueError(f"transpose: axes {self.axes} are not a permutation for shape {x.shape}")
        return x.transpose(self.axes)

    def backward(self, gy):
        # ``.transpose`` is a method of arrays and Variables alike.
        if self.axes is None:
            return gy.transpose()
        ndim = len(self.axes)
        inverse = tuple(sorted(range(ndim), key=lambda i: self.axes[i] % ndim))
        return gy.transpose(inverse)


def transpose(x: Any, axes: Sequence[int] | None = None) -> Variable:
    """Permute the axes of ``x`` (reverse them when ``axes`` is None)."""
    if axes is None:
        return Transpose(None)(x)
    x = as_variable(x)
    if isinstance(axes, (int, np.integer)) or not hasattr(axes, "__len__"):
        raise TypeError(f"transpose: axes must be a sequence of ints, got {type(axes).__name__} {axes!r}")
    axes = tuple(axes)
    if len(axes) != x.ndim:
        raise ValueError(f"transpose: axes {axes} name {len(axes)} axes but the array of shape "
                         f"{x.shape} has {x.ndim}")
    checked = tuple(check_axis(a, x.ndim, "transpose", "axes entry") for a in axes)
    if sorted(checked) != list(range(x.ndim)):
        raise ValueError(f"transpose: axes {axes} are not a permutation for shape {x.shape}")
    return Transpose(checked)(x)


def swapaxes(x: Any, axis1: int, axis2: int) -> Variable:
    """Exchange two axes of ``x``."""
    x = as_variable(x)
    axis1 = check_axis(axis1, x.ndim, "swapaxes", "axis1")
    axis2 = check_axis(axis2, x.ndim, "swapaxes", "axis2")
    axes = list(range(x.ndim))
    axes[axis1], axes[axis2] = axes[axis2], axes[axis1]
    return transpose(x, axes)


def expand_dims(x: Any, axis: int) -> Variable:
    """Insert an axis of size 1 at position ``axis`` (-ndim-1 .. ndim, as NumPy)."""
    x = as_variable(x)
    shape = list(x.shape)
    shape.insert(check_axis(axis, x.ndim + 1, "expand_dims"), 1)
    return reshape(x, tuple(shape))


def squeeze(x: Any, axis: int | Sequence[int] | None = None) -> Variable:
    """Remove axes of size 1 (all of them, or those named by ``axis``)."""
    x = as_variable(x)
    if axis is None:
        return reshape(x, tuple(n for n in x.shape if n != 1))
    named = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    axes = {check_axis(a, x.ndim, "squeeze") for a in named}
    for a in axes:
        if x.shape[a] != 1:
            raise ValueError(f"squeeze: axis {a} of shape {x.shape} has size {x.shape[a]}, not 1")
    return reshape(x, tuple(n for i, n in enumerate(x.shape) if i not in axes))


def flatten(x: Any) -> Variable:
    """Keep the first (batch) axis and flatten the rest: (N, C, H, W) -> (N, C*H*W)."""
    x = as_variable(x)
    return reshape(x, (x.shape[0], -1))


# -- indexing ---------------------------------------------------------------------------
def _plain_key(key: Any) -> Any:
    """Index keys may contain Variables; the arrays inside are what NumPy needs."""
    if isinstance(key, Variable):
        return key.data
    if isinstance(key, tuple):
        return tuple(k.data if isinstance(k, Variable) else k for k in key)
    return key


class GetItem(Function):
    def __init__(self, key: Any) -> None:
        self.key = key

    def forward(self, x):
        try:
            return x[self.key]
        except IndexError as exc:
            raise IndexError(f"get_item: {exc} (array of shape {x.shape})") from None

    def backward(self, gy):
        x, = self.saved_inputs()
        return GetItemGrad(self.key, x.shape)(gy)


class GetItemGrad(Function):
    """Scatter a gradient back to the positions that ``x[key]`` read.

    Uses scatter-add, so a position read twice (``x[[0, 0]]``) receives both
    gradients.
    """

    def __init__(self, key: Any, in_shape: tuple[int, ...]) -> None:
        self.key = key
        self.in_shape = in_shape

    def forward(self, gy):
        xp = get_array_module(gy)
        gx = xp.zeros(self.in_shape, dtype=gy.dtype)
        scatter_add(gx, self.key, gy)
        return gx

    def backward(self, ggx):
        return get_item(ggx, self.key)


def get_item(x: Any, key: Any) -> Variable:
    """``x[key]`` with basic slicing or integer-array indexing; also ``x[key]`` on a Variable."""
    return GetItem(_plain_key(key))(x)


# -- joining and splitting ------------------------------------------------------------
class Concat(Function):
    def __init__(self, axis: int) -> None:
        self.axis = axis

    def forward(self, *xs):
        xp = get_array_module(xs[0])
        try:
            return xp.concatenate(xs, axis=self.axis)
        except ValueError:
            shapes = ", ".join(str(x.shape) for x in xs)
            raise ValueError(f"concat: shapes {shapes} do not match outside axis {self.axis}") from None

    def backward(self, gy):
        sizes = [x.shape[self.axis] for x in self.saved_inputs()]
        bounds = [sum(sizes[:i + 1]) for i in range(len(sizes) - 1)]
        return split(gy, bounds, axis=self.axis)


def concat(xs: Sequence[Any], axis: int = 0) -> Variable:
    """Join a sequence of arrays along an existing axis."""
    if len(xs) == 0:
        raise ValueError("concat: needs at least one input")
    xs = [as_variable(x) for x in xs]
    ndims = sorted({x.ndim for x in xs})
    if len(ndims) > 1:
        shapes = ", ".join(str(x.shape) for x in xs)
        raise ValueError(f"concat: all inputs need the same number of dimensions, got shapes {shapes}")
    if ndims[0] == 0:
        raise ValueError("concat: 0-dimensional inputs cannot be joined along an axis (use stack)")
    return Concat(check_axis(axis, ndims[0], "concat"))(*xs)


class Split(Function):
    def __init__(self, indices_or_sections: Any, axis: int) -> None:
        self.indices_or_sections = indices_or_sections
        self.axis = axis

    def forward(self, x):
        xp = get_array_module(x)
        try:
            parts = tuple(xp.split(x, self.indices_or_sections, axis=self.axis))
        except ValueError:
            raise ValueError(f"split: cannot split shape {x.shape} into {self.indices_or_sections} "
                             f"along axis {self.axis}") from None
        self.part_shapes = [p.shape for p in parts]
        return parts

    def backward(self, *gys):
        x, = self.saved_inputs()
        xp = get_array_module(x)
        # An unused piece contributes zeros.
        parts = [xp.zeros(shape, dtype=x.dtype) if gy is None else gy for shape, gy in zip(self.part_shapes, gys)]
        return concat(parts, axis=self.axis)


def split(x: Any, indices_or_sections: int | Sequence[int], axis: int = 0) -> tuple[Variable, ...]:
    """Cut ``x`` into pieces along ``axis`` (as ``numpy.split``); returns a tuple."""
    x = as_variable(x)
    if x.ndim == 0:
        raise ValueError("split: a 0-dimensional array has no axis to split along")
    axis = check_axis(axis, x.ndim, "split")
    if isinstance(indices_or_sections, (int, np.integer)) and not isinstance(indices_or_sections, bool):
        indices_or_sections = int(indices_or_sections)
        if indices_or_sections < 1:
            raise ValueError(f"split: the number of sections must be >= 1, got {indices_or_sections}")
    elif isinstance(indices_or_sections, (tuple, list)) and all(
            isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in indices_or_sections):
        indices_or_sections = [int(i) for i in indices_or_sections]
    else:
        raise TypeError(f"split: indices_or_sections must be an int (the number of sections) or a list of "
                        f"ints (where to cut), got {type(indices_or_sections).__name__} {indices_or_sections!r}")
    return Split(indices_or_sections, axis)(x)


def stack(xs: Sequence[Any], axis: int = 0) -> Variable:
    """Join arrays of equal shape along a new axis."""
    if len(xs) == 0:
        raise ValueError("stack: needs at least one input")
    xs = [as_variable(x) for x in xs]
    shapes = {tuple(x.shape) for x in xs}
    if len(shapes) > 1:
        raise ValueError(f"stack: all inputs need the same shape, got {sorted(shapes)}")
    axis = check_axis(axis, xs[0].ndim + 1, "stack")
    return concat([expand_dims(x, axis) for x in xs], axis=axis)
