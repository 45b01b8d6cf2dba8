"""Tensor-parallel blocks: the Transformer's MLP and attention split over the ranks (Megatron-LM).

MLP. Y = act(X A + a) B + b. Split A by columns and B by rows:

    rank r:  Z_r = act(X A_r + a_r)      (its own hidden units: no communication,
                                          because act works elementwise)
             Y   = sum_r Z_r B_r + b     (one all-reduce)

so the block costs one all-reduce forward (g, after B) and one backward (f,
before A), whatever the hidden size.

Attention. The h heads are independent until the output projection, so each
rank takes h / T whole heads: the query, key and value projections are split
by columns at head boundaries (column-parallel), attention runs on the local
heads, and the output projection is split by rows (row-parallel). Again one
all-reduce each way (one more backward for each distinct key/value input in
cross-attention).

``from_block`` cuts a rank's part out of an ordinary tinyai block
(``FeedForward``, a two-layer ``MlpBlock``, ``MultiHeadAttention``), and
``tensor_parallel(block, comm)`` does that to every such part of a larger
model (a Transformer encoder layer, say), leaving the rest replicated. The
split model's parameter names are the unsplit model's, so
``full_state_dict`` (in ``tinyai.parallel.tensor.checkpoint``) gives a state
a single-process model loads.

Dropout inside a split block would draw different masks than the unsplit
block, so ``from_block`` refuses a block whose dropout is not 0.
"""
from __future__ import annotations

import copy
import math
from typing import Any, Callable

from tinyai import functions as F
from tinyai.autograd import Variable
from tinyai.backend import get_array_module
from tinyai.backend.settings import int_setting
from tinyai.nn.activation import activation_init, get_activation
from tinyai.nn.attention import MultiHeadAttention
from tinyai.nn.block import Block
from tinyai.nn.blocks.mlp import MlpBlock
from tinyai.nn.dropout import Dropout
from tinyai.nn.layer import Layer, _check_variable
from tinyai.nn.transformer import FeedForward
from tinyai.parallel.comm.base import Communicator
from tinyai.parallel.tensor.layers import ColumnParallelLinear, RowParallelLinear, _like, check_communicator
from tinyai.parallel.tensor.operators import copy_to_tensor_parallel


class TensorParallelMLP(Block):
    """y = act(x W1 + b1) W2 + b2 with W1 split by columns and W2 by rows over ``comm``'s ranks.

    Args:
        in_features, hidden_features, out_features: the whole block's sizes;
            ``hidden_features`` is split (divisible by ``comm.size`` unless ``uneven``).
        comm: the tensor-parallel communicator.
        activation: an elementwise activation ("relu", "gelu", "tanh", ... or a Layer).
        bias: whether both layers have biases.
        uneven: allow a hidden size not divisible by ``comm.size``.
        init: fc1's initialiser; by default "he" for the ReLU family, else "xavier".
        act_name: the activation's attribute name ("act1" for blocks made from an MlpBlock).

    Layers: ``fc1`` (ColumnParallelLinear), ``act``, ``fc2`` (RowParallelLinear):
    the names of ``FeedForward``, so its checkpoints load. Shapes: (..., in) on
    every rank -> (..., out) on every rank.
    """

    def __init__(self, in_features: int, hidden_features: int, out_features: int, comm: Communicator,
                 activation: str | Layer | Callable = "relu", bias: bool = True, uneven: bool = False,
                 init: str | None = None, name: str | None = None, act_name: str = "act") -> None:
        super().__init__(name)
        comm = check_communicator(comm, self._label())
        self.comm = comm
        init = activation_init(activation) if init is None else init
        self.fc1 = ColumnParallelLinear(in_features, hidden_features, comm, bias=bias, init=init, uneven=uneven)
        self.add(act_name, get_activation(activation, self._label()))
        self.fc2 = RowParallelLinear(hidden_features, out_features, comm, bias=bias, uneven=uneven)
        self._act_name = act_name

    @classmethod
    def from_block(cls, block: FeedForward | MlpBlock, comm: Communicator, uneven: bool = False
                   ) -> "TensorParallelMLP":
        """This rank's part of a ``FeedForward`` or of a two-layer ``MlpBlock`` (in -> hidden -> out)."""
        where = f"{cls.__name__}.from_block"
        if isinstance(block, FeedForward):
            fc1, act_name, act, fc2 = block.fc1, "act", block.act, block.fc2
            _refuse_dropout(block.dropout, where, block)
        elif isinstance(block, MlpBlock):
            if len(block.sizes) != 3:
                raise ValueError(f"{where}: an MlpBlock with exactly one hidden layer splits into a "
                                 f"column- and a row-parallel layer; {block._label()} has sizes {list(block.sizes)}")
            fc1, act_name, act, fc2 = block.fc1, "act1", block.act1, block.fc2
        else:
            raise TypeError(f"{where}: expected a FeedForward or a two-layer MlpBlock, got {type(block).__name__}")
        mlp = cls(fc1.in_features, fc1.out_features, fc2.out_features, comm, activation=act,
                  bias=fc1.use_bias, uneven=uneven, init=fc1.init, name=block.name, act_name=act_name)
        for split, whole in ((mlp.fc1, fc1), (mlp.fc2, fc2)):
            _like(split, whole)
            split.load_full_state_dict(whole.state_dict())
        return mlp

    def forward(self, x: Any) -> Variable:
        return self.fc2(getattr(self, self._act_name)(self.fc1(x)))

    def extra_repr(self) -> str:
        return (f"{self.fc1.in_features} -> {self.fc1.out_features} -> {self.fc2.out_features}, "
                f"rank {self.comm.rank} of {self.comm.size}")


