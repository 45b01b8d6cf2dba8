"""The embedding layer (TinyAI's Embedding): a learned vector for each token id."""
from __future__ import annotations

from typing import Any

from tinyai import functions as F
from tinyai.autograd import Variable
from tinyai.backend import is_array
from tinyai.backend.settings import int_setting
from tinyai.nn.init import initialize
from tinyai.nn.layer import Layer
from tinyai.nn.parameter import Parameter


class Embedding(Layer):
    """y[..., :] = W[ids[...], :]: row lookup in a (num_embeddings, embedding_dim) table.

    Equivalent to multiplying a one-hot encoding of the ids by W, without
    building the one-hot matrix. The gradient adds each output gradient into
    the row it was read from (twice for an id that occurs twice).

    Args:
        num_embeddings: vocabulary size; ids must lie in [0, num_embeddings).
        embedding_dim: length of each vector.
        std: the table starts as N(0, std^2) (default 1, as in PyTorch).

    Shapes: ids of any shape (integers) -> (*ids.shape, embedding_dim).
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, std: float = 1.0, name: str | None = None) -> None:
        super().__init__(name)
        num_embeddings = int_setting(num_embeddings, self._label(), "num_embeddings")
        embedding_dim = int_setting(embedding_dim, self._label(), "embedding_dim")
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.W = Parameter(initialize((num_embeddings, embedding_dim), 1, 1, "normal", std=std))

    def forward(self, ids: Any) -> Variable:
        data = ids.data if isinstance(ids, Variable) else ids
        if not is_array(data):
            raise TypeError(f"{self._label()}: ids must be an integer array, got {type(ids).__name__}")
        if data.dtype.kind not in "iu":
            raise TypeError(f"{self._label()}: ids must be integers, got dtype {data.dtype}")
        if data.size:
            low, high = int(data.min()), int(data.max())
            if low < 0 or high >= self.num_embeddings:
                raise ValueError(f"{self._label()}: ids must lie in [0, {self.num_embeddings}), "
                                 f"got values from {low} to {high}")
        return F.embedding(data, self.W)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"
