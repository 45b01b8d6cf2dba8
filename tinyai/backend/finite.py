"""Finding NaN and infinity in an array, and saying in words what was found.

Two places look for non-finite numbers: a data set when it is built (NaN in
the data is nearly always a missing value nobody filled in) and the
Trainer's guard after each step (a NaN gradient must not reach the
parameters). Both describe what they found in the same words, from here:
"2 NaN, 1 inf of 20 values (first at index (3, 0))".
"""
from __future__ import annotations

from typing import Any

import numpy as np

from tinyai.backend.array_module import get_array_module, to_cpu


def is_all_finite(array: Any) -> bool:
    """Whether every element of a floating or complex ``array`` is finite (other dtypes: always).

    Costs one sum, without a boolean array as large as the input: NaN and
    infinity survive a sum, so a finite total proves every element finite.
    Only a total that is not finite (a NaN, an inf, or finite values that
    overflow when added) is rechecked element by element.
    """
    if array.dtype.kind not in "fc" or array.size == 0:
        return True
    xp = get_array_module(array)
    with np.errstate(over="ignore", invalid="ignore"):
        if bool(xp.isfinite(array.sum(dtype=array.dtype))):
            return True
    return bool(xp.isfinite(array).all())


def count_non_finite(array: Any) -> str:
    """'2 NaN, 1 inf of 20 values': what is wrong with ``array``, in words."""
    xp = get_array_module(array)
    nan = int(xp.isnan(array).sum())
    inf = int(xp.isinf(array).sum())
    parts = [f"{nan} NaN"] if nan else []
    if inf:
        parts.append(f"{inf} inf")
    return f"{', '.join(parts)} of {array.size} values"


def first_non_finite(array: Any) -> tuple[int, ...]:
    """The index of the first NaN or infinity in ``array`` (row-major order); the array must hold one."""
    bad = ~get_array_module(array).isfinite(array)
    return tuple(int(i) for i in np.argwhere(to_cpu(bad))[0])


def describe_non_finite(array: Any) -> str | None:
    """'2 NaN, 1 inf of 20 values (first at index (3, 0))', or None when ``array`` is all finite."""
    if is_all_finite(array):
        return None
    return f"{count_non_finite(array)} (first at index {first_non_finite(array)})"
