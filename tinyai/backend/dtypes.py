"""The dtype policy: which float type new arrays get.

Training runs in float32 by default (half the memory and twice the BLAS speed
of float64); gradient checks switch to float64, where central differences are
accurate. The default is a process-wide setting, read when a layer creates its
parameters or a data set converts its samples.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import numpy as np
from numpy.typing import DTypeLike

_default_dtype = np.dtype(np.float32)


def get_default_dtype() -> np.dtype:
    """The float dtype that new parameters and data get (float32 unless changed)."""
    return _default_dtype


def set_default_dtype(dtype: DTypeLike) -> None:
    """Set the default float dtype; only floating types are accepted."""
    global _default_dtype
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"set_default_dtype: expected a floating dtype, got {dtype}")
    _default_dtype = dtype


@contextlib.contextmanager
def default_dtype(dtype: DTypeLike) -> Iterator[None]:
    """Use ``dtype`` as the default float dtype inside a ``with`` block."""
    previous = get_default_dtype()
    set_default_dtype(dtype)
    try:
        yield
    finally:
        set_default_dtype(previous)


def widen(x: Any) -> Any:
    """``x`` as float32 if it is a float16 array, else ``x`` itself.

    float16 has 11 bits of mantissa and a largest value of 65504: enough for
    activations and gradients, not for a sum of thousands of terms, an
    exponential or a variance. Functions pass such computations through
    ``widen`` and round the result back with ``narrow_like``.
    """
    return x.astype(np.float32) if x.dtype == np.float16 else x


def narrow_like(result: Any, reference: Any) -> Any:
    """``result`` in the dtype of ``reference`` when that is float16 (the partner of ``widen``)."""
    if reference.dtype == np.float16 and result.dtype != np.float16:
        return result.astype(np.float16)
    return result
