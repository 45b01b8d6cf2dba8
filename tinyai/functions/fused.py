"""Fused device kernels for the hot paths of the functions, each with its array reference.

On a GPU every array operation is a kernel launch and a pass over memory.
Where a formula chains several of them over the same large array, one
hand-written elementwise kernel reads each element once instead, and no
temporaries are allocated. As in ``tinyai.optim.kernels``, every kernel has a
reference written with ordinary array operations: it is what runs on NumPy
(and the CPU stand-in), and it is what the kernel is tested against on a GPU.
"""
from __future__ import annotations

import functools
from typing import Any

from tinyai.backend import get_array_module


@functools.lru_cache(maxsize=None)
def _kernel(name: str, params_in: str, params_out: str, body: str) -> Any:
    import cupy  # noqa: PLC0415 - only reached with CuPy arrays in hand

    return cupy.ElementwiseKernel(params_in, params_out, body, f"tinyai_{name}")


def softmax_cross_entropy_grad_reference(x: Any, labels: Any, lse: Any, scale: Any) -> Any:
    """(softmax(x) - onehot(labels)) * scale, as three array passes.

    Args:
        x: logits (..., C).
        labels: integer class indices of shape x.shape[:-1].
        lse: log-sum-exp of each row of x, flat: shape (x.size // C,).
        scale: the upstream gradient divided by the number of rows (a number or 0-d array).
    """
    xp = get_array_module(x)
    n_classes = x.shape[-1]
    gx = xp.exp(x.reshape(-1, n_classes) - lse.reshape(-1, 1))     # softmax, from the saved log-sum-exp
    gx[xp.arange(gx.shape[0]), labels.reshape(-1)] -= 1
    gx *= scale
    return gx.reshape(x.shape)


def softmax_cross_entropy_grad(x: Any, labels: Any, lse: Any, scale: Any) -> Any:
    """The gradient of softmax cross-entropy (see the reference), one fused kernel on CuPy."""
    xp = get_array_module(x)
    if xp.__name__ != "cupy":
        return softmax_cross_entropy_grad_reference(x, labels, lse, scale)
    n_classes = x.shape[-1]
    kernel = _kernel("softmax_cross_entropy_grad", "T x, T lse, S label, int64 column, T scale", "T gx",
                     "gx = (exp(x - lse) - (label == column ? 1 : 0)) * scale")
    rows = x.reshape(-1, n_classes)
    gx = kernel(rows, lse.reshape(-1, 1), labels.reshape(-1, 1), xp.arange(n_classes, dtype=xp.int64),
                xp.asarray(scale, dtype=x.dtype))
    return gx.reshape(x.shape)


# -- max pooling ------------------------------------------------------------------------------
# Raw arguments (``raw T x``) are read as flat C-order memory, so they are made
# contiguous before the call (a no-op for arrays that already are).
# One thread per output pixel scans its window once (value and position of the
# maximum); the backward passes gather instead of scatter: one thread per
# input pixel adds the gradients of the windows it won, so no atomics are
# needed and the result does not depend on thread order. Ties go to the first
# element in row-major order, as in the array version (tinyai.functions.pooling).
_GEOMETRY = "int32 h, int32 w, int32 oh, int32 ow, int32 kh, int32 kw, int32 sh, int32 sw, int32 ph, int32 pw"


def _geometry_args(in_shape: Any, out_hw: Any, kernel: Any, stride: Any, pad: Any) -> tuple[int, ...]:
    return (in_shape[2], in_shape[3], out_hw[0], out_hw[1], *kernel, *stride, *pad)


def max_pool_forward(x: Any, out_hw: Any, kernel: Any, stride: Any, pad: Any) -> tuple[Any, Any]:
    """(y, winner) of max pooling x (N, C, H, W) on CuPy: y (N, C, OH, OW) and the flat
    position a * kw + b of each window's maximum (int32, same shape). Padding never wins."""
    import cupy  # noqa: PLC0415 - CuPy only

    n, c = x.shape[:2]
    y = cupy.empty((n, c, *out_hw), dtype=x.dtype)
    winner = cupy.empty((n, c, *out_hw), dtype=cupy.int32)
    kernel_fn = _kernel(
        "max_pool_forward", f"raw T x, {_GEOMETRY}", "T y, int32 winner",
        """
        int ox = i % ow; int oy = (i / ow) % oh; long long plane = i / ((long long)ow * oh);
        T best = (T)0; int best_at = -1;
        for (int a = 0; a < kh; ++a) {
            int yy = oy * sh + a - ph;
            if (yy < 0 || yy >= h) continue;
            for (int b = 0; b < kw; ++b) {
                int xx = ox * sw + b - pw;
                if (xx < 0 || xx >= w) continue;
                T v = x[(plane * h + yy) * w + xx];
                if (best_at < 0 || v > best) { best = v; best_at = a * kw + b; }
            }
        }
        y = best; winner = best_at;
        """)
    kernel_fn(cupy.ascontiguousarray(x), *_geometry_args(x.shape, out_hw, kernel, stride, pad), y, winner)
    return y, winner


