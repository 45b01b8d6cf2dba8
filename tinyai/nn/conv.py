"""Convolution layers: Conv2d (TinyAI's ConvLayer) and DepthwiseSeparableConv2d.

A convolution slides a small kernel over the image, so every position shares
the same weights: a 3x3 layer from 16 to 32 channels has 16*32*9 weights
whatever the image size, where a fully connected layer on a 28x28 image would
need millions. The computation itself is ``tinyai.functions.conv2d`` (im2col).
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from tinyai import functions as F
from tinyai.autograd import Variable
from tinyai.backend import get_array_module
from tinyai.backend.settings import bool_setting, int_setting, is_int
from tinyai.nn.init import check_init, initialize
from tinyai.nn.layer import Layer, _check_variable
from tinyai.nn.parameter import Parameter


def _pair(layer: Layer, value: Any, what: str, minimum: int) -> tuple[int, int]:
    if is_int(value):
        pair = (value, value)
    elif isinstance(value, (tuple, list)):
        pair = tuple(value)
    else:
        pair = ()
    if len(pair) != 2 or not all(is_int(v) and v >= minimum for v in pair):
        raise ValueError(f"{layer._label()}: {what} must be an int >= {minimum} or a pair of them, got {value!r}")
    return int(pair[0]), int(pair[1])


def _pad_or_padding(layer: Layer, pad: Any, padding: Any) -> Any:
    """``pad``, or PyTorch's spelling ``padding=`` (an alias; giving both differently is an error)."""
    if padding is None:
        return pad
    if pad != 0 and pad != padding:
        raise ValueError(f"{layer._label()}: pad={pad!r} and padding={padding!r} name the same setting; give one")
    return padding


def _set_geometry(layer: Layer, out_channels: Any, kernel_size: Any, stride: Any, pad: Any,
                  bias: bool) -> None:
    """Check and store what every convolution layer has: channels out, kernel, stride, pad, bias."""
    layer.out_channels = int_setting(out_channels, layer._label(), "out_channels")
    layer.kernel_size = _pair(layer, kernel_size, "kernel_size", 1)
    layer.stride = _pair(layer, stride, "stride", 1)
    layer.pad = _pair(layer, pad, "pad", 0)
    layer.use_bias = bool_setting(bias, layer._label(), "bias")


def _check_image(layer: Layer, x: Any, channels: int | None, kernel: tuple[int, int],
                 pad: tuple[int, int]) -> Variable:
    """x as a Variable of shape (N, channels, H, W) large enough for the kernel, or a ValueError."""
    x = _check_variable(layer, x)
    if x.ndim != 4:
        raise ValueError(f"{layer._label()}: expected an image batch of shape (N, C, H, W), got {tuple(x.shape)}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{layer._label()}: expected input of shape (N, {channels}, H, W) "
                         f"({channels} channels), got {tuple(x.shape)}")
    height, width = x.shape[2] + 2 * pad[0], x.shape[3] + 2 * pad[1]
    if height < kernel[0] or width < kernel[1]:
        raise ValueError(f"{layer._label()}: the {kernel[0]}x{kernel[1]} kernel does not fit the input of "
                         f"shape {tuple(x.shape)} with padding {pad}")
    return x


