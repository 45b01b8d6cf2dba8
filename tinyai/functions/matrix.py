"""Matrix products: ``matmul`` (2-D and batched) and the fused ``linear`` layer op.

For Y = X W the gradients are gX = gY W^T and gW = X^T gY: each input's
gradient is the output gradient multiplied by the *other* input, transposed.
Both backward formulas use only ``@``, ``.T``/``.transpose``, ``.reshape`` and
``sum_to``, which raw arrays and Variables share.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from tinyai.autograd import Function, Variable, as_variable
from tinyai.backend import get_array_module, widen
from tinyai.functions.shape import reshape, sum_to


def _matrix_transpose(a: Any) -> Any:
    """Swap the last two axes (the matrix axes) of an array or a Variable."""
    if a.ndim == 2:
        return a.T
    return a.transpose(tuple(range(a.ndim - 2)) + (a.ndim - 1, a.ndim - 2))


def _product(a: Any, b: Any) -> Any:
    """``a @ b``; float16 arrays on the host are multiplied in float32 and rounded back.

    NumPy has no float16 BLAS: its float16 matrix product is a plain loop,
    some fifty times slower than float32. Multiplying in float32 is also what
    a GPU's tensor cores do with float16 operands (they accumulate in
    float32), so mixed precision on the CPU computes what it would on a GPU.
    """
    if (a.dtype == np.float16 and b.dtype == np.float16 and not isinstance(a, Variable)
            and not isinstance(b, Variable) and get_array_module(a).__name__ != "cupy"):
        return (widen(a) @ widen(b)).astype(np.float16)
    return a @ b


class MatMul(Function):
    def forward(self, a, b):
        if a.shape[-1] != b.shape[-2]:
            raise ValueError(f"matmul: shapes {tuple(a.shape)} and {tuple(b.shape)} are not aligned "
                             f"({a.shape[-1]} != {b.shape[-2]})")
        try:
            return _product(a, b)
        except ValueError:
            raise ValueError(f"matmul: batch shapes of {tuple(a.shape)} and {tuple(b.shape)} "
                             "cannot be broadcast together") from None

    def backward(self, gy):
        # Batch axes broadcast in the forward pass, so each gradient is summed
        # back to its input's shape.
        a, b = self.saved_inputs()
        needs_a, needs_b = self.needs_input_grad
        ga = sum_to(_product(gy, _matrix_transpose(b)), a.shape) if needs_a else None
        gb = sum_to(_product(_matrix_transpose(a), gy), b.shape) if needs_b else None
        return ga, gb


def matmul(a: Any, b: Any) -> Variable:
    """Matrix product ``a @ b``; leading axes are batch axes and broadcast.

    A 1-D operand is treated as a row (left) or column (right) vector and that
    axis is removed from the result, as in NumPy.

    >>> import numpy as np
    >>> matmul(np.ones((2, 3)), np.ones((3, 4))).shape
    (2, 4)
    """
    a, b = as_variable(a), as_variable(b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: scalars have no matrix product (shapes {a.shape} and {b.shape}); use mul")
    if a.ndim >= 2 and b.ndim >= 2:
        return MatMul()(a, b)
    # NumPy's 1-D conventions, by reshaping into matrices and back.
    a2 = reshape(a, (1, a.shape[0])) if a.ndim == 1 else a
    b2 = reshape(b, (b.shape[0], 1)) if b.ndim == 1 else b
    y = MatMul()(a2, b2)
    shape = y.shape
    if b.ndim == 1:
        shape = shape[:-1]
    if a.ndim == 1:
        shape = shape[:-2] + shape[-1:] if b.ndim != 1 else shape[:-1]
    return reshape(y, shape)


class Linear(Function):
    """y = x W + b in one step, so the backward computes all three gradients
    without the intermediate graph of a matmul and an add.

    Shapes: x (..., in), W (in, out), b (out,) -> y (..., out).
    """

    def forward(self, x, W, b=None):
        if W.ndim != 2 or x.ndim < 1 or x.shape[-1] != W.shape[0]:
            raise ValueError(f"linear: input has shape {tuple(x.shape)} ({x.shape[-1] if x.ndim else 0} features) "
                             f"but W has shape {tuple(W.shape)}; expected x of shape (..., {W.shape[0]})")
        y = _product(x, W)
        if b is not None:
            if b.shape != (W.shape[1],):
                raise ValueError(f"linear: bias has shape {tuple(b.shape)}, expected ({W.shape[1]},)")
            y += b
        return y

    def backward(self, gy):
        x, W, *b = self.saved_inputs()
        needs = self.needs_input_grad
        gx = _product(gy, W.T) if needs[0] else None
        gW = None
        if needs[1]:
            if x.ndim != 2:  # every leading axis is a batch axis: fold them into one
                x = x.reshape((-1, x.shape[-1]))
                gy = gy.reshape((-1, gy.shape[-1]))
            gW = _product(x.T, gy)
        if not b:
            return gx, gW
        gb = sum_to(gy, b[0].shape) if needs[2] else None
        return gx, gW, gb


def linear(x: Any, W: Any, b: Any = None) -> Variable:
    """Affine map ``x @ W + b`` (TinyAI's AffineLayer op), W of shape (in_features, out_features)."""
    if b is None:
        return Linear()(x, W)
    return Linear()(x, W, b)