class TensorParallelAttention(Block):
    """Multi-head attention with the heads split over ``comm``'s ranks (h / T heads each).

    Args:
        d_model, num_heads: as for ``MultiHeadAttention``; ``num_heads`` must
            be divisible by ``comm.size``.
        comm: the tensor-parallel communicator.
        bias: whether the four projections have biases.

    Layers ``query_proj``, ``key_proj``, ``value_proj`` (ColumnParallelLinear,
    split at head boundaries) and ``out_proj`` (RowParallelLinear), named as
    in ``MultiHeadAttention``. Call as ``MultiHeadAttention``: ``attn(query,
    key=None, value=None, padding_mask=None, causal=False, attn_mask=None)``
    with whole (N, T, d_model) inputs on every rank -> (N, T_q, d_model) on
    every rank. ``last_attention`` holds this rank's heads' weights,
    (N, h / T, T_q, T_k).
    """

    _transient = ("last_attention",)

    def __init__(self, d_model: int, num_heads: int, comm: Communicator, bias: bool = True,
                 name: str | None = None) -> None:
        super().__init__(name)
        comm = check_communicator(comm, self._label())
        d_model = int_setting(d_model, self._label(), "d_model")
        num_heads = int_setting(num_heads, self._label(), "num_heads")
        if d_model % num_heads:
            raise ValueError(f"{self._label()}: d_model={d_model} must be divisible by num_heads={num_heads}")
        if num_heads % comm.size:
            raise ValueError(f"{self._label()}: num_heads={num_heads} is not divisible by the {comm.size} ranks "
                             "of the communicator; each rank must hold whole heads")
        self.comm = comm
        self.d_model = d_model
        self.num_heads = num_heads
        self.d_k = d_model // num_heads
        self.local_heads = num_heads // comm.size
        self.first_head = comm.rank * self.local_heads
        self.query_proj = ColumnParallelLinear(d_model, d_model, comm, bias=bias)
        self.key_proj = ColumnParallelLinear(d_model, d_model, comm, bias=bias)
        self.value_proj = ColumnParallelLinear(d_model, d_model, comm, bias=bias)
        self.out_proj = RowParallelLinear(d_model, d_model, comm, bias=bias)
        self.last_attention = None

    @classmethod
    def from_block(cls, block: MultiHeadAttention, comm: Communicator) -> "TensorParallelAttention":
        """This rank's heads of an ordinary ``MultiHeadAttention``."""
        where = f"{cls.__name__}.from_block"
        if not isinstance(block, MultiHeadAttention):
            raise TypeError(f"{where}: expected a MultiHeadAttention, got {type(block).__name__}")
        _refuse_dropout(block.attn_dropout, where, block)
        attention = cls(block.d_model, block.num_heads, comm, bias=block.query_proj.use_bias, name=block.name)
        for key in ("query_proj", "key_proj", "value_proj", "out_proj"):
            _like(getattr(attention, key), getattr(block, key))
            getattr(attention, key).load_full_state_dict(getattr(block, key).state_dict())
        return attention

    def _local_heads(self, x: Variable) -> Variable:
        """(N, T, h_local * d_k) -> (N, h_local, T, d_k)."""
        n, t, _ = x.shape
        return F.transpose(F.reshape(x, (n, t, self.local_heads, self.d_k)), (0, 2, 1, 3))

    def _check(self, x: Any, what: str) -> Variable:
        x = _check_variable(self, x, what)
        if x.ndim != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"{self._label()}: {what} must have shape (N, T, {self.d_model}), got {tuple(x.shape)}")
        return x

    def forward(self, query: Any, key: Any = None, value: Any = None, padding_mask: Any = None,
                causal: bool = False, attn_mask: Any = None) -> Variable:
        query = self._check(query, "query")
        key = query if key is None else self._check(key, "key")
        value = key if value is None else self._check(value, "value")
        if key.shape[:2] != value.shape[:2] or key.shape[0] != query.shape[0]:
            raise ValueError(f"{self._label()}: query {tuple(query.shape)}, key {tuple(key.shape)} and value "
                             f"{tuple(value.shape)} must agree in batch size (and key/value in length)")
        n, t_q, _ = query.shape
        t_k = key.shape[1]
        # One f per distinct input: its gradient is all-reduced once, not once per projection.
        q_in = copy_to_tensor_parallel(query, self.comm)
        k_in = q_in if key is query else copy_to_tensor_parallel(key, self.comm)
        v_in = k_in if value is key else q_in if value is query else copy_to_tensor_parallel(value, self.comm)
        q = self._local_heads(F.linear(q_in, self.query_proj.W, self.query_proj.b))
        k = self._local_heads(F.linear(k_in, self.key_proj.W, self.key_proj.b))
        v = self._local_heads(F.linear(v_in, self.value_proj.W, self.value_proj.b))

        scores = F.matmul(q, F.swapaxes(k, -1, -2)) * (1.0 / math.sqrt(self.d_k))  # (N, h_local, T_q, T_k)
        xp = get_array_module(scores.data)
        # The unsplit layer's mask rules (all heads), then this rank's heads of a per-head mask.
        allowed = MultiHeadAttention._allowed(self, xp, n, t_q, t_k, padding_mask, causal, attn_mask)
        if allowed is not None:
            if allowed.ndim == 4 and allowed.shape[1] == self.num_heads and self.num_heads > 1:
                allowed = allowed[:, self.first_head:self.first_head + self.local_heads]
            keep = allowed.astype(scores.dtype)
            fill = xp.where(allowed, 0, xp.finfo(scores.dtype).min).astype(scores.dtype)
            scores = scores * keep + fill
        weights = F.softmax(scores, axis=-1)
        self.last_attention = weights.data
        context = F.matmul(weights, v)  # (N, h_local, T_q, d_k)
        context = F.reshape(F.transpose(context, (0, 2, 1, 3)), (n, t_q, self.local_heads * self.d_k))
        return self.out_proj(context)

    def extra_repr(self) -> str:
        return (f"d_model={self.d_model}, heads {self.first_head}:{self.first_head + self.local_heads} of "
                f"{self.num_heads} on rank {self.comm.rank} of {self.comm.size}")


