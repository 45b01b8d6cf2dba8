"""im2col and col2im: turning sliding windows into a plain array, and back.

A convolution or a pooling looks at one small window of the image at a time.
``im2col`` ("image to columns") copies every window out into its own slot of
an array of shape (N, C, kh, kw, OH, OW): ``col[n, c, i, j, y, x]`` is the
pixel at row ``y*sh + i - ph`` and column ``x*sw + j - pw`` of channel ``c``,
the (i, j) element of the window that produces output pixel (y, x). Once the
windows are laid out like that, a convolution is one tensor contraction with
the kernel and a pooling is one reduction over the (kh, kw) axes: the sliding
becomes ordinary array arithmetic that NumPy and CuPy run fast.

``col2im`` goes the other way and is im2col's adjoint (its transpose as a
linear map), which is why each is the other's backward. When windows overlap
(stride smaller than the kernel) one input pixel is copied into several
slots of ``col``; the gradient flowing back from all those slots must be
*added* into that pixel, so col2im accumulates with ``+=`` rather than
assigning. Padding pixels are dropped on the way back: they are constants,
not inputs.

Sizes along one axis: with input size H, kernel k, stride s and padding p,
the output has OH = (H + 2p - k) // s + 1 windows.
"""
from __future__ import annotations

import numbers
from typing import Any, Sequence

from tinyai.autograd import Function, Variable
from tinyai.backend import get_array_module
from tinyai.functions.fused import blocks_to_image_gather

Pair = tuple[int, int]


def as_pair(value: Any, op: str, what: str, minimum: int) -> Pair:
    """``value`` (an int or a pair of ints, each >= ``minimum``) as a (height, width) pair."""
    if isinstance(value, (tuple, list)):
        pair = tuple(value)
    else:
        pair = (value, value)
    # numbers.Integral admits NumPy integers (sizes computed from shapes), not bool.
    ok = len(pair) == 2 and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in pair)
    if not ok or any(v < minimum for v in pair):
        bound = "a positive int" if minimum == 1 else "a non-negative int"
        raise ValueError(f"{op}: {what} must be {bound} or a pair of them, got {value!r}")
    return (int(pair[0]), int(pair[1]))


def conv_output_size(size: int, kernel: int, stride: int, pad: int) -> int:
    """Number of window positions along one axis: (size + 2 pad - kernel) // stride + 1."""
    return (size + 2 * pad - kernel) // stride + 1


def check_window(op: str, shape: Sequence[int], kernel: Pair, pad: Pair) -> None:
    """Raise a ValueError when the kernel does not fit in the padded (N, C, H, W) input."""
    if len(shape) != 4:
        raise ValueError(f"{op}: input must be 4-D (N, C, H, W), got shape {tuple(shape)}")
    height, width = shape[2] + 2 * pad[0], shape[3] + 2 * pad[1]
    if kernel[0] > height or kernel[1] > width:
        raise ValueError(f"{op}: kernel {kernel[0]}x{kernel[1]} is larger than the padded input "
                         f"{height}x{width} (input shape {tuple(shape)}, pad {pad})")


# -- the raw array versions ------------------------------------------------------------
def im2col_array(img: Any, kernel: Pair, stride: Pair, pad: Pair, fill: float = 0.0) -> Any:
    """Windows of the (N, C, H, W) array ``img`` as an (N, C, kh, kw, OH, OW) array.

    ``fill`` is the value of the padding pixels (0 for convolutions and average
    pooling, -inf for max pooling, so padding never wins a max).
    """
    xp = get_array_module(img)
    n, c, h, w = img.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    oh, ow = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
    if ph or pw:
        img = xp.pad(img, ((0, 0), (0, 0), (ph, ph), (pw, pw)), mode="constant", constant_values=fill)
    col = xp.empty((n, c, kh, kw, oh, ow), dtype=img.dtype)
    # One strided slice per kernel offset: kh * kw array copies instead of a
    # Python loop over the N * OH * OW windows.
    for i in range(kh):
        for j in range(kw):
            col[:, :, i, j, :, :] = img[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw]
    return col


def col2im_array(col: Any, img_shape: Sequence[int], kernel: Pair, stride: Pair, pad: Pair) -> Any:
    """Add the (N, C, kh, kw, OH, OW) windows back into an (N, C, H, W) array.

    Each pixel receives the sum over every window slot that copied it (see the
    module docstring); padding positions are discarded.
    """
    xp = get_array_module(col)
    n, c, h, w = img_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    oh, ow = col.shape[4], col.shape[5]
    # stride - 1 spare rows/columns let every strided slice below have exactly
    # oh (ow) elements even when the last window stops short of the edge.
    img = xp.zeros((n, c, h + 2 * ph + sh - 1, w + 2 * pw + sw - 1), dtype=col.dtype)
    for i in range(kh):
        for j in range(kw):
            img[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw] += col[:, :, i, j, :, :]
    return img[:, :, ph:ph + h, pw:pw + w]


