"""Replayed random draws: what keeps dropout the same however the batch is split.

``ShardRandom``: random draws that do not depend on how the batch was split.
Each worker replays the draws that single-thread training would make for the
*whole* batch, from the same generator state, and keeps only its own rows. So
a dropout mask is the same in 1, 2 or 4 workers, and after the step the
master's generator is where single-thread training would have left it.
"""
from __future__ import annotations

from typing import Any

import numpy as np


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

    def batch_rows(self, shape: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, int] | None]:
        """For a draw of ``shape`` made elsewhere (on a device): the shape to draw, and the rows to keep.

        ``tinyai.backend.uniform_like`` asks this before drawing a dropout
        mask on a device, so that the device draw, too, is made for the
        whole batch and cut to this shard's rows.
        """
        if shape and shape[0] == self.stop - self.start:
            return (self.total,) + tuple(shape[1:]), (self.start, self.stop)
        return tuple(shape), None

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