def max_pool_backward(gy: Any, winner: Any, in_shape: Any, kernel: Any, stride: Any, pad: Any) -> Any:
    """gx (N, C, H, W): each input pixel gathers gy of the windows whose maximum it was."""
    import cupy  # noqa: PLC0415 - CuPy only

    gx = cupy.empty(tuple(in_shape), dtype=gy.dtype)
    kernel_fn = _kernel(
        "max_pool_backward", f"raw T gy, raw int32 winner, {_GEOMETRY}", "T gx",
        """
        int xx = i % w; int yy = (i / w) % h; long long plane = i / ((long long)w * h);
        T total = (T)0;
        for (int a = 0; a < kh; ++a) {
            int ty = yy + ph - a;
            if (ty < 0 || ty % sh != 0 || ty / sh >= oh) continue;
            for (int b = 0; b < kw; ++b) {
                int tx = xx + pw - b;
                if (tx < 0 || tx % sw != 0 || tx / sw >= ow) continue;
                long long at = (plane * oh + ty / sh) * ow + tx / sw;
                if (winner[at] == a * kw + b) total += gy[at];
            }
        }
        gx = total;
        """)
    kernel_fn(cupy.ascontiguousarray(gy), cupy.ascontiguousarray(winner),
              *_geometry_args(in_shape, gy.shape[2:], kernel, stride, pad), gx)
    return gx


def max_pool_gather(gx: Any, winner: Any, kernel: Any, stride: Any, pad: Any) -> Any:
    """(N, C, OH, OW): each window's value of ``gx`` at its maximum (the backward of max_pool_backward)."""
    import cupy  # noqa: PLC0415 - CuPy only

    out = cupy.empty(winner.shape, dtype=gx.dtype)
    kernel_fn = _kernel(
        "max_pool_gather", f"raw T gx, int32 winner, {_GEOMETRY}", "T out",
        """
        int ox = i % ow; int oy = (i / ow) % oh; long long plane = i / ((long long)ow * oh);
        int a = winner / kw; int b = winner % kw;
        out = gx[(plane * h + oy * sh + a - ph) * w + ox * sw + b - pw];
        """)
    kernel_fn(cupy.ascontiguousarray(gx), winner, *_geometry_args(gx.shape, winner.shape[2:], kernel, stride, pad),
              out)
    return out


# -- col2im ------------------------------------------------------------------------------------
def col2im_gather(col: Any, img_shape: Any, kernel: Any, stride: Any, pad: Any) -> Any:
    """col2im on CuPy: (N, C, kh, kw, OH, OW) windows summed into an (N, C, H, W) image.

    One thread per image pixel adds up the window slots that copied it (a
    gather: no atomics, no kh * kw passes over the image). The array version
    is ``tinyai.functions.im2col.col2im_array``.
    """
    import cupy  # noqa: PLC0415 - CuPy only

    n, c, h, w = img_shape
    img = cupy.empty((n, c, h, w), dtype=col.dtype)
    kernel_fn = _kernel(
        "col2im_gather", f"raw T col, {_GEOMETRY}", "T img",
        """
        int xx = i % w; int yy = (i / w) % h; long long plane = i / ((long long)w * h);
        T total = (T)0;
        for (int a = 0; a < kh; ++a) {
            int ty = yy + ph - a;
            if (ty < 0 || ty % sh != 0 || ty / sh >= oh) continue;
            for (int b = 0; b < kw; ++b) {
                int tx = xx + pw - b;
                if (tx < 0 || tx % sw != 0 || tx / sw >= ow) continue;
                total += col[(((plane * kh + a) * kw + b) * oh + ty / sh) * ow + tx / sw];
            }
        }
        img = total;
        """)
    kernel_fn(cupy.ascontiguousarray(col), *_geometry_args(img_shape, col.shape[4:], kernel, stride, pad), img)
    return img


def blocks_to_image_gather(blocks: Any, img_shape: Any, kernel: Any, stride: Any, pad: Any) -> Any:
    """``tinyai.functions.im2col.blocks_to_image`` on CuPy, as one gather kernel.

    ``blocks`` (kh * kw, N * OH * OW, C) holds element (i, j) of every window,
    channels last; the result is the (N, C, H, W) image (laid out channels
    last in memory) in which every pixel is the sum of the window slots that
    copied it, computed by one thread per pixel instead of kh * kw additions.
    """
    import cupy  # noqa: PLC0415 - CuPy only

    n, c, h, w = img_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    img = cupy.empty((n, h, w, c), dtype=blocks.dtype)
    kernel_fn = _kernel(
        "blocks_to_image_gather", f"raw T blocks, int32 c, int64 rows, {_GEOMETRY}", "T img",
        """
        int ch = i % c; int xx = (i / c) % w; int yy = (i / ((long long)c * w)) % h;
        long long image = i / ((long long)c * w * h);
        T total = (T)0;
        for (int a = 0; a < kh; ++a) {
            int ty = yy + ph - a;
            if (ty < 0 || ty % sh != 0 || ty / sh >= oh) continue;
            for (int b = 0; b < kw; ++b) {
                int tx = xx + pw - b;
                if (tx < 0 || tx % sw != 0 || tx / sw >= ow) continue;
                long long row = (image * oh + ty / sh) * ow + tx / sw;
                total += blocks[((long long)(a * kw + b) * rows + row) * c + ch];
            }
        }
        img = total;
        """)
    kernel_fn(cupy.ascontiguousarray(blocks), c, n * oh * ow, h, w, oh, ow, kh, kw, sh, sw, ph, pw, img)
    return img.transpose(0, 3, 1, 2)
