"""Max and average pooling over 2-D windows, through im2col.

After ``im2col`` lays each window out along its own (kh, kw) axes, pooling is
a reduction over those axes: ``max`` for max pooling, ``mean`` for average
pooling. The backward passes send each output gradient back to the window it
came from, with ``col2im`` adding the contributions where windows overlap:

* max pooling: all of it to the window's largest element (its argmax; on a
  tie, the first one in row-major order), nothing to the others;
* average pooling: an equal share 1 / (kh kw) to every element, padding
  included (padding counts in the average, as PyTorch's default
  ``count_include_pad=True``).

Both backward passes are Functions whose own backward is the forward pooling
again (restricted to the remembered argmax for max pooling), so second
derivatives work.
"""
from __future__ import annotations

from typing import Any

from tinyai.autograd import Function, Variable
from tinyai.backend import get_array_module
from tinyai.functions.im2col import Pair, as_pair, check_window, col2im_array, im2col_array


def _geometry(op: str, kernel_size: Any, stride: Any, pad: Any) -> tuple[Pair, Pair, Pair]:
    kernel = as_pair(kernel_size, op, "kernel_size", 1)
    stride = kernel if stride is None else as_pair(stride, op, "stride", 1)
    pad = as_pair(pad, op, "pad", 0)
    if pad[0] >= kernel[0] or pad[1] >= kernel[1]:
        # A window lying entirely in the padding would pool nothing but padding.
        raise ValueError(f"{op}: pad {pad} must be smaller than kernel_size {kernel}")
    return kernel, stride, pad


# -- max pooling --------------------------------------------------------------------------
class MaxPool2d(Function):
    def __init__(self, kernel: Pair, stride: Pair, pad: Pair) -> None:
        self.kernel, self.stride, self.pad = kernel, stride, pad

    def forward(self, x):
        check_window("max_pool2d", x.shape, self.kernel, self.pad)
        if x.dtype.kind != "f":
            raise TypeError(f"max_pool2d: input must be floating point, got dtype {x.dtype}")
        # -inf padding never wins a max, so padding behaves as if absent.
        col = im2col_array(x, self.kernel, self.stride, self.pad, fill=-float("inf"))
        n, c, kh, kw, oh, ow = col.shape
        col = col.reshape(n, c, kh * kw, oh, ow)
        self.argmax = col.argmax(axis=2)  # (N, C, OH, OW): flat index into each window
        self.in_shape = x.shape
        return col.max(axis=2)

    def backward(self, gy):
        return MaxPool2dGrad(self)(gy)


class MaxPool2dGrad(Function):
    """Route each output gradient to its window's argmax and add them up (col2im).

    Linear in gy; its backward picks the values at the same argmax positions
    (``MaxPool2dGather``).
    """

    def __init__(self, pool: MaxPool2d) -> None:
        self.pool = pool

    def forward(self, gy):
        xp = get_array_module(gy)
        pool = self.pool
        kh, kw = pool.kernel
        n, c, oh, ow = gy.shape
        slots = xp.arange(kh * kw).reshape(1, 1, kh * kw, 1, 1)
        winner = (slots == pool.argmax[:, :, None, :, :]).astype(gy.dtype)  # one-hot per window
        gcol = (winner * gy[:, :, None, :, :]).reshape(n, c, kh, kw, oh, ow)
        return col2im_array(gcol, pool.in_shape, pool.kernel, pool.stride, pool.pad)

    def backward(self, ggx):
        return MaxPool2dGather(self.pool)(ggx)


class MaxPool2dGather(Function):
    """y[n, c, r, s] = x at the argmax position recorded by a max pooling (no new max is taken)."""

    def __init__(self, pool: MaxPool2d) -> None:
        self.pool = pool

    def forward(self, x):
        xp = get_array_module(x)
        pool = self.pool
        col = im2col_array(x, pool.kernel, pool.stride, pool.pad)
        n, c, kh, kw, oh, ow = col.shape
        col = col.reshape(n, c, kh * kw, oh, ow)
        return xp.take_along_axis(col, pool.argmax[:, :, None, :, :], axis=2)[:, :, 0]

    def backward(self, gy):
        return MaxPool2dGrad(self.pool)(gy)


def max_pool2d(x: Any, kernel_size: int | Pair, stride: int | Pair | None = None, pad: int | Pair = 0) -> Variable:
    """Largest value of each kh x kw window: x (N, C, H, W) -> (N, C, OH, OW).

    ``stride`` defaults to ``kernel_size`` (non-overlapping windows); padding
    is -inf, so it never wins. OH = (H + 2 ph - kh) // sh + 1.

    The gradient of each output goes entirely to the element that was the
    maximum of its window (the first one, if several are equal).

    >>> import numpy as np
    >>> max_pool2d(np.arange(16.0).reshape(1, 1, 4, 4), 2).data[0, 0].tolist()
    [[5.0, 7.0], [13.0, 15.0]]
    """
    return MaxPool2d(*_geometry("max_pool2d", kernel_size, stride, pad))(x)


# -- average pooling -------------------------------------------------------------------
class AvgPool2d(Function):
    def __init__(self, kernel: Pair, stride: Pair, pad: Pair) -> None:
        self.kernel, self.stride, self.pad = kernel, stride, pad

    def forward(self, x):
        check_window("avg_pool2d", x.shape, self.kernel, self.pad)
        col = im2col_array(x, self.kernel, self.stride, self.pad)
        return col.mean(axis=(2, 3))

    def backward(self, gy):
        x, = self.saved_inputs()
        return AvgPool2dGrad(x.shape, self.kernel, self.stride, self.pad)(gy)


class AvgPool2dGrad(Function):
    """Spread gy / (kh kw) over each window and add overlaps (col2im). Its adjoint is avg_pool2d."""

    def __init__(self, in_shape: tuple[int, ...], kernel: Pair, stride: Pair, pad: Pair) -> None:
        self.in_shape, self.kernel, self.stride, self.pad = in_shape, kernel, stride, pad

    def forward(self, gy):
        xp = get_array_module(gy)
        n, c, oh, ow = gy.shape
        kh, kw = self.kernel
        share = gy / (kh * kw)
        gcol = xp.broadcast_to(share[:, :, None, None, :, :], (n, c, kh, kw, oh, ow))
        return col2im_array(gcol, self.in_shape, self.kernel, self.stride, self.pad)

    def backward(self, ggx):
        return AvgPool2d(self.kernel, self.stride, self.pad)(ggx)


def avg_pool2d(x: Any, kernel_size: int | Pair, stride: int | Pair | None = None, pad: int | Pair = 0) -> Variable:
    """Mean of each kh x kw window: x (N, C, H, W) -> (N, C, OH, OW).

    ``stride`` defaults to ``kernel_size``. Zero padding counts in the mean
    (every window divides by kh * kw). Each input element receives
    1 / (kh kw) of the gradient of every window that contains it.

    >>> import numpy as np
    >>> avg_pool2d(np.arange(16.0).reshape(1, 1, 4, 4), 2).data[0, 0].tolist()
    [[2.5, 4.5], [10.5, 12.5]]
    """
    return AvgPool2d(*_geometry("avg_pool2d", kernel_size, stride, pad))(x)
