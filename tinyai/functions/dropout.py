"""Dropout: randomly silencing units while training, so no unit can rely on another.

Inverted dropout: in train mode each element is kept with probability
1 - ratio and the kept ones are divided by 1 - ratio,

    y = x * mask / (1 - ratio),   mask[i] ~ Bernoulli(1 - ratio)

so the expected value of y equals x and nothing needs rescaling at test time,
where dropout is the identity.
"""
from __future__ import annotations

from typing import Any

from tinyai.autograd import Function, Variable, as_variable, is_train_mode
from tinyai.backend import uniform_like
from tinyai.backend.settings import is_number


class Dropout(Function):
    """y = x * scaled_mask, the mask (already divided by 1 - ratio) drawn once at construction."""

    def __init__(self, scaled_mask: Any) -> None:
        self.scaled_mask = scaled_mask

    def forward(self, x):
        return x * self.scaled_mask

    def backward(self, gy):
        # The same mask: a dropped unit passes no gradient, a kept one passes
        # it scaled like its value. Written as a product of Variables, so it
        # is differentiable again.
        return gy * self.scaled_mask


def dropout(x: Any, ratio: float = 0.5) -> Variable:
    """Inverted dropout: zero each element with probability ``ratio`` in train mode.

    Kept elements are scaled by 1 / (1 - ratio); in test mode
    (``tinyai.test_mode()``) x is returned unchanged. The mask is drawn from
    ``tinyai.backend.get_rng()`` on the CPU; on a GPU it is drawn there, from
    a seed that ``get_rng()`` provides (see ``tinyai.backend.uniform_like``),
    so ``tinyai.seed(n)`` makes it reproducible on NumPy and CuPy alike.

    >>> import numpy as np
    >>> import tinyai
    >>> with tinyai.test_mode():
    ...     dropout(np.ones(3)).data.tolist()
    [1.0, 1.0, 1.0]
    """
    if not is_number(ratio) or not 0 <= ratio < 1:
        raise ValueError(f"dropout: ratio must be a number in [0, 1), got {ratio!r}")
    x = as_variable(x)
    if not is_train_mode() or ratio == 0:
        return x
    if x.dtype.kind != "f":
        raise TypeError(f"dropout: input must be floating point, got dtype {x.dtype}")
    keep = uniform_like(x.shape, x.data) >= ratio  # drawn on x's device
    scaled_mask = keep.astype(x.dtype) * x.dtype.type(1 / (1 - ratio))
    return Dropout(scaled_mask)(x)
