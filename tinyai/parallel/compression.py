"""Gradient compression: send fewer bytes per step, lose (almost) nothing.

In data-parallel training every worker sends its gradient to the others each
step. For a model with n parameters in float32 that is 4n bytes per worker
per step, and on a slow network it is the time of the step. TinyAI's
documents write the remedy as ``g' = compress(g)``: send a smaller encoding
``g'`` of the gradient and let the receiver decode an approximation of ``g``.

A compressor here is a pair of functions::

    payload = compressor.compress(gradient)     # what crosses the wire
    approx  = compressor.decompress(payload)    # same shape and dtype as gradient

and ``payload.nbytes`` counts exactly the bytes that would travel: values,
indices and scales (the shape and dtype are known to both sides, because
both hold the same model). Two families:

* **quantisation** keeps every entry with fewer bits: ``FP16`` (2 bytes),
  ``Int8`` (1 byte plus one scale per tensor), ``SignSGD`` (1 bit plus one
  scale);
* **sparsification** keeps a few entries, as (value, int32 index) pairs:
  ``TopK`` (the largest magnitudes) and ``RandomK`` (a random subset,
  rescaled so that the expectation is the gradient).

Unbiased compressors (``RandomK``, ``Int8(stochastic=True)``) are right on
average: E[decompress(compress(g))] = g. Biased ones (``TopK``, ``SignSGD``)
systematically drop part of the gradient; ``ErrorFeedback`` repairs that by
remembering what was dropped (the residual) and adding it to the next
gradient, so over many steps nothing is lost::

    corrected = gradient + residual
    payload   = inner.compress(corrected)
    residual  = corrected - inner.decompress(payload)

Random draws (stochastic rounding, random subsets) come from a seeded NumPy
generator on the host and are copied to the array's device, so a run is
reproducible and gives the same payloads on the CPU and on a GPU.

>>> import numpy as np
>>> topk = TopK(0.25)
>>> p = topk.compress(np.array([0.1, -3.0, 0.2, 1.0]))
>>> p.nbytes                       # one float64 value + one int32 index
12
>>> topk.decompress(p)
array([ 0., -3.,  0.,  0.])
"""
from __future__ import annotations

import abc
import copy
import math
from dataclasses import dataclass, field
from typing import Any, Hashable, Mapping, Sequence

import numpy as np

from tinyai.backend import get_array_module

__all__ = [
    "Payload", "Compressor", "FP16", "Int8", "TopK", "RandomK", "SignSGD", "ErrorFeedback",
    "get_compressor", "COMPRESSION_NAMES", "encode_arrays", "decode_arrays",
]

#: A part of a payload as the wire sees it: (name, dtype, number of entries).
PartLayout = tuple[str, np.dtype, int]


@dataclass(frozen=True)
class Payload:
    """The encoded form of one array: the parts that travel, plus what both sides know.

    Attributes:
        shape, dtype: of the array that was compressed (not sent: the receiver
            holds the same model, so it knows them).
        parts: name -> 1-d array, in the compressor's layout order; these are
            the bytes on the wire.
    """

    shape: tuple[int, ...]
    dtype: np.dtype
    parts: dict[str, Any] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        """Bytes that would cross the wire: the sum of the parts' sizes."""
        return sum(int(part.nbytes) for part in self.parts.values())

    def to_bytes(self) -> Any:
        """The parts concatenated as one uint8 array, on the parts' device (what a transport sends)."""
        if not self.parts:
            return np.zeros(0, dtype=np.uint8)
        flat = [part.reshape(-1).view(np.uint8) for part in self.parts.values()]
        xp = get_array_module(flat[0])
        return flat[0] if len(flat) == 1 else xp.concatenate(flat)


