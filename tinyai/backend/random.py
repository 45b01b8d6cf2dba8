"""Random number streams, seeded from one place.

Every random draw in tinyai (weight initialisation, dropout masks, shuffling)
goes through ``get_rng()``, so ``seed(n)`` makes a whole run reproducible.
A thread or worker may install a stream of its own with ``using_rng`` (held in
a context variable, so it never leaks into other threads); data-parallel
workers use that to get independent but reproducible dropout masks.
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator

import numpy as np

_global_rng = np.random.default_rng(0)
_local_rng: contextvars.ContextVar[np.random.Generator | None] = contextvars.ContextVar(
    "tinyai_rng", default=None)


def seed(value: int) -> None:
    """Re-seed the global stream: same seed, same models, masks and shuffles."""
    global _global_rng
    _global_rng = np.random.default_rng(value)


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
