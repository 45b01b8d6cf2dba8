"""2-D convolution and its transpose, both through im2col.

conv2d slides a kernel over the image; after ``im2col`` has laid every window
out as its own slot, the whole convolution is one tensor contraction:

    y[n, o, r, s] = b[o] + sum_{c, i, j} W[o, c, i, j] * col[n, c, i, j, r, s]

The code below computes it with the fast layout of ``window_rows`` (see
tinyai.functions.im2col): every window is one row of a matrix, so the
contraction is a single matrix product rows @ W2 with W2 = W laid out as
(kh, kw, C) by O (computed group by group of images, ``GROUP_BYTES``), and
the result comes out channels last, (N, OH, OW, O).
It is handed on as a transposed view of shape (N, O, OH, OW): no copy, and
the next convolution reads it channels last again.

conv_transpose2d is the adjoint (transpose) of that linear map in its input:
each input pixel spreads a copy of the kernel, scaled by its value, over the
output, and ``col2im`` adds the overlapping copies. It is what a convolution's
input gradient computes, and, used forward, it upsamples (stride > 1 grows the
image).

The two are each other's backward, and the weight gradient of both is one
more Function (``Conv2dGradW``) whose own backward is again written with
conv2d and conv_transpose2d. So every gradient here is built from
differentiable operations, and second derivatives work.

Weight layouts (the usual convention, as in Chainer and PyTorch):

* conv2d:           W has shape (out_channels, in_channels, kh, kw)
* conv_transpose2d: W has shape (in_channels, out_channels, kh, kw)

so a conv2d and the conv_transpose2d that undoes its shapes share one W.
"""
from __future__ import annotations

from typing import Any, Sequence

from tinyai.autograd import Function, Variable
from tinyai.backend import get_array_module
from tinyai.functions.im2col import (Pair, add_blocks, as_pair, blocks_to_image, check_window, conv_output_size,
                                     padded_image_for_blocks, window_rows)
from tinyai.functions.matrix import matmul
from tinyai.functions.reductions import sum as sum_
from tinyai.functions.shape import reshape, transpose


def _check_weights(op: str, x: Any, W: Any, b: Any, in_axis: int, out_axis: int, layout: str) -> None:
    """Shapes of input, weights and bias must agree; the messages say which disagree."""
    if x.ndim != 4:
        raise ValueError(f"{op}: input must be 4-D (N, C, H, W), got shape {tuple(x.shape)}")
    if W.ndim != 4:
        raise ValueError(f"{op}: W must be 4-D {layout}, got shape {tuple(W.shape)}")
    if W.shape[2] < 1 or W.shape[3] < 1:
        raise ValueError(f"{op}: the kernel must be at least 1 x 1, got {W.shape[2]} x {W.shape[3]} "
                         f"(W shape {tuple(W.shape)}); an empty kernel would give all zeros")
    if x.shape[1] != W.shape[in_axis]:
        raise ValueError(f"{op}: input has {x.shape[1]} channels but W expects {W.shape[in_axis]} "
                         f"(W shape {tuple(W.shape)})")
    if b is not None and tuple(b.shape) != (W.shape[out_axis],):
        raise ValueError(f"{op}: bias has shape {tuple(b.shape)}, expected ({W.shape[out_axis]},) "
                         f"for W of shape {tuple(W.shape)}")


#: The convolutions below go through the batch in groups of images whose
#: windows (or, for the input gradient, per-position blocks) take about this
#: many bytes: small enough to stay in the processor's cache between being
#: written and being read by the matrix product, large enough that each
#: product is still a large one for BLAS. A whole batch's windows are written
#: to memory and read back; a group's are read while still in cache.
GROUP_BYTES = 1 << 20


def image_groups(xp: Any, n: int, bytes_per_image: int) -> list[slice]:
    """Consecutive slices of the n images, each of about ``GROUP_BYTES`` (at least one image).

    On CuPy the whole batch is one group: a GPU wants few, large kernels.
    """
    if xp.__name__ == "cupy":
        return [slice(0, n)]
    size = max(1, GROUP_BYTES // max(1, bytes_per_image))
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]


def _add_bias(y: Any, b: Any, width: int) -> None:
    """y += b for y of shape (pixels, O), pixels in rows of ``width``.

    Added row of the image by row, b repeated ``width`` times: NumPy's inner
    loop then runs over width * O values instead of O (16 for a small
    convolution), two to three times faster.
    """
    xp = get_array_module(y)
    y.reshape(-1, width * y.shape[1])[...] += xp.tile(b, width)


