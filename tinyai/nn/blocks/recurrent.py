"""SimpleRnnBlock, LstmBlock, GruBlock (TinyAI's blocks of the same names): a recurrent layer and a linear head.

Step mode, x (N, in) -> (N, out), with the hidden state carried between calls;
sequence mode, x (N, T, in) -> (N, T, out), the head applied at every step.
Call ``reset_state()`` between independent sequences.
"""
from __future__ import annotations

from typing import Any

from tinyai.autograd import Variable
from tinyai.nn.block import Block
from tinyai.nn.linear import Linear
from tinyai.nn.recurrent import GRU, LSTM, SimpleRNN


class _RecurrentBlock(Block):
    _cell = SimpleRNN

    def __init__(self, name: str, in_features: int, hidden_size: int, out_features: int) -> None:
        super().__init__(name)
        self.rnn = self._cell(in_features, hidden_size)
        self.fc = Linear(hidden_size, out_features)

    def forward(self, x: Any) -> Variable:
        return self.fc(self.rnn(x))

    def detach_state(self) -> None:
        """Cut the graph behind the carried state (truncated BPTT); keep its values."""
        self.rnn.detach_state()


class SimpleRnnBlock(_RecurrentBlock):
    """SimpleRNN(in, hidden) followed by Linear(hidden, out)."""

    _cell = SimpleRNN


class LstmBlock(_RecurrentBlock):
    """LSTM(in, hidden) followed by Linear(hidden, out)."""

    _cell = LSTM


class GruBlock(_RecurrentBlock):
    """GRU(in, hidden) followed by Linear(hidden, out)."""

    _cell = GRU
