"""The four rules of arithmetic, negation and powers, with NumPy broadcasting.

When the two operands have different shapes, NumPy broadcasts the smaller
one. Its gradient must then be summed back to its own shape (``sum_to``): a
bias added to every row of a batch receives the sum of the rows' gradients.

The backward formulas use only operators and ``sum_to``, so the same lines
run on raw arrays in a plain backward pass and on Variables when the pass is
recorded (see tinyai.autograd.function).
"""
from __future__ import annotations

from typing import Any

from tinyai.autograd import Function, Variable
from tinyai.backend import get_array_module, is_array
from tinyai.functions._operands import as_operand, check_number, describe_shapes, operand_pair
from tinyai.functions.shape import sum_to


def _broadcast_error(name: str, x0, x1) -> ValueError:
    return ValueError(f"{name}: shapes {describe_shapes(x0, x1)} cannot be broadcast together")


class Add(Function):
    def forward(self, x0, x1):
        self.shapes = x0.shape, x1.shape  # a constant for backward: all it needs of the operands
        try:
            return x0 + x1
        except ValueError:
            raise _broadcast_error("add", x0, x1) from None

    def backward(self, gy):
        shape0, shape1 = self.shapes
        return sum_to(gy, shape0), sum_to(gy, shape1)


class Sub(Function):
    def forward(self, x0, x1):
        self.shapes = x0.shape, x1.shape  # as in Add
        try:
            return x0 - x1
        except ValueError:
            raise _broadcast_error("sub", x0, x1) from None

    def backward(self, gy):
        shape0, shape1 = self.shapes
        gx1 = sum_to(-gy, shape1) if self.needs_input_grad[1] else None
        return sum_to(gy, shape0), gx1


class Mul(Function):
    def forward(self, x0, x1):
        try:
            return x0 * x1
        except ValueError:
            raise _broadcast_error("mul", x0, x1) from None

    def backward(self, gy):
        x0, x1 = self.saved_inputs()
        needs0, needs1 = self.needs_input_grad
        gx0 = sum_to(gy * x1, x0.shape) if needs0 else None
        gx1 = sum_to(gy * x0, x1.shape) if needs1 else None
        return gx0, gx1


class Div(Function):
    def forward(self, x0, x1):
        try:
            return x0 / x1
        except ValueError:
            raise _broadcast_error("div", x0, x1) from None

    def backward(self, gy):
        x0, x1 = self.saved_inputs()
        needs0, needs1 = self.needs_input_grad
        gx0 = sum_to(gy / x1, x0.shape) if needs0 else None
        gx1 = sum_to(-gy * x0 / (x1 * x1), x1.shape) if needs1 else None
        return gx0, gx1


class Neg(Function):
    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


class Pow(Function):
    """``x ** c`` for a constant exponent ``c``: d/dx = c * x ** (c - 1)."""

    def __init__(self, c: float) -> None:
        self.c = c

    def forward(self, x):
        return x ** self.c

    def backward(self, gy):
        x, = self.saved_inputs()
        if self.c == 0:  # x**0 is constant: 0, also at x = 0, where c * x**(c - 1) is 0 * inf = NaN
            return gy * 0
        return gy * self.c * x ** (self.c - 1)


class PowVar(Function):
    """``a ** b`` with both sides Variables: d/da = b a^(b-1), d/db = a^b log a.

    At a base of 0 both formulas meet 0 * inf. Where a = 0 and b >= 0 the
    derivative with respect to b is 0 (a^b is 0 for every b > 0; PyTorch
    agrees), but a^b log a is 0 * -inf = NaN (1 * -inf at b = 0). Where a = 0
    and b = 0 the derivative with respect to a is 0 (a^0 is the constant 1),
    but b a^(b-1) is 0 * inf = NaN. In those places alone backward adds 1 to
    the base before ``log`` and before the power: log 1 = 0 and 1^(b-1) = 1,
    so the products are the right 0, and the same formula still holds, and
    differentiates, everywhere else.
    """

    def forward(self, a, b):
        try:
            y = a ** b
        except ValueError:
            raise _broadcast_error("pow", a, b) from None
        # Constants for backward: 1 where the base must be moved off 0, else 0.
        xp = get_array_module(y)
        at_zero = a == 0
        self.log_shift = xp.asarray(at_zero & (b >= 0), dtype=y.dtype)
        self.pow_shift = xp.asarray(at_zero & (b == 0), dtype=y.dtype)
        return y

    def backward(self, gy):
        from tinyai.functions.math import log  # math builds on arithmetic

        a, b = self.saved_inputs()
        y, = self.saved_outputs()
        needs_a, needs_b = self.needs_input_grad
        ga = sum_to(gy * b * (a + self.pow_shift) ** (b - 1), a.shape) if needs_a else None
        gb = sum_to(gy * y * log(a + self.log_shift), b.shape) if needs_b else None
        return ga, gb


def add(x0: Any, x1: Any) -> Variable:
    """Elementwise ``x0 + x1`` with broadcasting."""
    return Add()(*operand_pair(x0, x1, "add"))


def sub(x0: Any, x1: Any) -> Variable:
    """Elementwise ``x0 - x1`` with broadcasting."""
    return Sub()(*operand_pair(x0, x1, "sub"))


def mul(x0: Any, x1: Any) -> Variable:
    """Elementwise ``x0 * x1`` with broadcasting."""
    return Mul()(*operand_pair(x0, x1, "mul"))


def div(x0: Any, x1: Any) -> Variable:
    """Elementwise ``x0 / x1`` with broadcasting."""
    return Div()(*operand_pair(x0, x1, "div"))


def neg(x: Any) -> Variable:
    """Elementwise ``-x``."""
    return Neg()(x)


def pow(x: Any, c: Any) -> Variable:  # noqa: A001 - the natural name, as in Python
    """Elementwise ``x ** c``; ``c`` a number (constant) or a Variable (differentiated too)."""
    if isinstance(c, Variable):
        return PowVar()(*operand_pair(x, c, "pow"))
    if isinstance(x, Variable) and not is_array(c) and not isinstance(c, (list, tuple)):
        return Pow(check_number(c, "pow"))(x)
    return PowVar()(*operand_pair(x, c, "pow"))


def rsub(x0: Variable, x1: Any) -> Variable:
    """``x1 - x0``: what ``2.0 - x`` calls."""
    return Sub()(as_operand(x1, x0, "sub"), x0)


def rdiv(x0: Variable, x1: Any) -> Variable:
    """``x1 / x0``: what ``2.0 / x`` calls."""
    return Div()(as_operand(x1, x0, "div"), x0)


def rpow(x0: Variable, x1: Any) -> Variable:
    """``x1 ** x0``: what ``2.0 ** x`` calls."""
    return PowVar()(as_operand(x1, x0, "pow"), x0)
