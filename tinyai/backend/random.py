"""Random number streams, seeded from one place.

Every random draw in tinyai (weight initialisation, dropout masks, shuffling)
goes through ``get_rng()``, so ``seed(n)`` makes a whole run reproducible.
A thread or worker may install a stream of its own with ``using_rng`` (held in
a context variable, so it never leaks into other threads); data-parallel
workers use that to get independent but reproducible dropout masks.

Random arrays needed *on a GPU* (dropout masks) are drawn there, not on the
host and copied: ``uniform_like`` takes one 64-bit seed from the host stream
and lets the device's own counter-based generator (Philox) expand it. The
host stream therefore still decides everything: ``seed(n)`` and a restored
checkpoint reproduce device masks too, and each data-parallel worker's
stream gives its own.
"""
from __future__ import annotations

import contextlib
import contextvars
import threading
from typing import Any, Iterator

import numpy as np

from tinyai.backend.settings import is_int

_global_rng = np.random.default_rng(0)
_local_rng: contextvars.ContextVar[np.random.Generator | None] = contextvars.ContextVar(
    "tinyai_rng", default=None)


def seed(value: int) -> None:
    """Re-seed the global stream: same seed, same models, masks and shuffles.

    ``value`` is a non-negative integer (NumPy integers too).
    """
    global _global_rng
    if not is_int(value) or value < 0:
        raise ValueError(f"seed: the seed must be a non-negative int, got {value!r}")
    _global_rng = np.random.default_rng(int(value))


def get_rng() -> np.random.Generator:
    """The stream in force here: this context's own, else the global one."""
    rng = _local_rng.get()
    return _global_rng if rng is None else rng


def get_state() -> dict:
    """The global stream's state, as a JSON-able dict (for checkpoints)."""
    return _global_rng.bit_generator.state


def set_state(state: dict) -> None:
    """Restore the global stream from ``get_state()``'s result."""
    _global_rng.bit_generator.state = state


@contextlib.contextmanager
def using_rng(rng: np.random.Generator) -> Iterator[np.random.Generator]:
    """Draw from ``rng`` inside the block (in this thread or task only)."""
    token = _local_rng.set(rng)
    try:
        yield rng
    finally:
        _local_rng.reset(token)


_device_generators = threading.local()


def uniform_like(shape: tuple[int, ...], like: Any) -> Any:
    """Uniform numbers in [0, 1) of ``shape``, on the device (and array module) of ``like``.

    On the CPU they come straight from ``get_rng()`` (float64). On a device,
    one seed drawn from ``get_rng()`` re-seeds that device's generator, which
    draws float32 numbers in place; nothing crosses the bus but the seed.
    """
    from tinyai.backend.array_module import get_array_module  # noqa: PLC0415 - avoids an import cycle

    xp = get_array_module(like)
    if xp is np:
        return get_rng().random(shape)
    rng = get_rng()
    seed_value = int(rng.integers(2 ** 63))
    # A data-parallel worker's stream (ShardRandom) draws for the whole batch and keeps its rows,
    # so that the mask does not depend on the split (and shards do not share one mask).
    batch_rows = getattr(rng, "batch_rows", None)
    draw_shape, rows = batch_rows(tuple(shape)) if batch_rows is not None else (shape, None)
    device = getattr(like, "device", None)  # a cupy.cuda.Device: allocate and draw on like's GPU
    with device if hasattr(device, "__enter__") else contextlib.nullcontext():
        generator = _device_generator(xp, like)
        generator.seed(seed_value)
        values = generator.random_sample(draw_shape, dtype=np.float32)
    return values if rows is None else values[rows[0]:rows[1]]


def _device_generator(xp: Any, like: Any) -> Any:
    """This thread's generator for the device of ``like`` (created on first use)."""
    device_id = getattr(getattr(like, "device", None), "id", 0)
    key = (xp.__name__, device_id)
    generators = getattr(_device_generators, "by_device", None)
    if generators is None:
        generators = _device_generators.by_device = {}
    generator = generators.get(key)
    if generator is None:
        if xp.__name__ == "cupy":
            # Philox is counter-based: re-seeding it costs nothing, unlike cuRAND's default XORWOW.
            method = xp.cuda.curand.CURAND_RNG_PSEUDO_PHILOX4_32_10
            generator = xp.random.RandomState(0, method=method)
        else:
            generator = xp.random.RandomState(0)
        generators[key] = generator
    return generator
