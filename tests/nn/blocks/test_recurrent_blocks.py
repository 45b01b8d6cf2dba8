"""SimpleRnnBlock, LstmBlock, GruBlock: recurrent layer + head, step and sequence modes, state handling."""
import pickle

import numpy as np
import pytest

from tinyai.nn import GRU, LSTM, GruBlock, LstmBlock, SimpleRNN, SimpleRnnBlock


@pytest.mark.parametrize("cls, cell", [(SimpleRnnBlock, SimpleRNN), (LstmBlock, LSTM), (GruBlock, GRU)])
def test_head_on_every_step(cls, cell, rng, float64, layer_gradcheck):
    block = cls("rnn", 2, 5, 3)
    assert isinstance(block.rnn, cell)
    x = rng.standard_normal((4, 6, 2))
    y = block(x)
    assert y.shape == (4, 6, 3)
    block.reset_state()
    hidden = block.rnn(x).data
    np.testing.assert_allclose(y.data, hidden @ block.fc.W.data + block.fc.b.data, rtol=1e-12)
    # step mode equals sequence mode; state carries until reset_state
    block.reset_state()
    steps = np.stack([block(x[:, t]).data for t in range(6)], axis=1)
    np.testing.assert_allclose(steps, y.data, rtol=1e-12)
    layer_gradcheck(block, rng.standard_normal((2, 3, 2)))


def test_reset_and_detach_reach_the_layer(rng):
    block = LstmBlock("lstm", 2, 3, 1)
    block(rng.standard_normal((1, 4, 2)).astype(np.float32))
    block.detach_state()
    assert block.rnn.h.creator is None and block.rnn.h is not None
    copy = pickle.loads(pickle.dumps(block))
    assert copy.rnn.h is None
    block.reset_state()
    assert block.rnn.h is None and block.rnn.c is None
