"""Layers that only change an array's shape: Flatten and Reshape."""
from __future__ import annotations

from typing import Any, Sequence

from tinyai import functions as F
from tinyai.autograd import Variable
from tinyai.backend.settings import is_int
from tinyai.nn.layer import Layer, _check_variable


class Flatten(Layer):
    """(N, d1, d2, ...) -> (N, d1 * d2 * ...): keep the batch axis, flatten the rest.

    Used between convolutional and fully connected layers.
    """

    def forward(self, x: Any) -> Variable:
        x = _check_variable(self, x)
        if x.ndim < 1:
            raise ValueError(f"{self._label()}: expected an input with a batch axis, got a scalar")
        return F.reshape(x, (x.shape[0], -1))


class Reshape(Layer):
    """(N, ...) -> (N, *shape): keep the batch axis, reshape the rest (one entry may be -1)."""

    def __init__(self, shape: Sequence[int], name: str | None = None) -> None:
        super().__init__(name)
        # int() would turn 2.5 into 2 and "3" into 3 without a word: only ints (NumPy's too) pass.
        entries = tuple(shape) if isinstance(shape, (tuple, list)) else None
        if entries is None or not all(is_int(n) and (n >= 1 or n == -1) for n in entries) or \
                sum(1 for n in entries if n == -1) > 1:
            raise ValueError(f"{self._label()}: shape must be a tuple of positive ints (one may be -1), "
                             f"got {shape!r}")
        self.target = tuple(int(n) for n in entries)

    def forward(self, x: Any) -> Variable:
        x = _check_variable(self, x)
        per_sample = x.size // x.shape[0] if x.ndim and x.shape[0] else 0
        known = 1
        for n in self.target:
            if n != -1:
                known *= n
        if (-1 in self.target and (known == 0 or per_sample % known)) or \
                (-1 not in self.target and known != per_sample):
            raise ValueError(f"{self._label()}: cannot reshape input of shape {tuple(x.shape)} "
                             f"to (N, {', '.join(map(str, self.target))})")
        return F.reshape(x, (x.shape[0],) + self.target)

    def extra_repr(self) -> str:
        return f"shape={self.target}"
