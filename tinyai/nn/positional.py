"""Sinusoidal positional encoding (Vaswani et al., 2017).

Attention is blind to order: permuting the positions of its input permutes
its output the same way. Adding a different vector to each position gives the
model a way to tell them apart:

    PE[pos, 2i]   = sin(pos / 10000^(2i / d_model))
    PE[pos, 2i+1] = cos(pos / 10000^(2i / d_model))

Each pair of columns is a sinusoid of its own wavelength (2 pi up to
10000 * 2 pi), so PE[pos + k] is a fixed linear function (a rotation per
pair) of PE[pos]: relative positions are easy to read off.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from tinyai.autograd import Variable
from tinyai.backend import get_default_dtype
from tinyai.backend.settings import int_setting
from tinyai.nn.dropout import Dropout
from tinyai.nn.block import Block
from tinyai.nn.layer import _check_variable


def sinusoidal_table(max_len: int, d_model: int) -> np.ndarray:
    """The (max_len, d_model) table PE above, in the default float dtype."""
    position = np.arange(max_len, dtype=np.float64)[:, None]
    rates = 1.0 / (10000.0 ** (np.arange(0, d_model, 2, dtype=np.float64) / d_model))
    angles = position * rates  # (max_len, ceil(d_model / 2))
    table = np.zeros((max_len, d_model))
    table[:, 0::2] = np.sin(angles)
    table[:, 1::2] = np.cos(angles[:, : d_model // 2])  # an odd d_model has one cosine column fewer
    return table.astype(get_default_dtype())


class PositionalEncoding(Block):
    """y = dropout(x + PE[:T]) for x of shape (N, T, d_model).

    Args:
        d_model: the feature size.
        max_len: the longest sequence accepted.
        dropout: dropout ratio applied to the sum in training.

    The table is a non-persistent buffer: it moves with ``to_gpu()`` but is
    not saved, since the constructor's arguments rebuild it.
    """

    def __init__(self, d_model: int, max_len: int = 512, dropout: float = 0.0, name: str | None = None) -> None:
        super().__init__(name)
        d_model = int_setting(d_model, self._label(), "d_model")
        max_len = int_setting(max_len, self._label(), "max_len")
        self.d_model = d_model
        self.max_len = max_len
        self.register_buffer("pe", sinusoidal_table(max_len, d_model), persistent=False)
        self.dropout = Dropout(dropout)

    def forward(self, x: Any) -> Variable:
        x = _check_variable(self, x)
        if x.ndim != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"{self._label()}: expected input of shape (N, T, {self.d_model}), got {tuple(x.shape)}")
        length = x.shape[1]
        if length > self.max_len:
            raise ValueError(f"{self._label()}: sequence length {length} exceeds max_len={self.max_len}")
        return self.dropout(x + self.pe[:length].astype(x.dtype, copy=False))

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, max_len={self.max_len}"
