"""Checking the plain settings that every layer receives: counts, sizes, switches.

A setting such as ``in_features`` or ``max_epoch`` is an integer, and NumPy
integers count: a size computed as ``x.shape[1]`` or ``np.prod(shape)`` is an
``np.int64``, and refusing it would be pedantry. Booleans are refused (``True``
is an int to Python, but never a size anyone meant), and so are floats, even
whole ones: ``3.0`` channels is a sign of a computation gone wrong.
"""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np


def is_int(value: Any) -> bool:
    """Whether ``value`` is an integer (a Python int or a NumPy integer), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def int_setting(value: Any, where: str, name: str, minimum: int = 1, *, none_ok: bool = False) -> Any:
    """``value`` as a Python int >= ``minimum`` (or None when ``none_ok``), else a ValueError.

    The message names ``where`` (the class or function) and ``name`` (the
    setting): "Linear: out_features must be a positive int, got 0".

    >>> import numpy as np
    >>> int_setting(np.int64(3), "Linear", "out_features")
    3
    """
    if value is None and none_ok:
        return None
    if is_int(value) and value >= minimum:
        return int(value)
    wanted = {1: "a positive int", 0: "a non-negative int"}.get(minimum, f"an int >= {minimum}")
    raise ValueError(f"{where}: {name} must be {wanted}{' or None' if none_ok else ''}, got {value!r}")


def bool_setting(value: Any, where: str, name: str) -> bool:
    """``value`` as a bool if it is one (a NumPy bool too), else a TypeError naming ``where`` and ``name``.

    Python would take any object as a switch, and the mistakes are silent:
    ``"no"`` and ``"False"`` are true, ``None`` is false. A switch is refused
    unless it is a real bool: "Linear: bias must be True or False, got str 'no'".
    """
    if value is True or value is False:
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    raise TypeError(f"{where}: {name} must be True or False, got {type(value).__name__} {value!r}")


def is_number(value: Any) -> bool:
    """Whether ``value`` is a finite real number (int, float or NumPy scalar), not a bool."""
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and value == value and abs(value) != float("inf"))
