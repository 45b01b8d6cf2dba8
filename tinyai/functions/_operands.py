"""Turning the operands of an operation into Variables without changing dtypes."""
from __future__ import annotations

from typing import Any

import numpy as np

from tinyai.autograd import Variable
from tinyai.backend import get_array_module, is_array


#: The NumPy dtype kinds an operand may have: booleans, integers, floats, complex numbers.
NUMERIC_KINDS = "biufc"


def _refuse(value: Any, op: str) -> TypeError:
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    return TypeError(f"{op}: unsupported operand {shown} of type {type(value).__name__}; "
                     "expected a number, an array of numbers or a Variable")


def check_number(value: Any, op: str) -> Any:
    """``value`` if it is a plain number (bool, int, float, complex or a NumPy number), else a TypeError."""
    if isinstance(value, (bool, int, float, complex)) or (
            isinstance(value, np.generic) and value.dtype.kind in NUMERIC_KINDS):
        return value
    raise _refuse(value, op)


def as_operand(value: Any, like: Variable, op: str = "operation") -> Variable:
    """``value`` as a Variable that needs no gradient, typed to combine with ``like``.

    A Python number takes the dtype of ``like`` when that is a float type, so
    ``x * 2.0`` stays float32 (a 0-d float64 array would silently upcast the
    result under NumPy 2's promotion rules). Anything that is not a number,
    an array of numbers or a Variable (``None``, a string, a date) is refused
    with a TypeError naming ``op``: NumPy would turn ``None`` into NaN and
    ``"2"`` into 2.0 without a word.
    """
    if isinstance(value, Variable):
        return value
    dtype = like.data.dtype
    if (type(value) is float or type(value) is int) and dtype.kind == "f":  # ``x * 0.5``, ``1 - x``: first
        return Variable(get_array_module(like.data).asarray(value, dtype=dtype), requires_grad=False)
    if is_array(value):
        if value.dtype.kind not in NUMERIC_KINDS:
            raise TypeError(f"{op}: cannot combine a Variable with an array of dtype {value.dtype}; "
                            "operands must hold numbers")
        return Variable(value, requires_grad=False)
    if isinstance(value, (list, tuple)):
        array = np.asarray(value)
        if array.dtype.kind not in NUMERIC_KINDS:
            raise _refuse(value, op)
        value = array
    else:
        check_number(value, op)
    xp = get_array_module(like.data)
    if dtype.kind == "f" or (isinstance(value, (int, bool)) and dtype.kind in "iu"):
        return Variable(xp.asarray(value, dtype=dtype), requires_grad=False)
    return Variable(xp.asarray(value), requires_grad=False)


def operand_pair(x0: Any, x1: Any, op: str = "operation") -> tuple[Variable, Variable]:
    """Both operands of a binary operation ``op`` as Variables (at least one already is)."""
    if isinstance(x0, Variable):
        return x0, (x1 if isinstance(x1, Variable) else as_operand(x1, x0, op))
    if is_array(x0) and not isinstance(x1, Variable):
        # An array and a number (F.pow(array, 3)): the number goes to the array's device.
        x0 = Variable(x0, requires_grad=False)
        return x0, as_operand(x1, x0, op)
    x1 = as_operand(x1, Variable(0.0), op) if not isinstance(x1, Variable) else x1
    return as_operand(x0, x1, op), x1


def describe_shapes(*arrays: Any) -> str:
    """'(3, 4) and (5, 2)': the shapes of the operands, for error messages."""
    return " and ".join(str(tuple(a.shape)) for a in arrays)
