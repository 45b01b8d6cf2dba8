"""Elementwise mathematical functions and their derivatives.

Each backward is written with tinyai's own functions (``gy * cos(x)`` for
``sin``), so differentiating a gradient again works: that is how second
derivatives, Newton's method and gradient penalties come for free.
"""
from __future__ import annotations

from typing import Any

from tinyai.autograd import Function, Variable
from tinyai.backend import get_array_module
from tinyai.functions._operands import describe_shapes, operand_pair
from tinyai.functions.shape import sum_to


class Exp(Function):
    backward_on_arrays = True

    def forward(self, x):
        return get_array_module(x).exp(x)

    def backward(self, gy):
        return gy * self.saved_output(gy)  # d/dx e^x = e^x: reuse the output


class Log(Function):
    def forward(self, x):
        return get_array_module(x).log(x)

    def backward(self, gy):
        return gy / self.inputs[0]


class Sin(Function):
    def forward(self, x):
        return get_array_module(x).sin(x)

    def backward(self, gy):
        return gy * cos(self.inputs[0])


class Cos(Function):
    def forward(self, x):
        return get_array_module(x).cos(x)

    def backward(self, gy):
        return -gy * sin(self.inputs[0])


class Tanh(Function):
    backward_on_arrays = True

    def forward(self, x):
        return get_array_module(x).tanh(x)

    def backward(self, gy):
        y = self.saved_output(gy)
        if isinstance(gy, Variable):
            return TanhGrad()(y, gy)  # recorded: one operation instead of three
        return TanhGrad.formula(y, gy)


class TanhGrad(Function):
    """The backward of tanh as one operation: gx = gy (1 - y^2), from y = tanh(x).

    Written as ``gy * (1 - y * y)`` it would take three operations (and a
    constant) on every recorded backward pass; tanh is common enough in small
    models to deserve one. Its own backward keeps higher derivatives working:
    d gx / d y = -2 y gy and d gx / d gy = 1 - y^2.
    """

    backward_on_arrays = True

    @staticmethod
    def formula(y, gy):
        """gy (1 - y^2) on raw arrays: the forward here, and tanh's unrecorded backward."""
        return gy * (1 - y * y)

    def forward(self, y, gy):
        return self.formula(y, gy)

    def backward(self, ggx):
        y_var, gy_var = self.inputs
        y, gy = self.saved_inputs(ggx)
        grad_y = -2 * y * gy * ggx if y_var.requires_grad else None
        grad_gy = ggx * (1 - y * y) if gy_var.requires_grad else None
        return grad_y, grad_gy


class Sqrt(Function):
    def forward(self, x):
        return get_array_module(x).sqrt(x)

    def backward(self, gy):
        return gy / (2 * self.outputs[0]())


class Abs(Function):
    """|x|; its derivative sign(x) is taken as 0 at x = 0."""

    def forward(self, x):
        return get_array_module(x).abs(x)

    def backward(self, gy):
        x = self.inputs[0].data
        return gy * get_array_module(x).sign(x)


class Clip(Function):
    """Clamp into [lo, hi]; the gradient passes where lo <= x <= hi and is 0 outside."""

    def __init__(self, lo: float | None, hi: float | None) -> None:
        self.lo, self.hi = lo, hi

    def forward(self, x):
        return get_array_module(x).clip(x, self.lo, self.hi)

    def backward(self, gy):
        x = self.inputs[0].data
        inside = (x >= (self.lo if self.lo is not None else -float("inf"))) & \
                 (x <= (self.hi if self.hi is not None else float("inf")))
        return gy * inside.astype(gy.dtype)


class Maximum(Function):
    """Elementwise larger of two inputs. At ties the gradient goes to the first."""

    def forward(self, a, b):
        try:
            return get_array_module(a).maximum(a, b)
        except ValueError:
            raise ValueError(f"maximum: shapes {describe_shapes(a, b)} cannot be broadcast together") from None

    def backward(self, gy):
        a, b = self.inputs
        first = (a.data >= b.data).astype(gy.dtype)
        return sum_to(gy * first, a.shape), sum_to(gy * (1 - first), b.shape)


class Minimum(Function):
    """Elementwise smaller of two inputs. At ties the gradient goes to the first."""

    def forward(self, a, b):
        try:
            return get_array_module(a).minimum(a, b)
        except ValueError:
            raise ValueError(f"minimum: shapes {describe_shapes(a, b)} cannot be broadcast together") from None

    def backward(self, gy):
        a, b = self.inputs
        first = (a.data <= b.data).astype(gy.dtype)
        return sum_to(gy * first, a.shape), sum_to(gy * (1 - first), b.shape)


def exp(x: Any) -> Variable:
    """Elementwise e**x."""
    return Exp()(x)


def log(x: Any) -> Variable:
    """Elementwise natural logarithm."""
    return Log()(x)


def sin(x: Any) -> Variable:
    """Elementwise sine."""
    return Sin()(x)


def cos(x: Any) -> Variable:
    """Elementwise cosine."""
    return Cos()(x)


def tanh(x: Any) -> Variable:
    """Elementwise hyperbolic tangent; d/dx = 1 - tanh(x)**2."""
    return Tanh()(x)


def sqrt(x: Any) -> Variable:
    """Elementwise square root; d/dx = 1 / (2 sqrt(x))."""
    return Sqrt()(x)


def abs(x: Any) -> Variable:  # noqa: A001 - mirrors numpy.abs
    """Elementwise absolute value."""
    return Abs()(x)


def clip(x: Any, lo: float | None, hi: float | None) -> Variable:
    """Clamp every element into [lo, hi] (either bound may be None)."""
    return Clip(lo, hi)(x)


def maximum(a: Any, b: Any) -> Variable:
    """Elementwise maximum of two inputs, with broadcasting."""
    return Maximum()(*operand_pair(a, b, "maximum"))


def minimum(a: Any, b: Any) -> Variable:
    """Elementwise minimum of two inputs, with broadcasting."""
    return Minimum()(*operand_pair(a, b, "minimum"))
