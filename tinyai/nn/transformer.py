"""The Transformer's building layers: FeedForward, TransformerEncoderLayer, TransformerDecoderLayer.

An encoder layer is self-attention followed by a position-wise feed-forward
network, each wrapped in a residual connection and layer normalisation. A
decoder layer adds, between the two, attention over the encoder's output
("cross-attention"), and its self-attention is causal.

Two placements of the normalisation are offered:

* post-norm (the original paper, the default): x = LN(x + Sublayer(x));
* pre-norm (``norm_first=True``, GPT-2 and most later models):
  x = x + Sublayer(LN(x)); it trains more stably in deep stacks without
  learning-rate warm-up.
"""
from __future__ import annotations

from typing import Any, Callable

from tinyai.autograd import Variable
from tinyai.nn.activation import activation_init, get_activation
from tinyai.nn.attention import MultiHeadAttention
from tinyai.nn.block import Block
from tinyai.nn.dropout import Dropout
from tinyai.nn.layer import Layer, _check_variable
from tinyai.nn.linear import Linear
from tinyai.nn.normalization import LayerNorm


class FeedForward(Block):
    """Position-wise feed-forward network: y = act(x W_1 + b_1) W_2 + b_2, the same for every position.

    Args:
        d_model: input and output size.
        d_ff: hidden size (4 * d_model is usual).
        activation: "relu" (default), "gelu", ..., a Layer or a function.
        dropout: dropout ratio after the activation.

    Shapes: (..., d_model) -> (..., d_model).
    """

    def __init__(self, d_model: int, d_ff: int, activation: str | Layer | Callable = "relu",
                 dropout: float = 0.0, name: str | None = None) -> None:
        super().__init__(name)
        self.fc1 = Linear(d_model, d_ff, init=activation_init(activation))
        self.act = get_activation(activation, f"{self._label()}")
        self.dropout = Dropout(dropout)
        self.fc2 = Linear(d_ff, d_model)

    def forward(self, x: Any) -> Variable:
        return self.fc2(self.dropout(self.act(self.fc1(x))))


def _check_sequence(layer: Layer, x: Any, d_model: int, what: str = "input") -> Variable:
    x = _check_variable(layer, x, what)
    if x.ndim != 3 or x.shape[-1] != d_model:
        raise ValueError(f"{layer._label()}: {what} must have shape (N, T, {d_model}), got {tuple(x.shape)}")
    return x


def _residual(x: Variable, norm: LayerNorm, dropout: Dropout, norm_first: bool,
              sublayer: Callable[[Variable], Variable]) -> Variable:
    """One sublayer with its residual connection: x + dropout(sublayer(LN(x))) in pre-norm,
    LN(x + dropout(sublayer(x))) in post-norm."""
    if norm_first:
        return x + dropout(sublayer(norm(x)))
    return norm(x + dropout(sublayer(x)))


class TransformerEncoderLayer(Block):
    """Self-attention and feed-forward, each with residual connection and layer norm.

    Post-norm (default):              Pre-norm (norm_first=True):
        x = LN1(x + MHA(x, x, x))         x = x + MHA(LN1(x))
        x = LN2(x + FFN(x))               x = x + FFN(LN2(x))

    (dropout is applied to each sublayer's output before the addition).

    Args:
        d_model, num_heads: attention size and heads.
        d_ff: feed-forward hidden size.
        dropout: dropout ratio (attention weights, sublayer outputs, feed-forward).
        activation: the feed-forward activation.
        norm_first: pre-norm instead of post-norm.

    Call: ``layer(x, padding_mask=None, causal=False)``, x (N, T, d_model) -> (N, T, d_model).
    """

    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.0,
                 activation: str | Layer | Callable = "relu", norm_first: bool = False,
                 name: str | None = None) -> None:
        super().__init__(name)
        self.d_model = d_model
        self.norm_first = bool(norm_first)
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.dropout1 = Dropout(dropout)
        self.norm1 = LayerNorm(d_model)
        self.ffn = FeedForward(d_model, d_ff, activation, dropout)
        self.dropout2 = Dropout(dropout)
        self.norm2 = LayerNorm(d_model)

    def forward(self, x: Any, padding_mask: Any = None, causal: bool = False) -> Variable:
        x = _check_sequence(self, x, self.d_model)
        x = _residual(x, self.norm1, self.dropout1, self.norm_first,
                      lambda h: self.self_attn(h, padding_mask=padding_mask, causal=causal))
        return _residual(x, self.norm2, self.dropout2, self.norm_first, self.ffn)

    def extra_repr(self) -> str:
        return "pre-norm" if self.norm_first else "post-norm"


class TransformerDecoderLayer(Block):
    """Causal self-attention, cross-attention over the encoder output, feed-forward.

    Post-norm (default):
        x = LN1(x + MHA_self(x, causal))
        x = LN2(x + MHA_cross(x, memory, memory))
        x = LN3(x + FFN(x))
    Pre-norm applies each LN to the sublayer's input instead.

    Args ``d_model``, ``num_heads``, ``d_ff``, ``dropout``, ``activation``,
    ``norm_first`` and ``name`` are those of ``TransformerEncoderLayer``; one more:

    Args:
        cross_attention: False makes a decoder-only (GPT-style) layer without
            the middle sublayer; then ``memory`` must not be given.

    Call: ``layer(x, memory=None, padding_mask=None, memory_padding_mask=None)``:
    x (N, T, d_model), memory (N, S, d_model) -> (N, T, d_model). ``padding_mask``
    (N, T) marks real target tokens, ``memory_padding_mask`` (N, S) real source tokens.
    """

    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.0,
                 activation: str | Layer | Callable = "relu", norm_first: bool = False,
                 cross_attention: bool = True, name: str | None = None) -> None:
        super().__init__(name)
        self.d_model = d_model
        self.norm_first = bool(norm_first)
        self.has_cross_attention = bool(cross_attention)
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.dropout1 = Dropout(dropout)
        self.norm1 = LayerNorm(d_model)
        if self.has_cross_attention:
            self.cross_attn = MultiHeadAttention(d_model, num_heads, dropout=dropout)
            self.dropout2 = Dropout(dropout)
            self.norm2 = LayerNorm(d_model)
        self.ffn = FeedForward(d_model, d_ff, activation, dropout)
        self.dropout3 = Dropout(dropout)
        self.norm3 = LayerNorm(d_model)

    def forward(self, x: Any, memory: Any = None, padding_mask: Any = None,
                memory_padding_mask: Any = None) -> Variable:
        x = _check_sequence(self, x, self.d_model)
        if self.has_cross_attention and memory is None:
            raise ValueError(f"{self._label()}: needs the encoder output (memory); "
                             "build it with cross_attention=False for a decoder-only model")
        if not self.has_cross_attention and memory is not None:
            raise ValueError(f"{self._label()}: was built with cross_attention=False but received memory")
        x = _residual(x, self.norm1, self.dropout1, self.norm_first,
                      lambda h: self.self_attn(h, padding_mask=padding_mask, causal=True))
        if self.has_cross_attention:
            memory = _check_sequence(self, memory, self.d_model, "memory")
            x = _residual(x, self.norm2, self.dropout2, self.norm_first,
                          lambda h: self.cross_attn(h, memory, memory, padding_mask=memory_padding_mask))
        return _residual(x, self.norm3, self.dropout3, self.norm_first, self.ffn)

    def extra_repr(self) -> str:
        return ("pre-norm" if self.norm_first else "post-norm") + (
            "" if self.has_cross_attention else ", decoder-only")
