"""Transformer models: a stack of encoder layers, a stack of decoder layers, and the two joined.

* ``TransformerEncoder``: N encoder layers over (N, T, d_model) features
  (for classification or tagging, put embeddings in front and a head behind).
* ``TransformerDecoder``: N decoder layers; with ``cross_attention=False`` it
  is a decoder-only (GPT-style) stack.
* ``Transformer``: token embeddings + sinusoidal positions, encoder, decoder
  and a Linear to target-vocabulary logits (Vaswani et al., 2017).

Embeddings start as N(0, 1), the scale of the positional table, so they are
not multiplied by sqrt(d_model) as in the paper (whose embeddings start small).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from tinyai.autograd import Variable, no_grad
from tinyai.backend import get_array_module, to_cpu
from tinyai.backend.settings import int_setting
from tinyai.nn.block import Block
from tinyai.nn.embedding import Embedding
from tinyai.nn.layer import Layer
from tinyai.nn.linear import Linear
from tinyai.nn.normalization import LayerNorm
from tinyai.nn.positional import PositionalEncoding
from tinyai.nn.transformer import TransformerDecoderLayer, TransformerEncoderLayer


def _check_count(label: str, num_layers: int) -> None:
    int_setting(num_layers, label, "num_layers")


class TransformerEncoder(Block):
    """``num_layers`` TransformerEncoderLayers, named layer0, layer1, ...

    With ``norm_first=True`` a final LayerNorm follows the stack (pre-norm
    layers leave their output unnormalised).

    Call: ``encoder(x, padding_mask=None, causal=False)``: (N, T, d_model) -> (N, T, d_model).
    """

    def __init__(self, num_layers: int, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.0,
                 activation: str | Layer | Callable = "relu", norm_first: bool = False,
                 name: str | None = None) -> None:
        super().__init__(name)
        _check_count(self._label(), num_layers)
        for i in range(num_layers):
            self.add(f"layer{i}", TransformerEncoderLayer(d_model, num_heads, d_ff, dropout, activation, norm_first))
        self.num_layers = num_layers
        if norm_first:
            self.final_norm = LayerNorm(d_model)

    def forward(self, x: Any, padding_mask: Any = None, causal: bool = False) -> Variable:
        for i in range(self.num_layers):
            x = getattr(self, f"layer{i}")(x, padding_mask=padding_mask, causal=causal)
        return self.final_norm(x) if "final_norm" in self._members else x


class TransformerDecoder(Block):
    """``num_layers`` TransformerDecoderLayers (causal self-attention, optional cross-attention).

    Call: ``decoder(x, memory=None, padding_mask=None, memory_padding_mask=None)``
    -> (N, T, d_model).
    """

    def __init__(self, num_layers: int, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.0,
                 activation: str | Layer | Callable = "relu", norm_first: bool = False,
                 cross_attention: bool = True, name: str | None = None) -> None:
        super().__init__(name)
        _check_count(self._label(), num_layers)
        for i in range(num_layers):
            self.add(f"layer{i}", TransformerDecoderLayer(d_model, num_heads, d_ff, dropout, activation,
                                                          norm_first, cross_attention))
        self.num_layers = num_layers
        if norm_first:
            self.final_norm = LayerNorm(d_model)

    def forward(self, x: Any, memory: Any = None, padding_mask: Any = None,
                memory_padding_mask: Any = None) -> Variable:
        for i in range(self.num_layers):
            x = getattr(self, f"layer{i}")(x, memory, padding_mask=padding_mask,
                                           memory_padding_mask=memory_padding_mask)
        return self.final_norm(x) if "final_norm" in self._members else x


def _ids(label: str, ids: Any, what: str) -> Any:
    data = ids.data if isinstance(ids, Variable) else ids
    if getattr(data, "ndim", None) != 2 or getattr(data, "dtype", np.dtype(float)).kind not in "iu":
        raise ValueError(f"{label}: {what} must be integer token ids of shape (N, T), "
                         f"got {getattr(data, 'shape', type(data).__name__)}")
    return data


class Transformer(Block):
    """Encoder-decoder Transformer over token ids.

    Args:
        src_vocab, tgt_vocab: vocabulary sizes.
        d_model, num_heads, num_layers, d_ff: model sizes (the same number of
            encoder and decoder layers).
        max_len: the longest sequence (positional table size).
        dropout: dropout ratio everywhere.
        norm_first: pre-norm layers (see ``tinyai.nn.transformer``).

    Call: ``model(src, tgt_in, src_padding_mask=None, tgt_padding_mask=None)``:
    src (N, S), tgt_in (N, T) (the target shifted right) -> logits (N, T, tgt_vocab).
    Padding masks are 1 at real tokens and 0 at padding.
    """

    def __init__(self, src_vocab: int, tgt_vocab: int, d_model: int = 64, num_heads: int = 4,
                 num_layers: int = 2, d_ff: int = 128, max_len: int = 256, dropout: float = 0.0,
                 norm_first: bool = False, name: str | None = None) -> None:
        super().__init__(name)
        self.src_embedding = Embedding(src_vocab, d_model)
        self.tgt_embedding = Embedding(tgt_vocab, d_model)
        self.positional = PositionalEncoding(d_model, max_len, dropout)
        self.encoder = TransformerEncoder(num_layers, d_model, num_heads, d_ff, dropout, norm_first=norm_first)
        self.decoder = TransformerDecoder(num_layers, d_model, num_heads, d_ff, dropout, norm_first=norm_first)
        self.out = Linear(d_model, tgt_vocab)

    def encode(self, src: Any, src_padding_mask: Any = None) -> Variable:
        """Source ids (N, S) -> memory (N, S, d_model)."""
        src = _ids(self._label(), src, "source")
        return self.encoder(self.positional(self.src_embedding(src)), padding_mask=src_padding_mask)

    def decode(self, tgt_in: Any, memory: Variable, tgt_padding_mask: Any = None,
               src_padding_mask: Any = None) -> Variable:
        """Target ids (N, T) and memory -> logits (N, T, tgt_vocab)."""
        tgt_in = _ids(self._label(), tgt_in, "target")
        h = self.decoder(self.positional(self.tgt_embedding(tgt_in)), memory, padding_mask=tgt_padding_mask,
                         memory_padding_mask=src_padding_mask)
        return self.out(h)

    def forward(self, src: Any, tgt_in: Any, src_padding_mask: Any = None, tgt_padding_mask: Any = None) -> Variable:
        memory = self.encode(src, src_padding_mask)
        if _ids(self._label(), tgt_in, "target").shape[0] != memory.shape[0]:
            raise ValueError(f"{self._label()}: source and target have different batch sizes "
                             f"({memory.shape[0]} and {tgt_in.shape[0]})")
        return self.decode(tgt_in, memory, tgt_padding_mask, src_padding_mask)

    def generate(self, src: Any, bos_id: int, length: int, src_padding_mask: Any = None) -> np.ndarray:
        """Greedy decoding of ``length`` tokens after ``bos_id``; returns ids (N, length) on the host."""
        src = _ids(self._label(), src, "source")
        xp = get_array_module(src)
        with no_grad():
            memory = self.encode(src, src_padding_mask)
            tokens = xp.full((src.shape[0], 1), bos_id, dtype=np.int64)
            for _ in range(length):
                logits = self.decode(tokens, memory, src_padding_mask=src_padding_mask)
                nxt = logits.data[:, -1].argmax(axis=-1).astype(np.int64)[:, None]
                tokens = xp.concatenate([tokens, nxt], axis=1)
        return to_cpu(tokens[:, 1:])
