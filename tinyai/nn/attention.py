"""Multi-head scaled dot-product attention (TinyAI's MultiHeadAttention).

For queries Q, keys K and values V (one row per position),

    Attention(Q, K, V) = softmax(mask(Q K^T / sqrt(d_k))) V

where mask() *replaces* (does not shift) the scores of the keys a query may
not look at by the lowest finite number of the dtype, so that they get
weight exactly 0. Multi-head attention projects the inputs h times into
subspaces of size d_k = d_model / h, attends in each independently, and
mixes the results:

    head_i = Attention(X_q W_q[i], X_k W_k[i], X_v W_v[i])
    MHA(X_q, X_k, X_v) = concat(head_1, ..., head_h) W_o

The h projections are computed as one (d_model, d_model) product and split,
which is the same as h separate (d_model, d_k) products.

Masks (True means "may attend"):

* ``causal=True``: query t sees keys 0..t only (a decoder must not peek ahead).
* ``padding_mask`` of shape (N, T_k): True or 1 at real tokens, False or 0 at
  padding, the convention of Hugging Face's ``attention_mask``. (PyTorch's
  ``key_padding_mask`` is the opposite: True marks padding.)
* ``attn_mask``: any boolean array broadcastable to (N, heads, T_q, T_k).

A query that may attend to no key at all gets exactly uniform weights over
the keys rather than NaN: all its scores are replaced by the same number.
(Adding a large negative number instead, as many implementations do, fails
both ways: added to every score of a row it changes nothing, so the row is
the unmasked softmax; and in float32 ``score - 1e9`` rounds large scores so
that one masked key can take all the weight.)
"""
from __future__ import annotations

import math
from typing import Any

from tinyai import functions as F
from tinyai.autograd import Variable
from tinyai.backend import get_array_module, is_array
from tinyai.backend.settings import int_setting, is_int, is_number
from tinyai.nn.block import Block
from tinyai.nn.dropout import Dropout
from tinyai.nn.layer import _check_variable
from tinyai.nn.linear import Linear


