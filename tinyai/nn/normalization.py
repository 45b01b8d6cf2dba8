"""Normalisation layers: BatchNorm1d, BatchNorm2d (TinyAI's BatchNormLayer) and LayerNorm.

Both kinds standardise activations and then rescale them with learned
gamma (scale) and beta (shift):

    y = gamma * (x - mean) / sqrt(var + eps) + beta

They differ in *what* the mean and variance are taken over. Batch norm
averages each feature (channel) over the batch (and, for images, over
height and width), so its result depends on the other examples in the
batch: in training it uses the batch's statistics and keeps exponential
running averages of them,

    running = momentum * running + (1 - momentum) * batch_statistic,

which it uses in test mode instead. Layer norm averages over the features
of each example separately, so it behaves the same in training and test and
for any batch size (the norm of choice in Transformers).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from tinyai import functions as F
from tinyai.autograd import Variable, test_mode
from tinyai.backend import get_default_dtype
from tinyai.backend.settings import int_setting, is_number
from tinyai.nn.layer import Layer, _check_variable
from tinyai.nn.parameter import Parameter


class _BatchNorm(Layer):
    _ndim = 2
    _layout = "(N, C)"

    def __init__(self, num_features: int, momentum: float = 0.9, eps: float = 1e-5, name: str | None = None) -> None:
        super().__init__(name)
        num_features = int_setting(num_features, self._label(), "num_features")
        if not is_number(momentum) or not 0.0 <= momentum < 1.0:
            raise ValueError(f"{self._label()}: momentum must be in [0, 1), got {momentum}")
        if not is_number(eps) or eps <= 0:
            raise ValueError(f"{self._label()}: eps must be positive, got {eps!r}")
        self.num_features = num_features
        self.momentum = float(momentum)
        self.eps = float(eps)
        dtype = get_default_dtype()
        self.gamma = Parameter(np.ones(num_features, dtype=dtype))
        self.beta = Parameter(np.zeros(num_features, dtype=dtype))
        self.register_buffer("running_mean", np.zeros(num_features, dtype=dtype))
        self.register_buffer("running_var", np.ones(num_features, dtype=dtype))

    def forward(self, x: Any) -> Variable:
        x = _check_variable(self, x)
        if x.ndim != self._ndim or x.shape[1] != self.num_features:
            raise ValueError(f"{self._label()}: expected input of shape {self._layout} with "
                             f"C={self.num_features}, got {tuple(x.shape)}")
        if self.training:
            return F.batch_norm(x, self.gamma, self.beta, self.running_mean, self.running_var,
                                momentum=self.momentum, eps=self.eps)
        with test_mode():  # this layer was put in eval(): running statistics, whatever the global mode
            return F.batch_norm(x, self.gamma, self.beta, self.running_mean, self.running_var,
                                momentum=self.momentum, eps=self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_features}, momentum={self.momentum}, eps={self.eps}"


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) activations, per feature over the batch.

    Args:
        num_features: C.
        momentum: weight of the old value in the running averages (TinyAI's 0.9).
        eps: added to the variance before the square root.

    Parameters gamma (ones) and beta (zeros), shape (C,); buffers
    running_mean (zeros) and running_var (ones).
    """


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) images, per channel over batch, height and width.

    Arguments, Parameters and buffers as for ``BatchNorm1d``.
    """

    _ndim = 4
    _layout = "(N, C, H, W)"


class LayerNorm(Layer):
    """Layer normalisation over the last axis: each example's D features get mean 0, variance 1,
    then y = gamma * x_hat + beta.

    Args:
        normalized_shape: D, the size of the last axis.
        eps: added to the variance before the square root.

    Shapes: x (..., D) -> y (..., D); gamma (ones), beta (zeros) of shape (D,).
    """

    def __init__(self, normalized_shape: int, eps: float = 1e-5, name: str | None = None) -> None:
        super().__init__(name)
        normalized_shape = int_setting(normalized_shape, self._label(), "normalized_shape")
        if not is_number(eps) or eps <= 0:
            raise ValueError(f"{self._label()}: eps must be positive, got {eps!r}")
        self.normalized_shape = normalized_shape
        self.eps = float(eps)
        dtype = get_default_dtype()
        self.gamma = Parameter(np.ones(normalized_shape, dtype=dtype))
        self.beta = Parameter(np.zeros(normalized_shape, dtype=dtype))

    def forward(self, x: Any) -> Variable:
        x = _check_variable(self, x)
        if x.ndim < 1 or x.shape[-1] != self.normalized_shape:
            raise ValueError(f"{self._label()}: expected input of shape (..., {self.normalized_shape}), "
                             f"got {tuple(x.shape)}")
        return F.layer_norm(x, self.gamma, self.beta, eps=self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}"
