"""Pooling layers: MaxPool2d and AvgPool2d (TinyAI's PoolingLayer).

Pooling summarises each kh x kw window of every channel by one number (its
maximum or its mean), shrinking the image and making the next layers less
sensitive to small shifts. No Parameters.
"""
from __future__ import annotations

from typing import Any

from tinyai import functions as F
from tinyai.autograd import Variable
from tinyai.nn.conv import _check_image, _pad_or_padding, _pair
from tinyai.nn.layer import Layer


class _Pool2d(Layer):
    def __init__(self, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] | None = None,
                 pad: int | tuple[int, int] = 0, name: str | None = None, *,
                 padding: int | tuple[int, int] | None = None) -> None:
        super().__init__(name)
        pad = _pad_or_padding(self, pad, padding)
        self.kernel_size = _pair(self, kernel_size, "kernel_size", 1)
        self.stride = self.kernel_size if stride is None else _pair(self, stride, "stride", 1)
        self.pad = _pair(self, pad, "pad", 0)

    def extra_repr(self) -> str:
        return f"kernel={self.kernel_size}, stride={self.stride}, pad={self.pad}"


class MaxPool2d(_Pool2d):
    """y[n, c, r, s] = max of x[n, c] over the window at (r * sh, s * sw).

    Args:
        kernel_size: an int or a (kh, kw) pair.
        stride: defaults to kernel_size (windows side by side, not overlapping).
        pad: padding with -inf (never the maximum).

    Shapes: (N, C, H, W) -> (N, C, (H + 2 ph - kh) // sh + 1, (W + 2 pw - kw) // sw + 1).
    """

    def forward(self, x: Any) -> Variable:
        x = _check_image(self, x, None, self.kernel_size, self.pad)
        return F.max_pool2d(x, self.kernel_size, self.stride, self.pad)


class AvgPool2d(_Pool2d):
    """y[n, c, r, s] = mean of x[n, c] over the window at (r * sh, s * sw).

    Arguments and shapes as for ``MaxPool2d`` (padding counts as zeros in the mean).
    """

    def forward(self, x: Any) -> Variable:
        x = _check_image(self, x, None, self.kernel_size, self.pad)
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.pad)
