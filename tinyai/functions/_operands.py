"""Turning the operands of an operation into Variables without changing dtypes."""
from __future__ import annotations

from typing import Any

from tinyai.autograd import Variable
from tinyai.backend import get_array_module, is_array


def as_operand(value: Any, like: Variable) -> Variable:
    """``value`` as a Variable that needs no gradient, typed to combine with ``like``.

    A Python number takes the dtype of ``like`` when that is a float type, so
    ``x * 2.0`` stays float32 (a 0-d float64 array would silently upcast the
    result under NumPy 2's promotion rules).
    """
    if isinstance(value, Variable):
        return value
    dtype = like.data.dtype
    if (type(value) is float or type(value) is int) and dtype.kind == "f":  # ``x * 0.5``, ``1 - x``: first
        return Variable(get_array_module(like.data).asarray(value, dtype=dtype), requires_grad=False)
    if is_array(value):
        return Variable(value, requires_grad=False)
    xp = get_array_module(like.data)
    if dtype.kind == "f" or (isinstance(value, (int, bool)) and dtype.kind in "iu"):
        return Variable(xp.asarray(value, dtype=dtype), requires_grad=False)
    return Variable(xp.asarray(value), requires_grad=False)


def operand_pair(x0: Any, x1: Any) -> tuple[Variable, Variable]:
    """Both operands of a binary operation as Variables (at least one already is)."""
    if isinstance(x0, Variable):
        return x0, as_operand(x1, x0)
    x1 = as_operand(x1, Variable(0.0)) if not isinstance(x1, Variable) else x1
    return as_operand(x0, x1), x1


def describe_shapes(*arrays: Any) -> str:
    """'(3, 4) and (5, 2)': the shapes of the operands, for error messages."""
    return " and ".join(str(tuple(a.shape)) for a in arrays)
