"""Dropout as a layer: zero a random fraction of activations during training."""
from __future__ import annotations

from typing import Any

from tinyai import functions as F
from tinyai.autograd import Variable, is_train_mode
from tinyai.backend.settings import is_number
from tinyai.nn.layer import Layer


class Dropout(Layer):
    """In training, y = x * mask / (1 - ratio) with mask ~ Bernoulli(1 - ratio); in test mode y = x.

    Scaling the kept values by 1 / (1 - ratio) ("inverted dropout") keeps the
    expected activation the same in both modes, so nothing changes at test
    time. The layer drops only when both its own ``training`` flag and the
    global mode (``tinyai.test_mode()``) say train. Masks come from
    ``tinyai.backend.get_rng()``.

    Args:
        ratio: the probability of dropping each value, in [0, 1).
    """

    def __init__(self, ratio: float = 0.5, name: str | None = None) -> None:
        super().__init__(name)
        if not is_number(ratio) or not 0.0 <= ratio < 1.0:
            raise ValueError(f"{self._label()}: ratio must be in [0, 1), got {ratio!r}")
        self.ratio = float(ratio)

    def forward(self, x: Any) -> Variable:
        if self.ratio == 0.0 or not self.training or not is_train_mode():
            return x
        return F.dropout(x, self.ratio)

    def extra_repr(self) -> str:
        return f"ratio={self.ratio}"