def _bias_grad(gy: Any) -> Any:
    """The gradient of a per-channel bias: gy summed over the batch and the image.

    In float32 and float64, as the product of a vector of ones with gy's
    (N OH OW, O) matrix of rows: BLAS adds up the rows about twenty times
    faster than NumPy's sum over three axes (and more accurately). Other
    dtypes (float16) take the sum, which adds up in float32.
    """
    if gy.dtype.kind != "f" or gy.dtype.itemsize < 4:
        return sum_(gy, axis=(0, 2, 3))
    out_channels = gy.shape[1]
    rows = reshape(transpose(gy, (0, 2, 3, 1)), (-1, out_channels))  # a view when gy is channels last
    ones = get_array_module(gy).ones(rows.shape[0], dtype=gy.dtype)
    return matmul(ones, rows)


class ChannelsLast(Function):
    """The identity, with the result laid out in memory channels last: (N, C, H, W) in shape,
    (N, H, W, C) in memory. The products of a convolution read an image as rows of pixels,
    (N H W, C), which is a view of channels-last memory and a copy otherwise."""

    def forward(self, x):
        if x.shape[1] == 1 or x.strides[1] == x.dtype.itemsize:
            return x
        return get_array_module(x).ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)

    def backward(self, gy):
        return gy


class Conv2d(Function):
    """y = conv2d(x, W) + b. x (N, C, H, W), W (O, C, kh, kw), b (O,) -> y (N, O, OH, OW)."""

    def __init__(self, stride: Pair, pad: Pair) -> None:
        self.stride, self.pad = stride, pad

    def forward(self, x, W, b=None):
        _check_weights("conv2d", x, W, b, 1, 0, "(out_channels, in_channels, kh, kw)")
        kernel = (W.shape[2], W.shape[3])
        check_window("conv2d", x.shape, kernel, self.pad)
        xp = get_array_module(x)
        n, in_channels, out_channels = x.shape[0], x.shape[1], W.shape[0]
        oh = conv_output_size(x.shape[2], kernel[0], self.stride[0], self.pad[0])
        ow = conv_output_size(x.shape[3], kernel[1], self.stride[1], self.pad[1])
        kernel_rows = _kernel_matrix(W).T  # (kh kw C, O)
        y = xp.empty((n * oh * ow, out_channels), dtype=xp.result_type(x.dtype, W.dtype))  # (N OH OW, O)
        # The windows of each group of images, kept for the weight gradient
        # (the same values as im2col of x); each group's product and bias
        # go into its own rows of y.
        self.rows = []
        per_image = oh * ow
        for images in image_groups(xp, n, per_image * kernel[0] * kernel[1] * in_channels * x.dtype.itemsize):
            rows = window_rows(x[images], kernel, self.stride, self.pad)  # (n OH OW, kh kw C)
            y_rows = y[images.start * per_image:images.stop * per_image]
            xp.matmul(rows, kernel_rows, out=y_rows)
            if b is not None:
                _add_bias(y_rows, b, ow)
            self.rows.append(rows)
        return y.reshape(n, oh, ow, out_channels).transpose(0, 3, 1, 2)

    def backward(self, gy):
        x, W, *b = self.saved_inputs()
        needs = self.needs_input_grad
        gx = gW = None
        gy = ChannelsLast()(gy)  # all three products read gy's rows: laid out once, not once each
        if needs[0]:
            gx = conv_transpose2d(gy, W, stride=self.stride, pad=self.pad, out_size=x.shape[2:])
        if needs[1]:
            gW = Conv2dGradW((W.shape[2], W.shape[3]), self.stride, self.pad, rows=self.rows)(x, gy)
        if not b:
            return gx, gW
        return gx, gW, _bias_grad(gy) if needs[2] else None


