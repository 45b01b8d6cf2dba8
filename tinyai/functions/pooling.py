"""Max and average pooling over 2-D windows.

Pooling looks at one kh x kw window per output pixel. With ``im2col`` every
window gets its own (kh, kw) axes and pooling is a reduction over them
(docs/convolution.md shows that version). The code below works with the
same windows grouped by window position: window element (i, j) of every
output pixel is one strided slice of the (padded) image,

    x[:, :, i : i + sh*OH : sh, j : j + sw*OW : sw]      (shape (N, C, OH, OW)),

so the windows are kh * kw output-sized blocks. Max pooling copies them out
once (``_window_blocks``) and reduces over the blocks; average pooling adds
the slices as they are. A backward pass puts kh * kw output-sized blocks
back into those same slices (the col2im of the slices, ``_image_from_blocks``:
where windows overlap, the additions accumulate).

* max pooling: all of each output gradient goes to its window's largest
  element (on a tie, the first in row-major order); forward keeps, per
  window position (i, j), a boolean mask of the windows that (i, j) won
  (one (kh * kw, N, C, OH, OW) array);
* average pooling: an equal share 1 / (kh kw) to every element, padding
  included (as PyTorch's default ``count_include_pad=True``).

Both backward passes are Functions whose own backward is the forward pooling
again (restricted to the remembered winners for max pooling), so second
derivatives work.
"""
from __future__ import annotations

from typing import Any

from tinyai.autograd import Function, Variable
from tinyai.backend import get_array_module
from tinyai.functions import fused
from tinyai.functions.im2col import Pair, as_pair, check_window, conv_output_size


def _geometry(op: str, kernel_size: Any, stride: Any, pad: Any) -> tuple[Pair, Pair, Pair]:
    kernel = as_pair(kernel_size, op, "kernel_size", 1)
    stride = kernel if stride is None else as_pair(stride, op, "stride", 1)
    pad = as_pair(pad, op, "pad", 0)
    if pad[0] >= kernel[0] or pad[1] >= kernel[1]:
        # A window lying entirely in the padding would pool nothing but padding.
        raise ValueError(f"{op}: pad {pad} must be smaller than kernel_size {kernel}")
    return kernel, stride, pad


def _output_size(shape: Any, kernel: Pair, stride: Pair, pad: Pair) -> tuple[int, int]:
    return (conv_output_size(shape[2], kernel[0], stride[0], pad[0]),
            conv_output_size(shape[3], kernel[1], stride[1], pad[1]))


def _padded(x: Any, pad: Pair, fill: float) -> Any:
    """x with ``fill`` around its height and width (x itself when pad is 0)."""
    ph, pw = pad
    if not (ph or pw):
        return x
    n, c, h, w = x.shape
    out = _new_image((n, c, h + 2 * ph, w + 2 * pw), x, _channels_last(x), fill=False)  # x's layout
    out[...] = fill
    out[:, :, ph:ph + h, pw:pw + w] = x
    return out


def _window_slices(kernel: Pair, stride: Pair, out_size: tuple[int, int]):
    """(i, j, index) for every window position: ``padded[index]`` is element (i, j) of all windows."""
    (kh, kw), (sh, sw), (oh, ow) = kernel, stride, out_size
    for i in range(kh):
        for j in range(kw):
            yield i, j, (slice(None), slice(None), slice(i, i + sh * oh, sh), slice(j, j + sw * ow, sw))


def _window_view(image: Any, kernel: Pair, stride: Pair, out_size: tuple[int, int]) -> Any:
    """Element (i, j) of every window of the (N, C, H, W) ``image``: a (kh, kw, N, C, OH, OW) view, no copy.

    ``view[i, j]`` is the strided slice ``image[:, :, i::sh, j::sw]`` cut to
    OH x OW; with the stride equal to the kernel, each pixel is in one window.
    """
    xp = get_array_module(image)
    (kh, kw), (sh, sw), (oh, ow) = kernel, stride, out_size
    n, c = image.shape[:2]
    s_n, s_c, s_h, s_w = image.strides
    return xp.lib.stride_tricks.as_strided(image, (kh, kw, n, c, oh, ow), (s_h, s_w, s_n, s_c, s_h * sh, s_w * sw))