class Compressor(abc.ABC):
    """The interface: ``compress(array) -> Payload`` and ``decompress(payload) -> array``.

    A subclass implements ``compress``, ``decompress`` and ``layout`` (the
    parts a payload of a given shape will have, so that a receiver can decode
    a byte buffer, and every worker's payload for a parameter has the same
    size). ``key`` names the parameter being compressed; stateless compressors
    ignore it, ``ErrorFeedback`` keeps one residual per key.
    """

    #: The short name used in statistics and by ``get_compressor``.
    name = "compressor"

    @abc.abstractmethod
    def compress(self, array: Any, key: Hashable = None) -> Payload:
        """Encode ``array`` (a floating-point NumPy or CuPy array) into a payload."""

    @abc.abstractmethod
    def decompress(self, payload: Payload) -> Any:
        """Decode a payload into an array of the original shape and dtype."""

    @abc.abstractmethod
    def layout(self, shape: tuple[int, ...], dtype: Any) -> list[PartLayout]:
        """The parts (name, dtype, count) of a payload for an array of ``shape`` and ``dtype``."""

    # -- shared machinery -------------------------------------------------------------
    def payload_nbytes(self, shape: tuple[int, ...], dtype: Any) -> int:
        """The wire size of a payload for an array of ``shape`` and ``dtype``, without compressing."""
        return sum(np.dtype(part_dtype).itemsize * count for _, part_dtype, count in self.layout(shape, dtype))

    def from_bytes(self, buffer: Any, shape: tuple[int, ...], dtype: Any) -> Payload:
        """Rebuild a payload from ``Payload.to_bytes()`` output (a uint8 array of the layout's size)."""
        expected = self.payload_nbytes(shape, dtype)
        if buffer.ndim != 1 or buffer.dtype != np.uint8 or buffer.size != expected:
            raise ValueError(f"{type(self).__name__}.from_bytes: expected {expected} uint8 bytes for an array "
                             f"of shape {tuple(shape)} and dtype {np.dtype(dtype)}, got {buffer.size} "
                             f"{buffer.dtype} of shape {tuple(buffer.shape)}")
        parts, offset = {}, 0
        for name, part_dtype, count in self.layout(shape, dtype):
            size = np.dtype(part_dtype).itemsize * count
            # copy() so the part is contiguous and owns its memory (a slice of a
            # received buffer may be reused by the transport).
            parts[name] = buffer[offset:offset + size].copy().view(part_dtype)
            offset += size
        return Payload(tuple(shape), np.dtype(dtype), parts)

    def add_decompressed(self, out: Any, payload: Payload) -> None:
        """``out += decompress(payload)``, in place (sparse compressors add only their entries)."""
        out += self.decompress(payload)

    def for_worker(self, rank: int) -> "Compressor":
        """An independent copy for worker ``rank``: its own state and its own random stream."""
        return copy.deepcopy(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _check_float(array: Any, where: str) -> Any:
    """The array module of ``array``, after checking that it is a floating-point array."""
    dtype = getattr(array, "dtype", None)
    if dtype is None or not hasattr(array, "shape"):
        raise TypeError(f"{where}: expected an array, got {type(array).__name__}")
    if np.dtype(dtype).kind != "f":
        raise TypeError(f"{where}: expected a floating-point array, got dtype {np.dtype(dtype)} "
                        f"of shape {tuple(array.shape)}")
    return get_array_module(array)


def _check_ratio(ratio: float, where: str) -> float:
    try:
        ratio = float(ratio)
    except (TypeError, ValueError):
        raise TypeError(f"{where}: ratio must be a number in (0, 1], got {ratio!r}") from None
    if not 0.0 < ratio <= 1.0:  # also refuses NaN
        raise ValueError(f"{where}: ratio must be in (0, 1], got {ratio}")
    return ratio


def _kept_count(ratio: float, size: int) -> int:
    """k = max(1, floor(ratio * size)) for a non-empty array (0 for an empty one).

    The tiny tolerance keeps ratio * size from landing just below an integer
    it equals (0.29 * 100 is 28.999999999999996 in binary floating point).
    """
    if size == 0:
        return 0
    return min(size, max(1, math.floor(ratio * size + 1e-9)))


def _host_generator(seed: int | None, rank: int | None = None) -> np.random.Generator:
    """A seeded generator; each worker rank gets an independent stream of the same seed."""
    return np.random.default_rng(None if seed is None else ([seed, rank] if rank is not None else seed))


def _scale_dtype(dtype: Any) -> np.dtype:
    """Scales travel in the array's own dtype (2 bytes for float16, 4 for float32, 8 for float64)."""
    return np.dtype(dtype)


# -- quantisation ---------------------------------------------------------------------------
class FP16(Compressor):
    """Half precision: every entry as a float16 (2 bytes), no scale.

    The round trip is float16's rounding: relative error at most 2**-11 for
    |x| in float16's normal range [2**-14, 65504], absolute error at most
    2**-25 below it. Entries beyond 65504 become +-inf, as a cast does (the
    training step then sees a non-finite gradient, as with any overflow).
    """

    name = "fp16"

    def compress(self, array: Any, key: Hashable = None) -> Payload:
        xp = _check_float(array, "FP16.compress")
        return Payload(tuple(array.shape), np.dtype(array.dtype),
                       {"values": array.reshape(-1).astype(xp.float16)})

    def decompress(self, payload: Payload) -> Any:
        return payload.parts["values"].astype(payload.dtype).reshape(payload.shape)

    def layout(self, shape: tuple[int, ...], dtype: Any) -> list[PartLayout]:
        return [("values", np.dtype(np.float16), math.prod(shape))]


class Int8(Compressor):
    """8-bit integers with one scale per tensor: x ~ scale * q, q in [-127, 127].

    ``scale = max|x| / 127``. Rounding to nearest gives an error of at most
    scale / 2 per entry (plus the float rounding of the product). With
    ``stochastic=True``, q = floor(x / scale + u), u ~ U[0, 1), which rounds
    up with probability equal to the fractional part, so E[scale * q] = x
    (unbiased). Wire size: n bytes plus one scale.

    Args:
        stochastic: use unbiased stochastic rounding.
        seed: seed of the rounding noise (per worker, see ``for_worker``).
    """

    name = "int8"

    def __init__(self, stochastic: bool = False, seed: int | None = 0) -> None:
        self.stochastic = bool(stochastic)
        self.seed = seed
        self._rng = _host_generator(seed)

    def compress(self, array: Any, key: Hashable = None) -> Payload:
        xp = _check_float(array, "Int8.compress")
        flat = array.reshape(-1)
        scale_dtype = _scale_dtype(array.dtype)
        amax = xp.abs(flat).max() if flat.size else xp.zeros((), dtype=array.dtype)
        scale = (amax / 127).astype(scale_dtype).reshape(1)
        # An all-zero tensor has scale 0; divide by 1 instead (q is 0 either way).
        divisor = xp.where(scale > 0, scale, xp.ones_like(scale))
        scaled = flat / divisor
        if self.stochastic:
            noise = xp.asarray(self._rng.random(flat.size)).astype(scaled.dtype)
            q = xp.floor(scaled + noise)
        else:
            q = xp.rint(scaled)
        q = xp.clip(q, -127, 127).astype(xp.int8)
        return Payload(tuple(array.shape), np.dtype(array.dtype), {"values": q, "scale": scale})

    def decompress(self, payload: Payload) -> Any:
        values, scale = payload.parts["values"], payload.parts["scale"]
        return (values.astype(payload.dtype) * scale.astype(payload.dtype)).reshape(payload.shape)

    def layout(self, shape: tuple[int, ...], dtype: Any) -> list[PartLayout]:
        return [("values", np.dtype(np.int8), math.prod(shape)), ("scale", _scale_dtype(dtype), 1)]

    def for_worker(self, rank: int) -> "Int8":
        twin = Int8(self.stochastic, self.seed)
        twin._rng = _host_generator(self.seed, rank)
        return twin

    def __repr__(self) -> str:
        return f"Int8(stochastic={self.stochastic}, seed={self.seed})"


class SignSGD(Compressor):
    """One bit per entry (its sign) plus one scale, the mean magnitude: x ~ mean|x| * sign(x).

    Scaling by mean|x| (the l1 norm over n) keeps the step size of the
    gradient (Bernstein et al. 2018; Karimireddy et al. 2019 for the scaled
    form with error feedback). Zero has no bit of its own and is sent as +.
    The bits are packed 8 to a byte: ceil(n / 8) bytes plus the scale.
    """

    name = "signsgd"

    def compress(self, array: Any, key: Hashable = None) -> Payload:
        xp = _check_float(array, "SignSGD.compress")
        flat = array.reshape(-1)
        scale = (xp.abs(flat).mean() if flat.size else xp.zeros((), dtype=array.dtype))
        scale = scale.astype(_scale_dtype(array.dtype)).reshape(1)
        bits = xp.packbits((flat >= 0).astype(xp.uint8))
        return Payload(tuple(array.shape), np.dtype(array.dtype), {"bits": bits, "scale": scale})

    def decompress(self, payload: Payload) -> Any:
        xp = get_array_module(payload.parts["bits"])
        size = math.prod(payload.shape)
        signs = xp.unpackbits(payload.parts["bits"])[:size].astype(payload.dtype) * 2 - 1
        return (signs * payload.parts["scale"].astype(payload.dtype)).reshape(payload.shape)

    def layout(self, shape: tuple[int, ...], dtype: Any) -> list[PartLayout]:
        return [("bits", np.dtype(np.uint8), (math.prod(shape) + 7) // 8), ("scale", _scale_dtype(dtype), 1)]


# -- sparsification -------------------------------------------------------------------------
class _Sparse(Compressor):
    """Shared by TopK and RandomK: a payload of k values and their int32 flat indices."""

    def __init__(self, ratio: float) -> None:
        self.ratio = _check_ratio(ratio, f"{type(self).__name__}")

    def _flat_and_module(self, array: Any) -> tuple[Any, Any]:
        xp = _check_float(array, f"{type(self).__name__}.compress")
        if array.size > np.iinfo(np.int32).max:
            raise ValueError(f"{type(self).__name__}.compress: {array.size} entries do not fit int32 indices")
        return array.reshape(-1), xp

    def decompress(self, payload: Payload) -> Any:
        values, indices = payload.parts["values"], payload.parts["indices"]
        xp = get_array_module(values)
        out = xp.zeros(math.prod(payload.shape), dtype=payload.dtype)
        out[indices] = values.astype(payload.dtype)
        return out.reshape(payload.shape)

    def add_decompressed(self, out: Any, payload: Payload) -> None:
        if not out.flags.c_contiguous:  # no flat view to write through
            super().add_decompressed(out, payload)
            return
        # Indices are distinct within one payload, so a fancy-indexed += adds each once.
        flat = out.reshape(-1)
        flat[payload.parts["indices"]] += payload.parts["values"].astype(out.dtype)

    def layout(self, shape: tuple[int, ...], dtype: Any) -> list[PartLayout]:
        k = _kept_count(self.ratio, math.prod(shape))
        return [("values", np.dtype(dtype), k), ("indices", np.dtype(np.int32), k)]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.ratio})"


class TopK(_Sparse):
    """Keep the k = max(1, floor(ratio * n)) entries of largest magnitude; zero the rest.

    Biased (it always drops the small entries), so use it inside
    ``ErrorFeedback``. Wire size: k values plus k int32 indices; at ratio
    0.01 on float32, 8 bytes per 100 entries instead of 400 (50x fewer).
    Ties at the k-th magnitude are broken arbitrarily.
    """

    name = "topk"

    def compress(self, array: Any, key: Hashable = None) -> Payload:
        flat, xp = self._flat_and_module(array)
        k = _kept_count(self.ratio, flat.size)
        if k == flat.size:
            indices = xp.arange(k)
        else:
            # argpartition puts the k largest magnitudes last, in no particular order.
            indices = xp.argpartition(xp.abs(flat), flat.size - k)[flat.size - k:]
        indices = xp.sort(indices).astype(xp.int32)  # sorted: a canonical, cache-friendly payload
        return Payload(tuple(array.shape), np.dtype(array.dtype),
                       {"values": flat[indices], "indices": indices})


class RandomK(_Sparse):
    """Keep k = max(1, floor(ratio * n)) entries chosen uniformly at random, scaled by n / k.

    Each entry is kept with probability k / n and then multiplied by n / k,
    so E[decompress(compress(x))] = x: unbiased, but with variance
    x_i**2 * (n / k - 1) per entry. Wire size as TopK.

    Args:
        ratio: the fraction of entries kept, in (0, 1].
        seed: seed of the subset choice (per worker, see ``for_worker``).
    """

    name = "randomk"

    def __init__(self, ratio: float, seed: int | None = 0) -> None:
        super().__init__(ratio)
        self.seed = seed
        self._rng = _host_generator(seed)

    def compress(self, array: Any, key: Hashable = None) -> Payload:
        flat, xp = self._flat_and_module(array)
        k = _kept_count(self.ratio, flat.size)
        chosen = np.sort(self._rng.choice(flat.size, size=k, replace=False)).astype(np.int32)
        indices = xp.asarray(chosen)
        values = flat[indices] * (flat.size / k) if k else flat[indices]
        return Payload(tuple(array.shape), np.dtype(array.dtype),
                       {"values": values.astype(array.dtype), "indices": indices})

    def for_worker(self, rank: int) -> "RandomK":
        twin = RandomK(self.ratio, self.seed)
        twin._rng = _host_generator(self.seed, rank)
        return twin

    def __repr__(self) -> str:
        return f"RandomK({self.ratio}, seed={self.seed})"


# -- error feedback -------------------------------------------------------------------------
def _all_finite(array: Any) -> bool:
    """No NaN or inf in ``array``: one sum (NaN and inf survive it), rechecked if the sum overflows."""
    xp = get_array_module(array)
    with np.errstate(over="ignore", invalid="ignore"):
        if bool(xp.isfinite(array.sum())):
            return True
    return bool(xp.isfinite(array).all())


class ErrorFeedback(Compressor):
    """Wraps a compressor and carries what it dropped into the next step.

    For each key (one parameter of one worker)::

        corrected = array + residual            (residual starts at zero)
        payload   = inner.compress(corrected)
        residual  = corrected - inner.decompress(payload)

    Summing the last line over steps t = 1..T telescopes: the decoded payloads
    add up to the inputs minus the final residual. So a biased compressor
    such as TopK delays small entries instead of losing them: an entry too
    small to be sent grows in the residual until it is.

    Each worker needs its own residuals: give every worker
    ``compressor.for_worker(rank)`` (the Trainer does).
    """

    def __init__(self, compressor: Compressor) -> None:
        if not isinstance(compressor, Compressor):
            raise TypeError(f"ErrorFeedback: expected a Compressor, got {type(compressor).__name__}")
        if isinstance(compressor, ErrorFeedback):
            raise TypeError("ErrorFeedback: the compressor is already wrapped in ErrorFeedback")
        self.inner = compressor
        self.name = f"{compressor.name}+ef"
        self._residuals: dict[Hashable, Any] = {}

    def compress(self, array: Any, key: Hashable = None) -> Payload:
        _check_float(array, "ErrorFeedback.compress")
        residual = self._residuals.get(key)
        if residual is None:
            corrected = array
        elif residual.shape != array.shape or residual.dtype != array.dtype:
            raise ValueError(f"ErrorFeedback.compress: key {key!r} holds a residual of shape {residual.shape} "
                             f"and dtype {residual.dtype}, got an array of shape {array.shape} and dtype "
                             f"{array.dtype}; use one key per parameter")
        else:
            corrected = array + residual
        payload = self.inner.compress(corrected)
        if _all_finite(array):
            self._residuals[key] = corrected - self.inner.decompress(payload)
        # else: the payload carries the NaN or inf to the master, whose check skips this step
        # (Trainer on_nan); kept in the residual it would poison every later step, so the
        # residual stays as it was.
        return payload

    def decompress(self, payload: Payload) -> Any:
        return self.inner.decompress(payload)

    def add_decompressed(self, out: Any, payload: Payload) -> None:
        self.inner.add_decompressed(out, payload)

    def layout(self, shape: tuple[int, ...], dtype: Any) -> list[PartLayout]:
        return self.inner.layout(shape, dtype)

    def residual(self, key: Hashable = None) -> Any:
        """What has been dropped and not yet sent for ``key`` (None before its first step)."""
        return self._residuals.get(key)

    def reset(self) -> None:
        """Forget every residual (for example when training restarts)."""
        self._residuals.clear()

    def for_worker(self, rank: int) -> "ErrorFeedback":
        return ErrorFeedback(self.inner.for_worker(rank))

    def __repr__(self) -> str:
        return f"ErrorFeedback({self.inner!r})"


def encode_arrays(compressor: Compressor, arrays: Mapping[str, Any], names: Sequence[str] | None = None) -> Any:
    """Compress each named array (``key`` = its name) and concatenate the payloads' bytes.

    ``names`` fixes the order (sorted names by default); the receiver decodes
    with ``decode_arrays`` in the same order. The result is one uint8 array on
    the arrays' device: what one worker sends for a whole model.
    """
    names = sorted(arrays) if names is None else list(names)
    if not names:
        return np.zeros(0, dtype=np.uint8)
    buffers = [compressor.compress(arrays[name], key=name).to_bytes() for name in names]
    xp = get_array_module(buffers[0])
    return xp.concatenate(buffers) if len(buffers) > 1 else buffers[0]


def decode_arrays(compressor: Compressor, wire: Any, like: Mapping[str, Any], names: Sequence[str] | None = None,
                  out: dict[str, Any] | None = None) -> dict[str, Any]:
    """Decode ``encode_arrays`` output and add it into ``out`` (zeros like ``like`` if None); returns ``out``.

    ``like`` maps each name to an array of the shape and dtype that was
    encoded (the receiver's own parameter). Adding into ``out`` lets a
    receiver sum the payloads of many workers without a dense copy of each.
    """
    names = sorted(like) if names is None else list(names)
    if out is None:
        out = {name: get_array_module(like[name]).zeros(like[name].shape, dtype=like[name].dtype) for name in names}
    sizes = [compressor.payload_nbytes(like[name].shape, like[name].dtype) for name in names]
    if wire.size != sum(sizes):
        raise ValueError(f"decode_arrays: {wire.size} bytes do not match the {sum(sizes)} that {compressor!r} "
                         f"sends for {len(names)} arrays; do both sides hold the same parameters?")
    offset = 0
    for name, size in zip(names, sizes):
        payload = compressor.from_bytes(wire[offset:offset + size], tuple(like[name].shape), like[name].dtype)
        compressor.add_decompressed(out[name], payload)
        offset += size
    return out


#: The names ``get_compressor`` (and ``Trainer(compression=...)``) accept.
COMPRESSION_NAMES = ("fp16", "int8", "topk", "signsgd")


def get_compressor(spec: Any) -> Compressor | None:
    """A compressor from a Trainer setting: None, a name, or a Compressor (returned as it is).

    Names: ``"fp16"`` -> FP16(); ``"int8"`` -> Int8(); ``"topk"`` ->
    ErrorFeedback(TopK(0.01)); ``"signsgd"`` -> ErrorFeedback(SignSGD()).
    The biased ones come with error feedback, without which they do not
    converge to the same accuracy.
    """
    if spec is None or isinstance(spec, Compressor):
        return spec
    factories = {
        "fp16": FP16,
        "int8": Int8,
        "topk": lambda: ErrorFeedback(TopK(0.01)),
        "signsgd": lambda: ErrorFeedback(SignSGD()),
    }
    if isinstance(spec, str) and spec in factories:
        return factories[spec]()
    raise ValueError(f"compression: unknown setting {spec!r}; choose None, one of {COMPRESSION_NAMES}, "
                     "or a tinyai.parallel.compression.Compressor")
