"""Which array library computes: NumPy on the CPU, CuPy on the GPU.

This is TinyAI's NdArray concept. tinyai never wraps arrays in a class of its
own: a Variable holds a plain ``numpy.ndarray`` or ``cupy.ndarray``, and every
operation asks ``get_array_module(x)`` for the library that owns ``x``, so the
same code runs on either device.

This module is the only place in tinyai that imports ``cupy``, and it does so
lazily: importing tinyai never fails or slows down when CuPy is missing.
"""
from __future__ import annotations

import types
from typing import Any

import numpy as np

# Array types of other libraries that behave like CuPy (the CPU stand-in of
# tinyai.testing registers itself here). Maps array type -> array module.
_extra_modules: dict[type, types.ModuleType] = {}

_cupy: types.ModuleType | None = None
_cupy_error: str | None = None
_cupy_checked = False


def _load_cupy() -> types.ModuleType | None:
    """Import cupy once; remember why it failed if it did."""
    global _cupy, _cupy_error, _cupy_checked
    if not _cupy_checked:
        _cupy_checked = True
        try:
            import cupy  # noqa: PLC0415 - the one lazy import of cupy

            _cupy = cupy
        except Exception as exc:  # ImportError, or a broken CUDA install
            _cupy_error = f"{type(exc).__name__}: {exc}"
    return _cupy


def register_array_module(array_type: type, module: types.ModuleType) -> None:
    """Teach ``get_array_module`` that arrays of ``array_type`` belong to ``module``."""
    _extra_modules[array_type] = module


def get_array_module(x: Any) -> types.ModuleType:
    """Return the array library (``numpy`` or ``cupy``) that owns ``x``.

    ``x`` may be an array, a Variable (its ``.data`` is inspected) or a Python
    scalar (always NumPy).

    >>> get_array_module(np.zeros(3)) is np
    True
    """
    # An array is inspected itself: cupy.ndarray (and the stand-in) also have a
    # ``.data`` attribute (a memory pointer), which is not what we want here.
    data = x if is_array(x) else getattr(x, "data", x)
    if isinstance(data, (np.ndarray, np.generic)):
        return np
    module = _extra_modules.get(type(data))
    if module is not None:
        return module
    if _cupy is not None and isinstance(data, _cupy.ndarray):
        return _cupy
    return np


def is_gpu_available() -> bool:
    """True when CuPy imports and at least one CUDA device answers. Never raises."""
    cupy = _load_cupy()
    if cupy is None:
        return False
    try:
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def gpu_unavailable_reason() -> str:
    """A sentence saying why the GPU cannot be used (empty when it can)."""
    cupy = _load_cupy()
    if cupy is None:
        return (f"CuPy could not be imported ({_cupy_error}); "
                "install the GPU extra: pip install 'tinyai-numpy[gpu]'")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return f"CuPy is installed but no CUDA device answers ({exc})"
    return "" if count > 0 else "CuPy is installed but no CUDA device was found"


def to_gpu(x: Any, device: int | None = None) -> Any:
    """Copy an array (or Python scalar) to GPU ``device`` (default 0); an array already there is returned as it is.

    Raises RuntimeError naming the reason when CuPy or a CUDA device is missing.
    """
    from tinyai.backend.device import Device  # noqa: PLC0415 - device.py builds on this module

    try:
        return Device(f"gpu:{0 if device is None else device}").put(x)
    except RuntimeError as error:
        raise RuntimeError(f"to_gpu: {error}") from None


def to_cpu(x: Any) -> np.ndarray:
    """Copy an array to host memory as a ``numpy.ndarray`` (NumPy arrays pass through)."""
    if isinstance(x, np.ndarray):
        return x
    if np.isscalar(x):
        return np.asarray(x)
    getter = getattr(x, "get", None)  # cupy.ndarray.get() copies device -> host
    if getter is not None:
        return getter()
    return np.asarray(x)


def is_array(x: Any) -> bool:
    """True for an array of any registered backend (NumPy, CuPy, the stand-in)."""
    if isinstance(x, np.ndarray):
        return True
    if type(x) in _extra_modules:
        return True
    if _cupy is None and type(x).__module__.startswith("cupy"):
        _load_cupy()  # a CuPy array made by the user before tinyai ever asked for CuPy
    return _cupy is not None and isinstance(x, _cupy.ndarray)


def scatter_add(target: Any, indices: Any, values: Any) -> None:
    """``target[indices] += values`` that adds once per occurrence of a repeated index.

    Plain ``target[idx] += v`` writes each repeated index only once; gradients
    of an indexing or embedding lookup need every occurrence added.
    """
    xp = get_array_module(target)
    if xp is np:
        np.add.at(target, indices, values)
    elif _cupy is not None and xp is _cupy:
        import cupyx  # noqa: PLC0415 - GPU only

        cupyx.scatter_add(target, indices, values)
    else:
        xp.add.at(target, indices, values)
