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
