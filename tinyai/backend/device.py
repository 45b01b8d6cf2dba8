"""Devices: where an array lives ("cpu", "gpu:0", "gpu:1", ...) and how to move it there.

A ``Device`` names a place for arrays. ``Device("cpu")`` is host memory,
computed on by NumPy; ``Device("gpu:N")`` is the memory of CUDA device N,
computed on by CuPy (``"gpu"`` alone means ``"gpu:0"``). A device knows
its array module (``device.xp``), copies arrays onto itself
(``device.put(x)``) and, in ``with device.scope():``, makes itself the CUDA
device on which new arrays are allocated and kernels are launched.

``device_of(x)`` answers the opposite question for an existing array, and
``check_same_device`` turns the error an array library gives for a mix of
host and device arrays into one that names the operation and both devices.

Without a GPU, tests can still exercise every line of the device path: inside
``tinyai.testing.standin.standin_as_gpu()`` the CPU stand-in for CuPy plays
the GPU (a single device, ``gpu:0``).

>>> Device("gpu:1").index, str(Device("cpu")), str(Device("gpu"))
(1, 'cpu', 'gpu:0')
"""
from __future__ import annotations

import contextlib
import types
from typing import Any, Iterator, Sequence

import numpy as np

from tinyai.backend import array_module
from tinyai.backend.array_module import get_array_module, gpu_unavailable_reason, is_array, is_gpu_available

# The module that plays the GPU in tests without one (set by standin_as_gpu()).
_gpu_standin: types.ModuleType | None = None


class DeviceMismatchError(TypeError):
    """An operation got arrays from two devices (host and GPU, or two GPUs)."""


class Device:
    """A place for arrays: ``Device("cpu")``, ``Device("gpu")`` (= ``"gpu:0"``), ``Device("gpu:N")``.

    Args:
        spec: a device string, or a Device (returned as an equal Device).

    Attributes:
        kind: "cpu" or "gpu".
        index: the CUDA device number (None for the CPU).
    """

    __slots__ = ("kind", "index", "_module")

    def __init__(self, spec: "str | Device" = "cpu") -> None:
        # The array module, when known from an array that lives here (the
        # stand-in's arrays are a GPU even outside standin_as_gpu()).
        self._module: types.ModuleType | None = None
        if isinstance(spec, Device):
            self.kind, self.index, self._module = spec.kind, spec.index, spec._module
            return
        if not isinstance(spec, str):
            raise TypeError(f"Device: expected 'cpu', 'gpu' or 'gpu:N', got {type(spec).__name__} {spec!r}")
        text = spec.strip().lower()
        kind, _, number = text.partition(":")
        if kind in ("gpu", "cuda") and (not number or number.isdigit()):
            self.kind, self.index = "gpu", int(number) if number else 0
        elif kind == "cpu" and not number:
            self.kind, self.index = "cpu", None
        else:
            raise ValueError(f"Device: expected 'cpu', 'gpu' or 'gpu:N' (N = 0, 1, ...), got {spec!r}")

    # -- what it is --------------------------------------------------------------------
    @property
    def is_gpu(self) -> bool:
        return self.kind == "gpu"

    @property
    def xp(self) -> types.ModuleType:
        """The array module that computes here (numpy, cupy, or the stand-in)."""
        if not self.is_gpu:
            return np
        return self._module if self._module is not None else gpu_module(self.index)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            try:
                other = Device(other)
            except ValueError:
                return False
        return isinstance(other, Device) and (self.kind, self.index) == (other.kind, other.index)

    def __hash__(self) -> int:
        return hash((self.kind, self.index))

    def __str__(self) -> str:
        return "cpu" if self.kind == "cpu" else f"gpu:{self.index}"

    def __repr__(self) -> str:
        return f"Device({str(self)!r})"

    # -- using it ----------------------------------------------------------------------
    def put(self, x: Any) -> Any:
        """``x`` (an array of any device, or a Python number) as an array on this device.

        An array already here is returned as it is (no copy).
        """
        if not self.is_gpu:
            return array_module.to_cpu(x)
        xp = self.xp
        if is_array(x) and get_array_module(x) is xp:
            if device_of(x) == self:
                return x
            x = array_module.to_cpu(x)  # another GPU: through the host, which always works
        with self.scope():
            return xp.asarray(x)

    @contextlib.contextmanager
    def scope(self) -> Iterator["Device"]:
        """Inside the block, new CuPy arrays are allocated and kernels launched on this device."""
        if self.is_gpu and self.xp is array_module._cupy and array_module._cupy is not None:
            with array_module._cupy.cuda.Device(self.index):
                yield self
        else:
            yield self


