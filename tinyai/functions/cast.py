"""cast: the same values in another float dtype, with the gradient cast back.

Mixed precision runs a model in float16 but computes its loss in float32
(a float16 loss and its scaled gradient would overflow at 65504). ``cast``
is the border crossing: forward it converts x to ``dtype``; backward it
converts the gradient back to x's dtype, so every gradient keeps the dtype
of the value it belongs to.

>>> import numpy as np
>>> y = cast(np.ones(2, dtype=np.float16), np.float32)
>>> y.dtype
dtype('float32')
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from tinyai.autograd import Function, Variable, as_variable


class Cast(Function):
    """y = x as ``dtype``; gx = gy as x's dtype."""

    def __init__(self, dtype: DTypeLike) -> None:
        self.dtype = np.dtype(dtype)

    def forward(self, x):
        self.in_dtype = x.dtype
        return x.astype(self.dtype)

    def backward(self, gy):
        return Cast(self.in_dtype)(gy)  # raw arrays in a plain backward: just astype


def cast(x: Any, dtype: DTypeLike) -> Variable:
    """``x`` converted to the float dtype ``dtype`` (x itself, as a Variable, when it already is)."""
    x = as_variable(x)
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"cast: {dtype!r} is not a dtype; give a float dtype such as numpy.float32") from None
    if dtype.kind != "f":
        raise TypeError(f"cast: the target dtype must be floating point, got {dtype}")
    if x.dtype == dtype:
        return x
    return Cast(dtype)(x)