class ConvTranspose2d(Function):
    """y = conv_transpose2d(x, W) + b. x (N, C, H, W), W (C, O, kh, kw), b (O,) -> y (N, O, OH, OW)."""

    def __init__(self, stride: Pair, pad: Pair, out_size: Pair | None) -> None:
        self.stride, self.pad, self.out_size = stride, pad, out_size

    def forward(self, x, W, b=None):
        _check_weights("conv_transpose2d", x, W, b, 0, 1, "(in_channels, out_channels, kh, kw)")
        kernel = (W.shape[2], W.shape[3])
        out_size = _transpose_out_size(x.shape, kernel, self.stride, self.pad, self.out_size)
        xp = get_array_module(x)
        n, in_channels, h, w = x.shape
        out_channels = W.shape[1]
        # Each input pixel's channels times the kernel give that pixel's window
        # of the output; computed as one product per window position (i, j)
        # (a batched matmul), so that each position's values form a contiguous
        # block for the additions of add_blocks.
        pixels = x.transpose(0, 2, 3, 1).reshape(n * h * w, in_channels)
        per_position = W.transpose(2, 3, 0, 1).reshape(kernel[0] * kernel[1], in_channels, out_channels)
        y_shape = (n, out_channels) + out_size
        if xp.__name__ == "cupy":  # the whole batch, and blocks_to_image's gather kernel
            y = blocks_to_image(xp.matmul(pixels, per_position), y_shape, kernel, self.stride, self.pad)
        else:  # group by group, each group's blocks added while still in cache
            img = padded_image_for_blocks(xp, y_shape, kernel, self.stride, self.pad,
                                          xp.result_type(x.dtype, W.dtype))
            per_image = h * w
            for images in image_groups(xp, n, per_image * kernel[0] * kernel[1] * out_channels * x.dtype.itemsize):
                blocks = xp.matmul(pixels[images.start * per_image:images.stop * per_image], per_position)
                add_blocks(img[images], blocks, kernel, self.stride, (h, w))  # (kh kw, n H W, O)
            ph, pw = self.pad
            y = img[:, ph:ph + out_size[0], pw:pw + out_size[1], :].transpose(0, 3, 1, 2)
        if b is not None:
            y += b.reshape(1, -1, 1, 1)
        return y

    def backward(self, gy):
        x, W, *b = self.saved_inputs()
        needs = self.needs_input_grad
        gx = gW = None
        if needs[0]:
            gx = conv2d(gy, W, stride=self.stride, pad=self.pad)
        if needs[1]:
            # The weight gradient of y = conv_transpose2d(x, W) is the weight
            # gradient of the convolution gy -> x that it is the transpose of.
            gW = Conv2dGradW((W.shape[2], W.shape[3]), self.stride, self.pad)(gy, x)
        if not b:
            return gx, gW
        return gx, gW, _bias_grad(gy) if needs[2] else None


class Conv2dGradW(Function):
    """The weight gradient of conv2d: gW[o, c, i, j] = sum_{n, r, s} gy[n, o, r, s] * col(x)[n, c, i, j, r, s].

    Inputs x (N, C, H, W) and gy (N, O, OH, OW); output (O, C, kh, kw). It is
    bilinear in (x, gy), so its backward needs no new kind of operation: the
    part for x is a transposed convolution of gy, the part for gy a
    convolution of x, both with the incoming gradient as the kernel.
    """

    def __init__(self, kernel: Pair, stride: Pair, pad: Pair, rows: list[Any] | None = None) -> None:
        # ``rows``: the forward convolution's window_rows(x), group by group of images.
        self.kernel, self.stride, self.pad, self.rows = kernel, stride, pad, rows

    def forward(self, x, gy):
        xp = get_array_module(x)
        groups = [window_rows(x, self.kernel, self.stride, self.pad)] if self.rows is None else self.rows
        self.rows = None  # used once; the graph should not hold it
        out_channels = gy.shape[1]
        gy_rows = gy.transpose(0, 2, 3, 1).reshape(-1, out_channels)  # (N OH OW, O)
        # (O, kh kw C): one product over every window of a group, added up over the groups.
        gW, start = None, 0
        for rows in groups:
            gy_part = gy_rows[start:start + rows.shape[0]]
            if rows.strides[0] < rows.strides[1]:
                # Few channels: the rows were built column by column (window_rows),
                # and BLAS computes this product twice as fast as its transpose.
                part = (rows.T @ gy_part).T
            else:
                part = gy_part.T @ rows
            gW = part if gW is None else gW + part
            start += rows.shape[0]
        kh, kw = self.kernel
        return xp.ascontiguousarray(gW.reshape(out_channels, kh, kw, x.shape[1]).transpose(0, 3, 1, 2))

    def backward(self, ggW):
        x, gy = self.saved_inputs()
        needs_x, needs_gy = self.needs_input_grad
        gx = ggy = None
        if needs_x:
            gx = conv_transpose2d(gy, ggW, stride=self.stride, pad=self.pad, out_size=x.shape[2:])
        if needs_gy:
            ggy = conv2d(x, ggW, stride=self.stride, pad=self.pad)
        return gx, ggy


def _kernel_matrix(W: Any) -> Any:
    """W (A, B, kh, kw) as the (A, kh kw B) matrix whose columns follow the order of window_rows."""
    out_channels = W.shape[0]
    return W.transpose(0, 2, 3, 1).reshape(out_channels, -1)


