"""Communicators for the workers of one data-parallel step, and replayed random draws.

``ProcessCommunicator``: the workers' all-reduce over a shared-memory block of
slots and one process barrier per possible number of participants. (The
communicators of every transport live in ``tinyai.parallel.comm``.)

``ShardRandom``: random draws that do not depend on how the batch was split.
Each worker replays the draws that single-thread training would make for the
*whole* batch, from the same generator state, and keeps only its own rows. So
a dropout mask is the same in 1, 2 or 4 workers, and after the step the
master's generator is where single-thread training would have left it.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from tinyai.backend import get_array_module


class ProcessCommunicator:
    """All-reduce among worker processes through a shared (workers, capacity) float64 block.

    ``barriers[k - 1]`` is a process barrier for k participants: a step with
    fewer shards than workers uses the smaller one. Sums are taken in float64
    and returned in the dtype (and on the device) of the input.
    """

    def __init__(self, slots: np.ndarray, barrier: Any, rank: int, size: int, timeout: float = 60.0) -> None:
        self.slots, self.barrier, self.rank, self.size, self.timeout = slots, barrier, rank, size, timeout

    def abort(self) -> None:
        self.barrier.abort()

    def allreduce(self, value: Any, op: str = "sum") -> Any:
        if op != "sum":
            raise ValueError(f"allreduce: this communicator only sums, got op={op!r}")
        host = as_host_array(value)
        flat = host.reshape(-1)
        if flat.size > self.slots.shape[1]:
            raise ValueError(f"allreduce_sum: {flat.size} values exceed the communicator's capacity "
                             f"of {self.slots.shape[1]}")
        self.slots[self.rank, :flat.size] = flat
        self.barrier.wait(self.timeout)
        total = self.slots[0, :flat.size].copy()
        for other in range(1, self.size):
            total += self.slots[other, :flat.size]
        self.barrier.wait(self.timeout)
        if isinstance(value, (int, np.integer)):
            return int(round(float(total[0])))
        xp = get_array_module(value)
        return xp.asarray(total.reshape(host.shape).astype(value.dtype))


class ShardRandom:
    """A generator that draws for the whole batch and returns this shard's rows.

    Draws whose first dimension is the shard size are made with the full
    batch size instead, from a generator in the master's state, and sliced to
    rows ``start:stop``; other draws pass through unchanged.
    """

    def __init__(self, state: dict, start: int, stop: int, total: int) -> None:
        self.generator = np.random.Generator(getattr(np.random, state["bit_generator"])())
        self.generator.bit_generator.state = state
        self.start, self.stop, self.total = start, stop, total

    @property
    def state(self) -> dict:
        return self.generator.bit_generator.state

    def _rows(self, draw, size: Any, *args: Any, **kwargs: Any) -> Any:
        shape = (size,) if isinstance(size, (int, np.integer)) else tuple(size) if size is not None else None
        if shape and shape[0] == self.stop - self.start:
            full = draw(*args, size=(self.total,) + shape[1:], **kwargs)
            return full[self.start:self.stop]
        return draw(*args, size=size, **kwargs)

    def random(self, size: Any = None, dtype: Any = np.float64) -> Any:
        return self._rows(self.generator.random, size, dtype=dtype)

    def standard_normal(self, size: Any = None, dtype: Any = np.float64) -> Any:
        return self._rows(self.generator.standard_normal, size, dtype=dtype)

    def uniform(self, low: float = 0.0, high: float = 1.0, size: Any = None) -> Any:
        return self._rows(self.generator.uniform, size, low, high)

    def normal(self, loc: float = 0.0, scale: float = 1.0, size: Any = None) -> Any:
        return self._rows(self.generator.normal, size, loc, scale)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.generator, name)


def as_host_array(value: Any) -> np.ndarray:
    """A host float64 copy of a number or array (for shared-memory transport)."""
    xp = get_array_module(value)
    if xp is not np:
        value = value.get()
    return np.asarray(value, dtype=np.float64)