class MultiHeadAttention(Block):
    """Multi-head attention over (N, T, d_model) inputs.

    Args:
        d_model: model width; must be divisible by ``num_heads``.
        num_heads: number of heads h.
        dropout: dropout ratio applied to the attention weights in training.
        bias: whether the four projections have biases.

    Call: ``mha(query, key=None, value=None, padding_mask=None, causal=False,
    attn_mask=None)``; key defaults to query (self-attention) and value to key.
    Shapes: query (N, T_q, d_model), key/value (N, T_k, d_model) ->
    (N, T_q, d_model). After each call ``last_attention`` holds the weights,
    shape (N, h, T_q, T_k), as an array (for inspection and pictures).
    """

    _transient = ("last_attention",)

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 name: str | None = None) -> None:
        super().__init__(name)
        d_model = int_setting(d_model, self._label(), "d_model")
        if not is_int(num_heads) or num_heads <= 0 or d_model % num_heads:
            raise ValueError(f"{self._label()}: d_model={d_model} must be divisible by num_heads={num_heads!r}")
        if not is_number(dropout) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"{self._label()}: dropout must be in [0, 1), got {dropout!r}")
        self.d_model = d_model
        self.num_heads = num_heads = int(num_heads)
        self.d_k = d_model // num_heads
        self.dropout = float(dropout)
        self.query_proj = Linear(d_model, d_model, bias=bias)
        self.key_proj = Linear(d_model, d_model, bias=bias)
        self.value_proj = Linear(d_model, d_model, bias=bias)
        self.out_proj = Linear(d_model, d_model, bias=bias)
        self.attn_dropout = Dropout(dropout)
        self.last_attention = None

    def _split_heads(self, x: Variable) -> Variable:
        """(N, T, d_model) -> (N, h, T, d_k)."""
        n, t, _ = x.shape
        return F.transpose(F.reshape(x, (n, t, self.num_heads, self.d_k)), (0, 2, 1, 3))

    def _check(self, x: Any, what: str) -> Variable:
        x = _check_variable(self, x, what)
        if x.ndim != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"{self._label()}: {what} must have shape (N, T, {self.d_model}), got {tuple(x.shape)}")
        return x

    def _allowed(self, xp, n: int, t_q: int, t_k: int, padding_mask, causal: bool, attn_mask):
        """Where a query may attend (a boolean array broadcastable to (N, h, T_q, T_k)), or None."""
        allowed = None
        if causal:
            allowed = xp.tril(xp.ones((t_q, t_k), dtype=bool), k=t_k - t_q)[None, None]
        if padding_mask is not None:
            pm = padding_mask.data if isinstance(padding_mask, Variable) else padding_mask
            if not is_array(pm):
                pm = xp.asarray(pm)
            if tuple(pm.shape) != (n, t_k):
                raise ValueError(f"{self._label()}: padding_mask must have shape (N, T_k) = ({n}, {t_k}), "
                                 f"got {tuple(pm.shape)}")
            pm = (pm != 0)[:, None, None, :]
            allowed = pm if allowed is None else allowed & pm
        if attn_mask is not None:
            am = attn_mask.data if isinstance(attn_mask, Variable) else attn_mask
            if not is_array(am):
                am = xp.asarray(am)
            try:
                xp.broadcast_shapes(tuple(am.shape), (n, self.num_heads, t_q, t_k))
            except ValueError:
                raise ValueError(f"{self._label()}: attn_mask of shape {tuple(am.shape)} does not broadcast to "
                                 f"(N, heads, T_q, T_k) = ({n}, {self.num_heads}, {t_q}, {t_k})") from None
            am = am != 0
            allowed = am if allowed is None else allowed & am
        return allowed

    def forward(self, query: Any, key: Any = None, value: Any = None, padding_mask: Any = None,
                causal: bool = False, attn_mask: Any = None) -> Variable:
        query = self._check(query, "query")
        key = query if key is None else self._check(key, "key")
        value = key if value is None else self._check(value, "value")
        if key.shape[:2] != value.shape[:2]:
            raise ValueError(f"{self._label()}: key {tuple(key.shape)} and value {tuple(value.shape)} "
                             "must have the same batch size and length")
        if key.shape[0] != query.shape[0]:
            raise ValueError(f"{self._label()}: query {tuple(query.shape)} and key {tuple(key.shape)} "
                             "have different batch sizes")
        n, t_q, _ = query.shape
        t_k = key.shape[1]
        q = self._split_heads(self.query_proj(query))
        k = self._split_heads(self.key_proj(key))
        v = self._split_heads(self.value_proj(value))

        scores = F.matmul(q, F.swapaxes(k, -1, -2)) * (1.0 / math.sqrt(self.d_k))  # (N, h, T_q, T_k)
        xp = get_array_module(scores.data)
        allowed = self._allowed(xp, n, t_q, t_k, padding_mask, causal, attn_mask)
        if allowed is not None:
            # scores * keep + fill: the allowed scores exactly as they were (x * 1 + 0),
            # the others exactly the lowest float (x * 0 + lowest), with gradient 0.
            keep = allowed.astype(scores.dtype)
            fill = xp.where(allowed, 0, xp.finfo(scores.dtype).min).astype(scores.dtype)
            scores = scores * keep + fill
        weights = F.softmax(scores, axis=-1)
        self.last_attention = weights.data
        weights = self.attn_dropout(weights)
        context = F.matmul(weights, v)  # (N, h, T_q, d_k)
        context = F.reshape(F.transpose(context, (0, 2, 1, 3)), (n, t_q, self.d_model))
        return self.out_proj(context)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, heads={self.num_heads}" + (
            f", dropout={self.dropout}" if self.dropout else "")