def _refuse_dropout(dropout: Dropout, where: str, block: Layer) -> None:
    if dropout.ratio:
        raise ValueError(f"{where}: {block._label()} has dropout {dropout.ratio}; split over ranks its masks "
                         "would differ from the unsplit block's. Build the block with dropout=0.0 to split it")


def tensor_parallel(block: Layer, comm: Communicator, uneven: bool = False) -> Layer:
    """A copy of ``block`` with every FeedForward, two-layer MlpBlock and MultiHeadAttention in it split over ``comm``.

    The parts that are not split (layer norms, embeddings, other layers) are
    replicated: every rank holds them whole and, since their inputs and
    output gradients are replicated, computes the same gradients for them.
    ``block`` itself is not changed. Parameter names stay those of ``block``.

    >>> # enc = TransformerEncoderLayer(64, 8, 256)
    >>> # split = tensor_parallel(enc, comm)     # attention heads and FFN split over comm's ranks
    """
    check_communicator(comm, "tensor_parallel")
    if not isinstance(block, Layer):
        raise TypeError(f"tensor_parallel: expected a tinyai Layer or Block, got {type(block).__name__}")
    converted = _convert(block, comm, uneven)
    if converted is not None:
        return converted
    result = copy.deepcopy(block)
    _replace_children(result, comm, uneven)
    return result


def _convert(layer: Layer, comm: Communicator, uneven: bool) -> Layer | None:
    if isinstance(layer, MultiHeadAttention):
        return TensorParallelAttention.from_block(layer, comm)
    if isinstance(layer, FeedForward) or (isinstance(layer, MlpBlock) and len(layer.sizes) == 3):
        return TensorParallelMLP.from_block(layer, comm, uneven)
    return None


def _replace_children(block: Layer, comm: Communicator, uneven: bool) -> None:
    for key, child in list(block.named_children()):
        converted = _convert(child, comm, uneven)
        if converted is not None:
            setattr(block, key, converted)
        else:
            _replace_children(child, comm, uneven)


__all__ = ["TensorParallelMLP", "TensorParallelAttention", "tensor_parallel"]
