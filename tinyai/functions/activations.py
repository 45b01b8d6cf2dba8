"""Activation functions: the nonlinearities between layers.

Each is stable for large inputs: ``sigmoid`` and ``softplus`` never overflow
in ``exp`` whatever the sign of x.
"""
from __future__ import annotations

import math
from typing import Any

from tinyai.autograd import Function, Variable
from tinyai.backend import get_array_module
from tinyai.backend.settings import is_number
from tinyai.functions.math import tanh


def _stable_sigmoid(x):
    xp = get_array_module(x)
    # 0.5 * (1 + tanh(x / 2)) equals 1 / (1 + e^-x) and never overflows.
    return 0.5 * xp.tanh(0.5 * x) + 0.5


class Sigmoid(Function):
    def forward(self, x):
        return _stable_sigmoid(x)

    def backward(self, gy):
        y, = self.saved_outputs()
        return gy * y * (1 - y)


class ReLU(Function):
    """max(0, x). Its derivative at exactly 0 is taken as 0."""

    def forward(self, x):
        self.mask = x > 0  # where the gradient passes: a constant for backward, kept as booleans
        # Against an array of zeros rather than the number 0: NumPy (2.4) runs
        # maximum with a scalar operand in a loop two to three times slower
        # than its vector loop for two arrays, zeros included.
        xp = get_array_module(x)
        y = xp.zeros_like(x)  # in x's memory layout
        return xp.maximum(x, y, out=y)

    def backward(self, gy):
        return gy * self.mask


class LeakyReLU(Function):
    """x for x > 0, slope * x otherwise."""

    def __init__(self, slope: float) -> None:
        self.slope = slope

    def forward(self, x):
        xp = get_array_module(x)
        self.factor = xp.where(x > 0, 1, self.slope).astype(x.dtype)  # the slope at each element
        return x * self.factor

    def backward(self, gy):
        return gy * self.factor


_GELU_K = math.sqrt(2.0 / math.pi)
_GELU_A = 0.044715


class GELU(Function):
    """GELU in its tanh form: 0.5 x (1 + tanh(k (x + a x^3))), k = sqrt(2/pi), a = 0.044715.

    This is the approximation used by BERT and GPT-2; it differs from the
    exact x Phi(x) by less than 1e-3 everywhere.
    """

    def forward(self, x):
        xp = get_array_module(x)
        return 0.5 * x * (1 + xp.tanh(_GELU_K * (x + _GELU_A * x ** 3)))

    def backward(self, gy):
        x, = self.saved_inputs()
        t = tanh(_GELU_K * (x + _GELU_A * x ** 3))
        dt = _GELU_K * (1 + 3 * _GELU_A * x * x)
        return gy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * dt)


class Softplus(Function):
    """log(1 + e^x), computed as logaddexp(0, x) so it never overflows."""

    def forward(self, x):
        return get_array_module(x).logaddexp(0, x)

    def backward(self, gy):
        x, = self.saved_inputs()
        return gy * sigmoid(x)


def sigmoid(x: Any) -> Variable:
    """Elementwise logistic function 1 / (1 + e^-x)."""
    return Sigmoid()(x)


def relu(x: Any) -> Variable:
    """Elementwise max(0, x)."""
    return ReLU()(x)


def leaky_relu(x: Any, slope: float = 0.01) -> Variable:
    """Elementwise x if x > 0 else slope * x."""
    if not is_number(slope):
        raise ValueError(f"leaky_relu: slope must be a finite number, got {slope!r}")
    return LeakyReLU(slope)(x)


def gelu(x: Any) -> Variable:
    """Gaussian error linear unit (tanh approximation)."""
    return GELU()(x)


def softplus(x: Any) -> Variable:
    """Elementwise log(1 + e^x), a smooth ReLU."""
    return Softplus()(x)