# -- the fast versions, which conv2d uses ----------------------------------------------------
# The plain im2col above is the one to read first; these compute the same
# windows, laid out for speed (docs/convolution.md measures the difference):
#
# * channels last. A window's values are ordered (i, j, c), so the channels of
#   one pixel, which lie together in channels-last memory, are copied as one
#   run; and every window is one row, so the whole convolution is a single
#   large matrix product (rows @ W) instead of a tensordot that first copies
#   its operands into matrix shape;
# * one copy. The windows are a strided *view* of the padded image (no data
#   moves), and a single ``ascontiguousarray`` writes the rows;
# * col2im as kh * kw strided slice additions into the padded image, each a
#   plain array operation (no index scatter), and each adding a contiguous
#   block: the values of window element (i, j) for every window.
def window_rows(img: Any, kernel: Pair, stride: Pair, pad: Pair) -> Any:
    """The windows of the (N, C, H, W) array ``img`` as rows: an (N * OH * OW, kh * kw * C) array.

    Row ``(n * OH + y) * OW + x`` holds the window of output pixel (y, x) of
    image n, in the order (i, j, c): ``rows[r, (i * kw + j) * C + c]`` equals
    ``im2col_array(img, ...)[n, c, i, j, y, x]``.
    """
    xp = get_array_module(img)
    n, c, h, w = img.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    oh, ow = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
    if c < 4:
        return _window_columns(img, kernel, stride, pad, (oh, ow)).T
    # The padded image, channels last: (N, H + 2ph, W + 2pw, C).
    padded = xp.empty((n, h + 2 * ph, w + 2 * pw, c), dtype=img.dtype)
    if ph or pw:
        padded[:, :ph] = 0
        padded[:, h + ph:] = 0
        padded[:, :, :pw] = 0
        padded[:, :, w + pw:] = 0
    padded[:, ph:ph + h, pw:pw + w, :] = img.transpose(0, 2, 3, 1)
    # View (N, OH, OW, kh, kw, C): window (y, x) starts at row y*sh, column x*sw.
    s_n, s_h, s_w, s_c = padded.strides
    windows = xp.lib.stride_tricks.as_strided(
        padded, (n, oh, ow, kh, kw, c), (s_n, s_h * sh, s_w * sw, s_h, s_w, s_c))
    return xp.ascontiguousarray(windows).reshape(n * oh * ow, kh * kw * c)


def _window_columns(img: Any, kernel: Pair, stride: Pair, pad: Pair, out_size: tuple[int, int]) -> Any:
    """window_rows transposed, (kh * kw * C, N * OH * OW), for images of few channels.

    With one or two channels a row of window_rows is a handful of scattered
    values; built the other way round, each copied run is a row of output
    pixels, contiguous in the image. Transposed back it is the same matrix
    (in Fortran order), which a matrix product takes as it is.
    """
    xp = get_array_module(img)
    n, c, h, w = img.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    oh, ow = out_size
    padded = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=img.dtype) if ph or pw else img
    if ph or pw:
        padded[:, :, ph:ph + h, pw:pw + w] = img
    s_n, s_c, s_h, s_w = padded.strides
    windows = xp.lib.stride_tricks.as_strided(
        padded, (kh, kw, c, n, oh, ow), (s_h, s_w, s_c, s_n, s_h * sh, s_w * sw))
    return xp.ascontiguousarray(windows).reshape(kh * kw * c, n * oh * ow)


def blocks_to_image(blocks: Any, img_shape: Sequence[int], kernel: Pair, stride: Pair, pad: Pair) -> Any:
    """The adjoint of ``window_rows``, from the windows' values grouped by window position.

    ``blocks`` has shape (kh * kw, N * OH * OW, C): ``blocks[i * kw + j]``
    holds element (i, j) of every window, which is what ``window_rows`` put
    in columns (i * kw + j) * C ... + C. Each block is added into the strided
    slice of the padded image it came from, a contiguous array into a slice
    (overlapping windows accumulate). Returns an array of shape
    ``img_shape`` (N, C, H, W) whose memory is channels last (a transposed
    view), padding discarded.
    """
    xp = get_array_module(blocks)
    if xp.__name__ == "cupy":  # one gather kernel instead of kh * kw additions
        return blocks_to_image_gather(blocks, img_shape, kernel, stride, pad)
    n, c, h, w = img_shape
    img = padded_image_for_blocks(xp, img_shape, kernel, stride, pad, blocks.dtype)
    add_blocks(img, blocks, kernel, stride, (conv_output_size(h, kernel[0], stride[0], pad[0]),
                                             conv_output_size(w, kernel[1], stride[1], pad[1])))
    return img[:, pad[0]:pad[0] + h, pad[1]:pad[1] + w, :].transpose(0, 3, 1, 2)