def _copy_pixels(dst: Any, src: Any) -> None:
    """``dst[...] = src`` for two (..., C, H, W) arrays of one dtype, whole pixels at a time where they can be.

    With the channels last, a pixel's C values lie together, but a window
    slice jumps from pixel to pixel, and NumPy's copy pays for each run of C
    values it visits (16 in a small CNN): copied as single elements of
    C * itemsize opaque bytes, the same pixels go across about twice as fast.
    """
    xp = get_array_module(dst)
    c, size = dst.shape[-3], dst.dtype.itemsize
    if xp.__name__ == "numpy" and c > 1 and dst.strides[-3] == size and src.strides[-3] == size:
        pixel = xp.dtype((xp.void, c * size))
        dst, src = (xp.moveaxis(a, -3, -1).view(pixel)[..., 0] for a in (dst, src))
    dst[...] = src


def _window_blocks(padded: Any, kernel: Pair, stride: Pair, out_size: tuple[int, int], channels_last: bool) -> Any:
    """Element (i, j) of every window as block i * kw + j: a (kh * kw, N, C, OH, OW) copy.

    The windows of im2col, grouped by window position, each block laid out
    like the image (channels last or first): one strided pass over the image,
    after which the maximum, the comparisons and the winner masks run over
    contiguous blocks instead of strided slices, several times faster each.
    """
    xp = get_array_module(padded)
    (kh, kw), (oh, ow) = kernel, out_size
    n, c = padded.shape[:2]
    if channels_last:
        blocks = xp.empty((kh, kw, n, oh, ow, c), dtype=padded.dtype).transpose(0, 1, 2, 5, 3, 4)
    else:
        blocks = xp.empty((kh, kw, n, c, oh, ow), dtype=padded.dtype)
    _copy_pixels(blocks, _window_view(padded, kernel, stride, out_size))
    return blocks.reshape((kh * kw, n, c, oh, ow))


def _image_from_blocks(blocks: Any, pool: Any) -> Any:
    """Add the (kh * kw, N, C, OH, OW) ``blocks`` back into the windows they came from: the
    col2im of pooling. Returns an image shaped and laid out like the pooling's input."""
    n, c, h, w = pool.in_shape
    (kh, kw), (sh, sw), (ph, pw) = pool.kernel, pool.stride, pool.pad
    out_size = _output_size(pool.in_shape, pool.kernel, pool.stride, pool.pad)
    if (sh, sw) == (kh, kw) and not (ph or pw) and h % kh == 0 and w % kw == 0:
        # The windows tile the image exactly: every pixel receives one value,
        # so the blocks are copied into an uninitialised image, no zeros, no additions.
        gx = _new_image((n, c, h, w), blocks, pool.channels_last, fill=False)
        _copy_pixels(_window_view(gx, pool.kernel, pool.stride, out_size), blocks.reshape((kh, kw) + blocks.shape[1:]))
        return gx
    # stride - 1 spare rows/columns keep every slice exactly OH (OW) long.
    gx = _new_image((n, c, h + 2 * ph + sh - 1, w + 2 * pw + sw - 1), blocks, pool.channels_last, fill=True)
    for k, (_, _, index) in enumerate(_window_slices(pool.kernel, pool.stride, out_size)):
        gx[index] += blocks[k]
    return gx[:, :, ph:ph + h, pw:pw + w]


def _channels_last(x: Any) -> bool:
    """Whether the (N, C, H, W) array x lies in memory channels last (as conv2d's outputs do)."""
    return x.shape[1] > 1 and x.strides[1] < x.strides[3]


def _new_image(shape: tuple[int, ...], like: Any, channels_last: bool, fill: bool) -> Any:
    """A new (N, C, H, W) array, zeros or uninitialised, laid out channels last or
    first: elementwise work between arrays of one layout runs over contiguous memory."""
    xp = get_array_module(like)
    make = xp.zeros if fill else xp.empty
    if not channels_last:
        return make(shape, dtype=like.dtype)
    n, c, h, w = shape
    return make((n, h, w, c), dtype=like.dtype).transpose(0, 3, 1, 2)


def _in_layout(x: Any, channels_last: bool) -> Any:
    """``x`` (N, C, H, W), or a copy of it laid out channels last or first as asked.

    A pooling's gradient may arrive in another layout than its input (after a
    reshape from a linear layer, channels first); an elementwise product of
    arrays of two layouts crawls through memory, several times slower than
    one copy and products over matching layouts.
    """
    if x.shape[1] == 1 or _channels_last(x) == channels_last:
        return x
    xp = get_array_module(x)
    if channels_last:
        return xp.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    return xp.ascontiguousarray(x)


