"""Recurrent sequence-to-sequence models: an encoder reads the source, a decoder writes the target.

The encoder embeds the source tokens and runs a recurrent layer over them;
its final state summarises the whole source. The decoder starts from that
state and, at each step, reads the previous target token and predicts the
next one. In training the true previous tokens are fed in ("teacher
forcing"); ``Seq2Seq.generate`` feeds back its own predictions.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from tinyai.autograd import Variable, no_grad
from tinyai.backend import get_array_module, to_cpu
from tinyai.nn.block import Block
from tinyai.nn.embedding import Embedding
from tinyai.nn.linear import Linear
from tinyai.nn.recurrent import GRU, LSTM, SimpleRNN

_CELLS = {"rnn": SimpleRNN, "lstm": LSTM, "gru": GRU}


def _make_cell(label: str, cell: str, in_features: int, hidden_size: int):
    cls = _CELLS.get(cell)
    if cls is None:
        raise ValueError(f"{label}: unknown cell {cell!r}; choose one of {', '.join(_CELLS)}")
    return cls(in_features, hidden_size)


def _check_ids(label: str, ids: Any, what: str) -> Any:
    data = ids.data if isinstance(ids, Variable) else ids
    if getattr(data, "ndim", None) != 2:
        raise ValueError(f"{label}: {what} must be token ids of shape (N, T), got {getattr(data, 'shape', type(data))}")
    return data


class Seq2SeqEncoder(Block):
    """Embedding -> recurrent layer over the source.

    Args:
        vocab_size, embed_dim, hidden_size: sizes.
        cell: "gru" (default), "lstm" or "rnn".

    Call: ids (N, S) -> outputs (N, S, hidden); ``state`` then holds the final
    state (h, or (h, c) for an LSTM). Each call starts from a zero state.
    """

    def __init__(self, vocab_size: int, embed_dim: int, hidden_size: int, cell: str = "gru",
                 name: str | None = None) -> None:
        super().__init__(name)
        self.embedding = Embedding(vocab_size, embed_dim)
        self.rnn = _make_cell(self._label(), cell, embed_dim, hidden_size)

    def forward(self, ids: Any) -> Variable:
        ids = _check_ids(self._label(), ids, "source")
        self.rnn.reset_state()
        return self.rnn(self.embedding(ids))

    @property
    def state(self) -> Any:
        return self.rnn.state


class Seq2SeqDecoder(Block):
    """Embedding -> recurrent layer started from a given state -> Linear to vocabulary logits.

    Call: ``decoder(ids, state)``: ids (N, T) of the previous tokens, state from
    the encoder -> logits (N, T, vocab_size). With ``state=None`` the carried
    state continues (for generating one token at a time).
    """

    def __init__(self, vocab_size: int, embed_dim: int, hidden_size: int, cell: str = "gru",
                 name: str | None = None) -> None:
        super().__init__(name)
        self.embedding = Embedding(vocab_size, embed_dim)
        self.rnn = _make_cell(self._label(), cell, embed_dim, hidden_size)
        self.fc = Linear(hidden_size, vocab_size)

    def forward(self, ids: Any, state: Any = None) -> Variable:
        ids = _check_ids(self._label(), ids, "target")
        if state is not None:
            if isinstance(state, tuple):
                self.rnn.set_state(*state)
            else:
                self.rnn.set_state(state)
        return self.fc(self.rnn(self.embedding(ids)))


class Seq2Seq(Block):
    """Encoder-decoder over token ids.

    Args:
        src_vocab, tgt_vocab: vocabulary sizes.
        embed_dim, hidden_size: sizes shared by encoder and decoder.
        cell: "gru" (default), "lstm" or "rnn".

    Call: ``model(src, tgt_in)``: src (N, S), tgt_in (N, T) (the target shifted
    right, starting with a begin token) -> logits (N, T, tgt_vocab).
    """

    def __init__(self, src_vocab: int, tgt_vocab: int, embed_dim: int = 32, hidden_size: int = 64,
                 cell: str = "gru", name: str | None = None) -> None:
        super().__init__(name)
        self.encoder = Seq2SeqEncoder(src_vocab, embed_dim, hidden_size, cell)
        self.decoder = Seq2SeqDecoder(tgt_vocab, embed_dim, hidden_size, cell)

    def forward(self, src: Any, tgt_in: Any) -> Variable:
        src_data = _check_ids(self._label(), src, "source")
        tgt_data = _check_ids(self._label(), tgt_in, "target")
        if src_data.shape[0] != tgt_data.shape[0]:
            raise ValueError(f"{self._label()}: source {tuple(src_data.shape)} and target {tuple(tgt_data.shape)} "
                             "have different batch sizes")
        self.encoder(src)
        return self.decoder(tgt_in, self.encoder.state)

    def generate(self, src: Any, bos_id: int, length: int) -> np.ndarray:
        """Greedy decoding: feed back the most likely token ``length`` times; returns ids (N, length) on the host."""
        src = _check_ids(self._label(), src, "source")
        xp = get_array_module(src)
        with no_grad():
            self.encoder(src)
            token = xp.full((src.shape[0], 1), bos_id, dtype=np.int64)
            logits = self.decoder(token, self.encoder.state)
            out = []
            for step in range(length):
                token = logits.data.argmax(axis=-1).astype(np.int64)
                out.append(token)
                if step + 1 < length:
                    logits = self.decoder(token)
        self.reset_state()
        return to_cpu(xp.concatenate(out, axis=1))