def padded_image_for_blocks(xp: Any, img_shape: Sequence[int], kernel: Pair, stride: Pair, pad: Pair,
                            dtype: Any) -> Any:
    """The zero canvas ``add_blocks`` adds into: the (N, C, H, W) image padded, channels last,
    with stride - 1 spare rows and columns so that every window slice is exactly OH (OW) long."""
    n, c, h, w = img_shape
    (sh, sw), (ph, pw) = stride, pad
    return xp.zeros((n, h + 2 * ph + sh - 1, w + 2 * pw + sw - 1, c), dtype=dtype)


def add_blocks(img: Any, blocks: Any, kernel: Pair, stride: Pair, out_size: Pair) -> None:
    """Add ``blocks`` (kh * kw, n * OH * OW, C) into the padded channels-last ``img`` (n, ., ., C):
    block (i, j) into the strided slice of window element (i, j), one array addition each."""
    (kh, kw), (sh, sw), (oh, ow) = kernel, stride, out_size
    n, c = img.shape[0], img.shape[3]
    for i in range(kh):
        for j in range(kw):
            img[:, i:i + sh * oh:sh, j:j + sw * ow:sw, :] += blocks[i * kw + j].reshape(n, oh, ow, c)


# -- the differentiable versions -----------------------------------------------------
class Im2col(Function):
    def __init__(self, kernel: Pair, stride: Pair, pad: Pair) -> None:
        self.kernel, self.stride, self.pad = kernel, stride, pad

    def forward(self, x):
        check_window("im2col", x.shape, self.kernel, self.pad)
        return im2col_array(x, self.kernel, self.stride, self.pad)

    def backward(self, gcol):
        x, = self.saved_inputs()
        return Col2im(x.shape, self.kernel, self.stride, self.pad)(gcol)


class Col2im(Function):
    def __init__(self, img_shape: tuple[int, ...], kernel: Pair, stride: Pair, pad: Pair) -> None:
        self.img_shape, self.kernel, self.stride, self.pad = tuple(img_shape), kernel, stride, pad

    def forward(self, col):
        n, c, h, w = self.img_shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.pad
        expected = (n, c, kh, kw, conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw))
        if tuple(col.shape) != expected:
            raise ValueError(f"col2im: col has shape {tuple(col.shape)}, but image shape {self.img_shape} "
                             f"with kernel {self.kernel}, stride {self.stride}, pad {self.pad} needs {expected}")
        return col2im_array(col, self.img_shape, self.kernel, self.stride, self.pad)

    def backward(self, gy):
        return Im2col(self.kernel, self.stride, self.pad)(gy)


def im2col(x: Any, kernel_size: int | Pair, stride: int | Pair = 1, pad: int | Pair = 0) -> Variable:
    """The sliding windows of x (N, C, H, W) as a Variable of shape (N, C, kh, kw, OH, OW).

    Differentiable; its backward is ``col2im`` (overlapping windows add up).

    >>> import numpy as np
    >>> im2col(np.arange(16.0).reshape(1, 1, 4, 4), 3).shape
    (1, 1, 3, 3, 2, 2)
    """
    kernel = as_pair(kernel_size, "im2col", "kernel_size", 1)
    return Im2col(kernel, as_pair(stride, "im2col", "stride", 1), as_pair(pad, "im2col", "pad", 0))(x)


def col2im(col: Any, img_shape: Sequence[int], kernel_size: int | Pair, stride: int | Pair = 1,
           pad: int | Pair = 0) -> Variable:
    """Sum windows (N, C, kh, kw, OH, OW) back into an image of ``img_shape`` (N, C, H, W).

    The adjoint of ``im2col``: a pixel covered by several windows receives the
    sum of their entries, which is exactly the gradient rule for a value that
    was copied to several places.
    """
    kernel = as_pair(kernel_size, "col2im", "kernel_size", 1)
    return Col2im(tuple(img_shape), kernel, as_pair(stride, "col2im", "stride", 1),
                  as_pair(pad, "col2im", "pad", 0))(col)
