"""Elementwise mathematical functions and their derivatives.

Each backward is written with operators and tinyai's own functions
(``gy * cos(x)`` for ``sin``), so differentiating a gradient again works:
that is how second derivatives, Newton's method and gradient penalties come
for free. Where the derivative is a constant pattern (the sign for ``abs``,
which side won for ``maximum``), forward keeps it as an attribute.
"""
from __future__ import annotations

from typing import Any

from tinyai.autograd import Function, Variable
from tinyai.backend import get_array_module
from tinyai.functions._operands import check_number, describe_shapes, operand_pair
from tinyai.functions.shape import sum_to


class Exp(Function):
    def forward(self, x):
        return get_array_module(x).exp(x)

    def backward(self, gy):
        y, = self.saved_outputs()
        return gy * y  # d/dx e^x = e^x: reuse the output


class Log(Function):
    def forward(self, x):
        return get_array_module(x).log(x)

    def backward(self, gy):
        x, = self.saved_inputs()
        return gy / x


class Sin(Function):
    def forward(self, x):
        return get_array_module(x).sin(x)

    def backward(self, gy):
        x, = self.saved_inputs()
        return gy * cos(x)


class Cos(Function):
    def forward(self, x):
        return get_array_module(x).cos(x)

    def backward(self, gy):
        x, = self.saved_inputs()
        return -gy * sin(x)


class Tanh(Function):
    def forward(self, x):
        return get_array_module(x).tanh(x)

    def backward(self, gy):
        y, = self.saved_outputs()
        return gy * (1 - y * y)


class Sqrt(Function):
    def forward(self, x):
        return get_array_module(x).sqrt(x)

    def backward(self, gy):
        y, = self.saved_outputs()
        return gy / (2 * y)


class Abs(Function):
    """|x|; its derivative sign(x) is taken as 0 at x = 0."""

    def forward(self, x):
        xp = get_array_module(x)
        self.sign = xp.sign(x)  # a constant for backward
        return xp.abs(x)

    def backward(self, gy):
        return gy * self.sign


class Clip(Function):
    """Clamp into [lo, hi]; the gradient passes where lo <= x <= hi and is 0 outside."""

    def __init__(self, lo: float | None, hi: float | None) -> None:
        self.lo, self.hi = lo, hi

    def forward(self, x):
        xp = get_array_module(x)
        lo = -float("inf") if self.lo is None else self.lo
        hi = float("inf") if self.hi is None else self.hi
        self.inside = (x >= lo) & (x <= hi)
        return xp.clip(x, self.lo, self.hi)

    def backward(self, gy):
        return gy * self.inside


class Maximum(Function):
    """Elementwise larger of two inputs. At ties the gradient goes to the first."""

    def forward(self, a, b):
        try:
            y = get_array_module(a).maximum(a, b)
        except ValueError:
            raise ValueError(f"maximum: shapes {describe_shapes(a, b)} cannot be broadcast together") from None
        self.first = a >= b  # where a wins (ties included): a constant for backward
        return y

    def backward(self, gy):
        a, b = self.saved_inputs()
        return sum_to(gy * self.first, a.shape), sum_to(gy * ~self.first, b.shape)


class Minimum(Function):
    """Elementwise smaller of two inputs. At ties the gradient goes to the first."""

    def forward(self, a, b):
        try:
            y = get_array_module(a).minimum(a, b)
        except ValueError:
            raise ValueError(f"minimum: shapes {describe_shapes(a, b)} cannot be broadcast together") from None
        self.first = a <= b
        return y

    def backward(self, gy):
        a, b = self.saved_inputs()
        return sum_to(gy * self.first, a.shape), sum_to(gy * ~self.first, b.shape)


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
    for bound in (lo, hi):
        if bound is not None:
            check_number(bound, "clip")
            if bound != bound:  # NaN would turn every element into NaN
                raise ValueError(f"clip: a bound is NaN (lo={lo}, hi={hi}); use None for no bound")
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"clip: lo={lo} is greater than hi={hi}; the interval [lo, hi] is empty")
    return Clip(lo, hi)(x)


def maximum(a: Any, b: Any) -> Variable:
    """Elementwise maximum of two inputs, with broadcasting."""
    return Maximum()(*operand_pair(a, b, "maximum"))


def minimum(a: Any, b: Any) -> Variable:
    """Elementwise minimum of two inputs, with broadcasting."""
    return Minimum()(*operand_pair(a, b, "minimum"))