# -- max pooling --------------------------------------------------------------------------
class MaxPool2d(Function):
    def __init__(self, kernel: Pair, stride: Pair, pad: Pair) -> None:
        self.kernel, self.stride, self.pad = kernel, stride, pad

    def forward(self, x):
        check_window("max_pool2d", x.shape, self.kernel, self.pad)
        if x.dtype.kind != "f":
            raise TypeError(f"max_pool2d: input must be floating point, got dtype {x.dtype}")
        xp = get_array_module(x)
        self.in_shape, self.channels_last = x.shape, _channels_last(x)
        out_size = _output_size(x.shape, self.kernel, self.stride, self.pad)
        #: On CuPy: the flat window position of each maximum, from one fused kernel
        #: (tinyai.functions.fused); None when the winner masks below are used.
        self.winner = None
        if xp.__name__ == "cupy":
            y, self.winner = fused.max_pool_forward(x, out_size, self.kernel, self.stride, self.pad)
            return y
        padded = _padded(x, self.pad, -float("inf"))  # -inf padding never wins a max
        windows = _window_blocks(padded, self.kernel, self.stride, out_size, self.channels_last)
        y = windows.max(axis=0)
        # Which window position won, per window: the first that equals the maximum.
        won = windows == y
        open_windows = ~won[0]
        for hit in won[1:]:
            hit &= open_windows
            open_windows &= ~hit
        #: (kh * kw, N, C, OH, OW) booleans: won[i * kw + j] marks the windows whose maximum is their element (i, j).
        self.won = won
        return y

    def backward(self, gy):
        return MaxPool2dGrad(self)(gy)


class MaxPool2dGrad(Function):
    """Route each output gradient to its window's winner and add them up.

    Linear in gy; its backward picks the values at the same winning positions
    (``MaxPool2dGather``).
    """

    def __init__(self, pool: MaxPool2d) -> None:
        self.pool = pool

    def forward(self, gy):
        pool = self.pool
        if pool.winner is not None:  # CuPy: each input pixel gathers the gradients of the windows it won
            return fused.max_pool_backward(gy, pool.winner, pool.in_shape, pool.kernel, pool.stride, pool.pad)
        gy = _in_layout(gy, pool.channels_last)  # the layout of the masks and of gx
        # Block (i, j): gy where element (i, j) won the window, else 0; one product for all blocks.
        return _image_from_blocks(get_array_module(gy).multiply(gy, pool.won, dtype=gy.dtype), pool)

    def backward(self, ggx):
        return MaxPool2dGather(self.pool)(ggx)


class MaxPool2dGather(Function):
    """y[n, c, r, s] = x at the position that won window (r, s) of a max pooling (no new max is taken)."""

    def __init__(self, pool: MaxPool2d) -> None:
        self.pool = pool

    def forward(self, x):
        pool = self.pool
        if pool.winner is not None:
            return fused.max_pool_gather(x, pool.winner, pool.kernel, pool.stride, pool.pad)
        out_size = _output_size(x.shape, pool.kernel, pool.stride, pool.pad)
        windows = _window_blocks(_padded(x, pool.pad, 0.0), pool.kernel, pool.stride, out_size, _channels_last(x))
        return (windows * pool.won).sum(axis=0)

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
        self.in_shape, self.channels_last = x.shape, _channels_last(x)
        padded = _padded(x, self.pad, 0.0)
        out_size = _output_size(x.shape, self.kernel, self.stride, self.pad)
        slices = list(_window_slices(self.kernel, self.stride, out_size))
        y = padded[slices[0][2]].copy(order="K")
        for _, _, index in slices[1:]:
            y += padded[index]
        y *= 1.0 / (self.kernel[0] * self.kernel[1])
        return y

    def backward(self, gy):
        return AvgPool2dGrad(self)(gy)


class AvgPool2dGrad(Function):
    """Spread gy / (kh kw) over each window and add overlaps. Its adjoint is avg_pool2d."""

    def __init__(self, pool: AvgPool2d) -> None:
        self.pool = pool

    def forward(self, gy):
        xp = get_array_module(gy)
        kh, kw = self.pool.kernel
        share = gy.dtype.type(1.0 / (kh * kw))
        gy = _in_layout(gy, self.pool.channels_last)  # the layout of gx
        # Every window element gets the same share: kh * kw blocks that are one array.
        return _image_from_blocks(xp.broadcast_to(gy * share, (kh * kw,) + gy.shape), self.pool)

    def backward(self, ggx):
        pool = self.pool
        return AvgPool2d(pool.kernel, pool.stride, pool.pad)(ggx)


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
