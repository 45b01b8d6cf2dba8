"""What every transport does to the values it is handed: check them, see them as arrays, give results back.

A communicator accepts Python numbers, NumPy scalars and arrays on the host
or a device. ``Payload`` looks at such a value once: the array it stands
for, where it lives, and how to turn a result array back into the same
form. The other helpers are the parts of a collective that do not depend on
the transport: checking arguments, reducing in rank order, and the blocks of
``reduce_scatter``.
"""
from __future__ import annotations

import functools
import numbers
import queue
import struct
import time
import types
from typing import Any, Callable, Sequence

import numpy as np

from tinyai.backend import get_array_module, is_array
from tinyai.parallel.comm.base import REDUCE_OPS, CommunicatorError


class Payload:
    """A value handed to a communicator, seen as an array.

    ``array`` is the value as an array of its own module (NumPy, or the
    device module ``xp``); ``host()`` gives it as a C-contiguous NumPy
    array; ``give_back(result)`` returns a result in the value's form: a
    Python number for a Python number, a NumPy scalar for a NumPy scalar, an
    array on the value's device for an array.
    """

    def __init__(self, value: Any, op: str) -> None:
        if isinstance(value, (bool, int, float, complex)):
            self.kind = "python"
            array = np.asarray(value)
        elif isinstance(value, np.generic):
            self.kind = "numpy-scalar"
            array = np.asarray(value)
        elif is_array(value):
            self.kind = "array"
            array = value
        else:
            raise TypeError(f"{op}: expected a number or an array, got {type(value).__name__}")
        if array.dtype.kind not in "biufc":
            raise TypeError(f"{op}: cannot communicate an array of dtype {array.dtype} (numbers only)")
        self.value = value
        self.array = array
        self.xp: types.ModuleType = get_array_module(array)
        self.on_device = self.xp is not np
        self.device = device_code(self.xp)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.array.dtype)

    def host(self) -> np.ndarray:
        """The values as a C-contiguous NumPy array (copied from the device if need be)."""
        return contiguous(self.array.get() if self.on_device else self.array)

    def give_back(self, result: Any) -> Any:
        """``result`` (a NumPy or device array) in the form of the value that came in."""
        if self.kind == "python":
            return to_host(result).item()
        if self.kind == "numpy-scalar":
            return to_host(result)[()]
        return on_module(result, self.xp)

    def give_back_array(self, result: Any) -> Any:
        """``result`` as an array where the value lived (host for numbers, else the value's device)."""
        return on_module(result, self.xp)


HEADER_BYTES = 256  # what describes an array on the wire: ndim, device code, byte count, shape, dtype
MAX_DIMS = 24
# Three int64 (ndim, device, nbytes), MAX_DIMS int64 of shape, then the dtype string ("<f8"), zero-padded.
_HEADER = struct.Struct(f"<3q{MAX_DIMS}q{HEADER_BYTES - 8 * (3 + MAX_DIMS)}s")


