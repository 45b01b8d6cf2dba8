"""Embedding lookup: row ``ids`` of a table W, differentiable in W.

    y[..., :] = W[ids[...], :]      ids (any shape, integers), W (vocab, dim) -> (*ids.shape, dim)

It is the same as multiplying one-hot vectors by W, without building them.
Its gradient adds every output gradient into the row it was read from
(scatter-add): a token that appears twice in a batch has its row updated by
the sum of both gradients, and rows that were not read get zero.
"""
from __future__ import annotations

from typing import Any

from tinyai.autograd import Function, Variable
from tinyai.backend import get_array_module, scatter_add


class Embedding(Function):
    def __init__(self, ids: Any) -> None:
        self.ids = ids

    def forward(self, W):
        return W[self.ids]

    def backward(self, gy):
        W, = self.saved_inputs()
        return EmbeddingGrad(self.ids, W.shape)(gy)


class EmbeddingGrad(Function):
    """gW = zeros (vocab, dim) with gy[k] added into row ids[k] for every k (repeats accumulate)."""

    def __init__(self, ids: Any, table_shape: tuple[int, ...]) -> None:
        self.ids, self.table_shape = ids, table_shape

    def forward(self, gy):
        xp = get_array_module(gy)
        gW = xp.zeros(self.table_shape, dtype=gy.dtype)
        scatter_add(gW, self.ids, gy)
        return gW

    def backward(self, ggW):
        # Linear in gy; its adjoint reads the same rows again.
        return Embedding(self.ids)(ggW)


def embedding(ids: Any, W: Any) -> Variable:
    """Look up rows of W (vocab, dim) for integer ``ids`` of any shape -> (*ids.shape, dim).

    ``ids`` may be an array, a Variable holding one, or a list; it must hold
    integers in [0, vocab). It is copied to W's device when needed.

    >>> import numpy as np
    >>> embedding(np.array([[2, 0]]), np.arange(6.0).reshape(3, 2)).data.tolist()
    [[[4.0, 5.0], [0.0, 1.0]]]
    """
    W_data = W.data if isinstance(W, Variable) else W
    if getattr(W_data, "ndim", None) != 2:
        raise ValueError(f"embedding: W must be 2-D (vocab, dim), got shape {getattr(W_data, 'shape', None)}")
    xp = get_array_module(W_data)
    ids = ids.data if isinstance(ids, Variable) else ids
    ids = xp.asarray(ids)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"embedding: ids must be integers, got dtype {ids.dtype} (shape {tuple(ids.shape)})")
    vocab = W_data.shape[0]
    if ids.size:
        low, high = int(ids.min()), int(ids.max())
        if low < 0 or high >= vocab:
            bad = low if low < 0 else high
            raise ValueError(f"embedding: id {bad} is out of range for a table of {vocab} rows "
                             f"(W shape {tuple(W_data.shape)}); ids must be in [0, {vocab})")
    return Embedding(ids)(W)
