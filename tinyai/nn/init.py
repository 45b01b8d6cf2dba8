"""Weight initialisation: He for ReLU networks, Xavier/Glorot otherwise.

The aim of both is to keep the variance of activations (and of gradients)
roughly constant from layer to layer, so deep stacks neither blow up nor fade:

* Xavier/Glorot (tanh, sigmoid, linear): Var(W) = 2 / (fan_in + fan_out),
  here drawn uniformly from [-a, a] with a = sqrt(6 / (fan_in + fan_out)).
* He/Kaiming (ReLU, GELU): ReLU zeroes half its inputs, so the variance is
  doubled to compensate: W ~ N(0, 2 / fan_in).

Every draw comes from ``tinyai.backend.get_rng()``: after ``seed(n)`` the
same model is built every time. Arrays are created on the host in the
default float dtype; ``to_gpu()`` moves them.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from tinyai.backend import get_default_dtype, get_rng

#: names accepted wherever a layer takes ``init=``
INITIALIZERS = ("xavier", "he", "normal", "zeros")


def xavier_uniform(shape: Sequence[int], fan_in: int, fan_out: int) -> np.ndarray:
    """U(-a, a) with a = sqrt(6 / (fan_in + fan_out)) (Glorot and Bengio, 2010)."""
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    return get_rng().uniform(-bound, bound, size=tuple(shape)).astype(get_default_dtype())


def he_normal(shape: Sequence[int], fan_in: int) -> np.ndarray:
    """N(0, 2 / fan_in) (He et al., 2015), for layers followed by ReLU."""
    std = math.sqrt(2.0 / fan_in)
    return (get_rng().standard_normal(size=tuple(shape)) * std).astype(get_default_dtype())


def initialize(shape: Sequence[int], fan_in: int, fan_out: int, method: str = "xavier",
               std: float = 0.02) -> np.ndarray:
    """A new weight array of ``shape`` by ``method`` (one of ``INITIALIZERS``).

    ``"normal"`` draws N(0, std^2) (used for embeddings); ``"zeros"`` is for biases.
    """
    if method == "xavier":
        return xavier_uniform(shape, fan_in, fan_out)
    if method == "he":
        return he_normal(shape, fan_in)
    if method == "normal":
        return (get_rng().standard_normal(size=tuple(shape)) * std).astype(get_default_dtype())
    if method == "zeros":
        return np.zeros(tuple(shape), dtype=get_default_dtype())
    raise ValueError(f"initialize: unknown method {method!r}; choose one of {', '.join(INITIALIZERS)}")


def check_init(layer_label: str, method: str) -> str:
    """``method`` if it is a known initialiser name, else a ValueError naming the layer."""
    if method not in INITIALIZERS:
        raise ValueError(f"{layer_label}: unknown init {method!r}; choose one of {', '.join(INITIALIZERS)}")
    return method