class Spec:
    """The description of an array that travels ahead of its bytes (shape, dtype, size, device)."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype, nbytes: int, device: int) -> None:
        self.shape, self.dtype, self.nbytes, self.device = shape, dtype, nbytes, device


def write_header(header: Any, host: np.ndarray | None, device: int) -> None:
    """Describe ``host`` (or "nothing", for None) in ``header``, a writable buffer of HEADER_BYTES bytes."""
    if host is None:
        struct.pack_into("<q", header, 0, -1)
        return
    if host.ndim > MAX_DIMS:
        raise ValueError(f"communicator: arrays may have at most {MAX_DIMS} dimensions, got {host.ndim}")
    shape = host.shape + (0,) * (MAX_DIMS - host.ndim)
    _HEADER.pack_into(header, 0, host.ndim, device, host.nbytes, *shape, host.dtype.str.encode("ascii"))


def read_header(header: Any) -> Spec | None:
    """The Spec written by ``write_header``, or None for "nothing"."""
    values = _HEADER.unpack_from(header, 0)
    ndim = values[0]
    if ndim < 0:
        return None
    return Spec(values[3:3 + ndim], _dtype(values[-1]), values[2], values[1])


@functools.lru_cache(maxsize=64)
def _dtype(text: bytes) -> np.dtype:
    return np.dtype(text.rstrip(b"\0").decode("ascii"))


def contiguous(array: Any) -> np.ndarray:
    """``array`` as a C-contiguous NumPy array, copied only if needed (``np.ascontiguousarray`` makes 0-d 1-d)."""
    array = np.asarray(array)
    return array if array.flags.c_contiguous else array.copy(order="C")


def as_bytes(host: np.ndarray) -> np.ndarray:
    """The bytes of a C-contiguous array, as a flat uint8 view (no copy)."""
    return host.reshape(-1).view(np.uint8)


def to_host(array: Any) -> np.ndarray:
    """A NumPy array with the values of ``array`` (a device array is copied to the host)."""
    if isinstance(array, (np.ndarray, np.generic)):
        return np.asarray(array)
    return array.get()


def on_module(array: Any, xp: types.ModuleType) -> Any:
    """``array`` as an array of module ``xp`` (copied between host and device only when needed)."""
    if get_array_module(array) is xp:
        return array
    return xp.asarray(to_host(array))


def device_code(xp: types.ModuleType) -> int:
    """How a header names where an array lives: 0 the host, 1 CuPy, 2 another registered module (the stand-in)."""
    from tinyai.backend import array_module

    if xp is np:
        return 0
    return 2 if xp in array_module._extra_modules.values() else 1  # noqa: SLF001


def from_host(array: np.ndarray, device: int) -> Any:
    """A host array that arrived, put where its sender's lived (``device`` as from ``device_code``).

    A CuPy array is rebuilt on the receiving rank's current CUDA device.
    """
    if not device:
        return array
    from tinyai.backend import array_module
    from tinyai.backend.device import gpu_module

    if device == 2:
        for module in array_module._extra_modules.values():  # noqa: SLF001 - the stand-in, when registered
            return module.asarray(array)
    return gpu_module().asarray(array)


def check_op(op: str, where: str, dtype: np.dtype | None = None) -> None:
    """Refuse an unknown reduction, or one that means nothing for ``dtype`` (summing booleans)."""
    if op not in REDUCE_OPS:
        raise ValueError(f"{where}: unknown op {op!r}; choose one of {REDUCE_OPS}")
    if dtype is not None and dtype.kind == "b" and op not in ("max", "min"):
        raise TypeError(f"{where}: op {op!r} of boolean arrays is ambiguous; use 'max' (any) or 'min' (all), "
                        f"or convert to int")


def check_rank(value: Any, size: int, what: str, where: str) -> int:
    """``value`` as a rank number, or an error naming the operation and the valid range."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{where}: {what} must be an int rank, got {type(value).__name__}")
    if not 0 <= value < size:
        raise ValueError(f"{where}: {what} {value} is not a rank of this communicator (0 .. {size - 1})")
    return int(value)


def check_timeout(timeout: Any, where: str) -> float:
    """``timeout`` as seconds > 0 (``float("inf")`` waits for ever), or an error naming ``where``."""
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real) or not timeout > 0:
        raise ValueError(f"{where}: timeout must be a number of seconds > 0, got {timeout!r}")
    return float(timeout)


def check_tag(tag: Any, where: str) -> int:
    if isinstance(tag, bool) or not isinstance(tag, (int, np.integer)) or tag < 0:
        raise ValueError(f"{where}: tag must be an int >= 0, got {tag!r}")
    return int(tag)


def check_color(color: Any, key: Any) -> None:
    """``split``'s arguments: color an int >= 0 or None, key an int."""
    if color is not None and (isinstance(color, bool) or not isinstance(color, (int, np.integer))):
        raise TypeError(f"split: color must be an int >= 0 or None (join no group), got {type(color).__name__}")
    if color is not None and color < 0:
        raise ValueError(f"split: color must be an int >= 0 or None (join no group), got {color}")
    if isinstance(key, bool) or not isinstance(key, (int, np.integer)):
        raise TypeError(f"split: key must be an int, got {type(key).__name__}")


def split_groups(requests: Sequence[tuple[int | None, int]]) -> dict[int, list[int]]:
    """color -> the ranks asking for it, ordered by (key, rank): MPI_Comm_split's rule.

    ``requests[r]`` is rank r's (color, key).

    >>> split_groups([(0, 0), (1, 0), (0, -1), (None, 0)])
    {0: [2, 0], 1: [1]}
    """
    groups: dict[int, list[tuple[int, int]]] = {}
    for rank, (color, key) in enumerate(requests):
        if color is not None:
            groups.setdefault(int(color), []).append((int(key), rank))
    return {color: [rank for _, rank in sorted(members)] for color, members in sorted(groups.items())}