CPU = Device("cpu")


def _require_cupy() -> types.ModuleType:
    if not is_gpu_available():
        raise RuntimeError(f"the GPU backend is not available: {gpu_unavailable_reason()}")
    return array_module._cupy  # type: ignore[return-value]


def gpu_module(index: int = 0) -> types.ModuleType:
    """The array module of GPU ``index``: CuPy, or the stand-in inside ``standin_as_gpu()``.

    Raises RuntimeError naming the reason when there is no usable GPU, or
    when ``index`` names a device that does not exist.
    """
    if _gpu_standin is not None:
        if index != 0:
            raise RuntimeError(f"gpu:{index}: the CPU stand-in plays a single GPU, gpu:0")
        return _gpu_standin
    cupy = _require_cupy()
    count = cupy.cuda.runtime.getDeviceCount()
    if not 0 <= index < count:
        raise RuntimeError(f"gpu:{index}: no such CUDA device ({count} found: gpu:0 .. gpu:{count - 1})")
    return cupy


def set_gpu_standin(module: types.ModuleType | None) -> types.ModuleType | None:
    """Let ``module`` play the GPU (None: the real one again); returns the previous player.

    Used by ``tinyai.testing.standin.standin_as_gpu``; not meant for users.
    """
    global _gpu_standin
    previous, _gpu_standin = _gpu_standin, module
    return previous


def device_of(x: Any) -> Device:
    """The Device that holds ``x`` (an array, a Variable, or a Python number: the CPU).

    >>> device_of(np.zeros(2))
    Device('cpu')
    """
    data = x if is_array(x) else getattr(x, "data", x)
    xp = get_array_module(data)
    if xp is np:
        return CPU
    if array_module._cupy is not None and xp is array_module._cupy:
        device = Device(f"gpu:{data.device.id}")
    else:
        device = Device("gpu:0")  # the stand-in (or another CuPy-like library) plays one GPU
    device._module = xp
    return device


def as_device(device: "str | Device | None") -> Device:
    """A Device from a device string (None means the CPU), checked to be usable now."""
    device = CPU if device is None else Device(device)
    if device.is_gpu:
        gpu_module(device.index)  # raises, naming the reason, when it cannot be used
    return device


def check_same_device(op: str, arrays: Sequence[Any], error: BaseException | None = None) -> None:
    """Raise DeviceMismatchError if ``arrays`` live on more than one device.

    The message names ``op`` and each input's device, e.g. ``"Linear: inputs
    are on different devices: input 0 on cpu, inputs 1, 2 on gpu:0"``.
    ``error`` is the library's own error that prompted the check, chained.
    """
    places: dict[Device, list[int]] = {}
    for i, a in enumerate(arrays):
        if is_array(a):
            places.setdefault(device_of(a), []).append(i)
    if len(places) < 2:
        return
    parts = [f"input{'s' if len(idx) > 1 else ''} {', '.join(map(str, idx))} on {dev}" for dev, idx in places.items()]
    message = (f"{op}: inputs are on different devices: {'; '.join(parts)}. "
               "Move them to one device first (model.to_gpu(), Variable.to_gpu(), tinyai.to_cpu(), "
               "or Trainer(device=...), which also moves every batch)")
    raise DeviceMismatchError(message) from error


@contextlib.contextmanager
def using_device(device: "str | Device | None") -> Iterator[Device]:
    """Run the block with ``device`` current (new CuPy arrays and kernels go there)."""
    device = as_device(device)
    with device.scope():
        yield device