def _transpose_out_size(x_shape: Sequence[int], kernel: Pair, stride: Pair, pad: Pair,
                        out_size: Pair | None) -> Pair:
    """The output (height, width) of a transposed convolution, checked against the input.

    With stride s a convolution maps s consecutive input sizes to the same
    output size, so its transpose has a choice: the smallest,
    max(1, s (H - 1) + k - 2p), unless ``out_size`` asks for a larger one, up
    to s (H - 1) + k - 2p + s - 1.
    """
    if len(x_shape) != 4:
        raise ValueError(f"conv_transpose2d: input must be 4-D (N, C, H, W), got shape {tuple(x_shape)}")
    sizes = []
    for axis, (h, k, s, p) in enumerate(zip(x_shape[2:], kernel, stride, pad)):
        largest = s * (h - 1) + k - 2 * p + s - 1
        # With heavy padding the formula can give 0 while larger sizes still fit.
        smallest = max(1, s * (h - 1) + k - 2 * p)
        if smallest > largest:
            raise ValueError(f"conv_transpose2d: input shape {tuple(x_shape)} with kernel {kernel}, stride {stride} "
                             f"and pad {pad} gives an empty output along axis {axis + 2}")
        if out_size is None:
            sizes.append(smallest)
            continue
        wanted = out_size[axis]
        if conv_output_size(wanted, k, s, p) != h or wanted < k - 2 * p:
            raise ValueError(f"conv_transpose2d: out_size {tuple(out_size)} cannot come from input shape "
                             f"{tuple(x_shape)} with kernel {kernel}, stride {stride} and pad {pad}: along axis "
                             f"{axis + 2} the size must be between {smallest} and {largest}")
        sizes.append(wanted)
    return (sizes[0], sizes[1])


def conv2d(x: Any, W: Any, b: Any = None, stride: int | Pair = 1, pad: int | Pair = 0) -> Variable:
    """2-D convolution (cross-correlation, as in every deep-learning framework).

    y[n, o, r, s] = b[o] + sum_{c, i, j} W[o, c, i, j] * xpad[n, c, r*sh + i, s*sw + j]

    Args:
        x: input of shape (N, C, H, W).
        W: kernel of shape (out_channels, in_channels, kh, kw).
        b: optional bias of shape (out_channels,).
        stride, pad: an int or a (height, width) pair; pad adds zeros on
            both sides.

    Returns (N, out_channels, OH, OW) with OH = (H + 2 ph - kh) // sh + 1.

    >>> import numpy as np
    >>> conv2d(np.ones((2, 3, 5, 5)), np.ones((4, 3, 3, 3)), pad=1).shape
    (2, 4, 5, 5)
    """
    stride = as_pair(stride, "conv2d", "stride", 1)
    pad = as_pair(pad, "conv2d", "pad", 0)
    function = Conv2d(stride, pad)
    return function(x, W) if b is None else function(x, W, b)


def conv_transpose2d(x: Any, W: Any, b: Any = None, stride: int | Pair = 1, pad: int | Pair = 0,
                     out_size: int | Pair | None = None) -> Variable:
    """Transposed convolution ("deconvolution"): the adjoint of conv2d in its input.

    y = b + conv2d^T(x): every input pixel x[n, c, r, s] adds x[n, c, r, s] * W[c, :, :, :]
    into the output window at (r*sh - ph, s*sw - pw); overlapping windows add.

    Args:
        x: input of shape (N, in_channels, H, W).
        W: kernel of shape (in_channels, out_channels, kh, kw) — note the
            order: the conv2d whose transpose this is maps out_channels to
            in_channels with the same array.
        b: optional bias of shape (out_channels,).
        stride, pad: as for the matching conv2d (pad is removed from the
            output's border).
        out_size: (OH, OW); defaults to the smallest, sh (H - 1) + kh - 2 ph
            (at least 1). With stride > 1 up to sh - 1 more rows fit (conv2d
            floors, so several input sizes give the same output size).

    Returns (N, out_channels, OH, OW).

    >>> import numpy as np
    >>> conv_transpose2d(np.ones((1, 4, 3, 3)), np.ones((4, 2, 4, 4)), stride=2, pad=1).shape
    (1, 2, 6, 6)
    """
    stride = as_pair(stride, "conv_transpose2d", "stride", 1)
    pad = as_pair(pad, "conv_transpose2d", "pad", 0)
    size = None if out_size is None else as_pair(tuple(out_size) if not isinstance(out_size, int) else out_size,
                                                 "conv_transpose2d", "out_size", 1)
    function = ConvTranspose2d(stride, pad, size)
    return function(x, W) if b is None else function(x, W, b)