def check_same(op: str, specs: Sequence[tuple[tuple[int, ...], str]], trailing_only: bool = False) -> None:
    """Every rank passed the same shape and dtype (or, for allgather, all but the first dimension).

    ``specs[r]`` is rank r's (shape, dtype string). The message names the
    operation and the ranks that disagree with rank 0.
    """
    def key(spec: tuple[tuple[int, ...], str]) -> tuple:
        shape, dtype = spec
        return (tuple(shape[1:]) if trailing_only else tuple(shape), dtype)

    first = key(specs[0])
    wrong = [r for r, spec in enumerate(specs) if key(spec) != first]
    if wrong:
        listed = ", ".join(f"rank {r}: shape {tuple(s)} {np.dtype(d)}" for r, (s, d) in enumerate(specs))
        what = "the same dtype and all but the first dimension" if trailing_only else "the same shape and dtype"
        raise ValueError(f"{op}: every rank must pass {what}; got {listed}")


def reduce_in_rank_order(arrays: Sequence[Any], op: str, xp: types.ModuleType) -> Any:
    """``arrays[0] op arrays[1] op ...``, left to right: the same bits wherever it is computed.

    The result is a new array (never one of the inputs). "mean" is the sum
    divided by the number of arrays; integer inputs give a float64 mean.
    """
    combine = {"sum": xp.add, "mean": xp.add, "prod": xp.multiply, "max": xp.maximum, "min": xp.minimum}[op]
    total = arrays[0].copy()
    for other in arrays[1:]:
        if xp is np:
            combine(total, other, out=total)  # in place: no new array per rank
        else:
            total = combine(total, other)
    if op == "mean":
        total = finish_mean(total, len(arrays))
    return xp.asarray(total)  # 0-d inputs give NumPy scalars; keep arrays


def finish_mean(total: Any, count: int) -> Any:
    """A sum over ``count`` ranks turned into their mean (integers become float64)."""
    if total.dtype.kind in "biu":
        total = total.astype(np.float64)
    return total / total.dtype.type(count)


def block_bounds(rows: int, size: int) -> list[tuple[int, int]]:
    """(start, stop) of every rank's block of ``rows`` rows; the first ``rows % size`` get one more.

    >>> block_bounds(10, 3)
    [(0, 4), (4, 7), (7, 10)]
    >>> block_bounds(2, 3)
    [(0, 1), (1, 2), (2, 2)]
    """
    base, extra = divmod(rows, size)
    bounds, start = [], 0
    for r in range(size):
        stop = start + base + (1 if r < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def scatter_block(array: Any, rank: int, size: int, where: str = "reduce_scatter") -> Any:
    """Rank ``rank``'s block of ``array`` along axis 0 (see ``block_bounds``)."""
    if array.ndim == 0:
        raise ValueError(f"{where}: needs an array with at least one dimension to split, got a scalar")
    start, stop = block_bounds(array.shape[0], size)[rank]
    return array[start:stop]


#: How often a waiting receiver looks whether a peer has failed (or its parent died).
POLL_SECONDS = 0.05


def take_message(inbox: Any, pending: list, wanted: Callable[[tuple], bool], timeout: float,
                 check_alive: Callable[[], None], late_error: Callable[[], Exception]) -> tuple:
    """The first message that ``wanted`` accepts, from ``pending`` (early arrivals) or else from ``inbox``.

    Messages for another source, tag or communicator are kept in ``pending``
    for a later receive. While waiting, ``check_alive()`` runs every
    ``POLL_SECONDS`` and raises if a peer failed; after ``timeout`` seconds
    the error ``late_error()`` is raised. Both transports with inboxes
    (threads, processes) receive this way.
    """
    for i, message in enumerate(pending):
        if wanted(message):
            return pending.pop(i)
    deadline = time.monotonic() + timeout
    while True:
        check_alive()
        try:
            message = inbox.get(timeout=POLL_SECONDS)
        except queue.Empty:
            if time.monotonic() > deadline:
                raise late_error() from None
            continue
        if wanted(message):
            return message
        pending.append(message)


def nothing_arrived(op: str, rank: int, source: int | None, tag: int, timeout: float) -> CommunicatorError:
    """The error of a receive that waited ``timeout`` seconds for a message that never came."""
    sender = "any rank" if source is None else f"rank {source}"
    return CommunicatorError(f"{op} on rank {rank}: nothing from {sender} (tag {tag}) within {timeout:g} s",
                             op, source)