class Conv2d(Layer):
    """2-D convolution: y[n, o] = b[o] + sum_c W[o, c] (*) x[n, c], with (*) cross-correlation.

    Args:
        in_channels: C of the input, or None to infer it on the first call.
        out_channels: number of kernels (output channels).
        kernel_size: an int or a (kh, kw) pair.
        stride, pad: an int or a pair; pad adds zeros on every side
            (``padding=`` is accepted too, PyTorch's name for it).
        bias: whether to add a bias per output channel.
        init: "he" (default, for ReLU networks) or "xavier"; fan_in = C kh kw.

    Shapes: x (N, C, H, W) -> y (N, out_channels, OH, OW) with
    OH = (H + 2 pad - kh) // stride + 1; W (out_channels, C, kh, kw), b (out_channels,).
    """

    def __init__(self, in_channels: int | None, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, pad: int | tuple[int, int] = 0, bias: bool = True,
                 init: str = "he", name: str | None = None, *, padding: int | tuple[int, int] | None = None) -> None:
        super().__init__(name)
        self.in_channels = in_channels = int_setting(in_channels, self._label(), "in_channels", none_ok=True)
        _set_geometry(self, out_channels, kernel_size, stride, _pad_or_padding(self, pad, padding), bias)
        self.init = check_init(self._label(), init)
        self.W: Parameter | None = None
        self.b: Parameter | None = None
        if in_channels is not None:
            self._build(in_channels)

    def _build(self, in_channels: int) -> None:
        self.in_channels = in_channels
        kh, kw = self.kernel_size
        shape = (self.out_channels, in_channels, kh, kw)
        self.W = Parameter(initialize(shape, in_channels * kh * kw, self.out_channels * kh * kw, self.init))
        if self.use_bias:
            self.b = Parameter(initialize((self.out_channels,), 1, 1, "zeros"))

    def _materialize(self, state: Mapping[str, Any]) -> None:
        if self.W is None and "W" in state and len(getattr(state["W"], "shape", ())) == 4:
            self._build(int(state["W"].shape[1]))

    def forward(self, x: Any) -> Variable:
        x = _check_image(self, x, self.in_channels, self.kernel_size, self.pad)
        if self.W is None:
            self._build(int(x.shape[1]))
        return F.conv2d(x, self.W, self.b, stride=self.stride, pad=self.pad)

    def extra_repr(self) -> str:
        in_channels = self.in_channels if self.in_channels is not None else "?"
        return (f"{in_channels} -> {self.out_channels}, kernel={self.kernel_size}, stride={self.stride}, "
                f"pad={self.pad}" + ("" if self.use_bias else ", bias=False"))


class DepthwiseSeparableConv2d(Layer):
    """A depthwise convolution followed by a pointwise (1x1) one (the MobileNet factorisation).

        depthwise: d[n, c] = W_depth[c] (*) x[n, c]                (each channel its own kh x kw kernel)
        pointwise: y[n, o] = b[o] + sum_c W_point[o, c] d[n, c]

    It needs C (kh kw + out) weights instead of a full convolution's C out kh kw.

    The depthwise step is computed as one ordinary convolution whose kernel
    is W_depth placed on the diagonal of a (C, C, kh, kw) array (zeros
    elsewhere): the gradient of the zeros is discarded by the product with the
    constant diagonal mask, so only W_depth learns. This trades C times more
    arithmetic for reusing conv2d unchanged; fine at teaching sizes.

    Args:
        in_channels, out_channels, kernel_size, stride, pad: as for Conv2d
            (stride and pad apply to the depthwise step).
        bias: whether the pointwise step adds a bias.

    Parameters: W_depth (C, 1, kh, kw), W_point (out, C, 1, 1), b (out,).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, pad: int | tuple[int, int] = 0, bias: bool = True,
                 init: str = "he", name: str | None = None, *, padding: int | tuple[int, int] | None = None) -> None:
        super().__init__(name)
        self.in_channels = in_channels = int_setting(in_channels, self._label(), "in_channels")
        _set_geometry(self, out_channels, kernel_size, stride, _pad_or_padding(self, pad, padding), bias)
        check_init(self._label(), init)
        kh, kw = self.kernel_size
        self.W_depth = Parameter(initialize((in_channels, 1, kh, kw), kh * kw, kh * kw, init))
        self.W_point = Parameter(initialize((out_channels, in_channels, 1, 1), in_channels, out_channels, init))
        self.b = Parameter(initialize((out_channels,), 1, 1, "zeros")) if bias else None
        self.register_buffer("diagonal", np.eye(in_channels, dtype=self.W_depth.dtype)[:, :, None, None],
                             persistent=False)

    def forward(self, x: Any) -> Variable:
        x = _check_image(self, x, self.in_channels, self.kernel_size, self.pad)
        diagonal = self.diagonal
        if get_array_module(diagonal) is not get_array_module(self.W_depth.data) or diagonal.dtype != self.W_depth.dtype:
            diagonal = get_array_module(self.W_depth.data).asarray(diagonal, dtype=self.W_depth.dtype)
        depth_kernel = self.W_depth * diagonal  # (C, 1, kh, kw) * (C, C, 1, 1) -> (C, C, kh, kw)
        d = F.conv2d(x, depth_kernel, stride=self.stride, pad=self.pad)
        return F.conv2d(d, self.W_point, self.b)

    def extra_repr(self) -> str:
        return (f"{self.in_channels} -> {self.out_channels}, kernel={self.kernel_size}, stride={self.stride}, "
                f"pad={self.pad}")
