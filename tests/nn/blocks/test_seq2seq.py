"""Seq2Seq: the decoder starts from the encoder's final state; shapes, gradients, greedy decoding."""
import numpy as np
import pytest

import tinyai.functions as F
from tinyai.nn import Seq2Seq


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
def test_decoder_starts_from_the_encoder_state(cell, rng):
    model = Seq2Seq(7, 5, embed_dim=4, hidden_size=6, cell=cell)
    src, tgt = rng.integers(0, 7, (3, 4)), rng.integers(0, 5, (3, 2))
    logits = model(src, tgt)
    assert logits.shape == (3, 2, 5)
    # recompute by hand: encoder's final state, then the decoder from it
    model.encoder(src)
    state = model.encoder.state
    model.decoder.rnn.reset_state()
    model.decoder.rnn.set_state(*(state if isinstance(state, tuple) else (state,)))
    h = model.decoder.rnn(model.decoder.embedding(tgt))
    np.testing.assert_allclose(logits.data, model.decoder.fc(h).data, rtol=1e-6)
    # a different source changes the output: information flows through the state
    assert not np.allclose(model(src[::-1], tgt).data, logits.data)


def test_gradients_reach_the_encoder(rng):
    model = Seq2Seq(7, 5, 4, 6, "lstm")
    loss = F.softmax_cross_entropy(model(rng.integers(0, 7, (3, 4)), rng.integers(0, 5, (3, 2))),
                                   rng.integers(0, 5, (3, 2)))
    loss.backward()
    assert all(p.grad is not None for p in model.params())
    assert np.any(model.encoder.rnn.W_x.grad.data != 0)


def test_generate_and_errors(rng):
    model = Seq2Seq(7, 5, 4, 6)
    out = model.generate(rng.integers(0, 7, (2, 4)), bos_id=0, length=3)
    assert out.shape == (2, 3) and out.dtype.kind == "i" and out.max() < 5
    with pytest.raises(ValueError, match="unknown cell 'transformer'"):
        Seq2Seq(5, 5, cell="transformer")
    with pytest.raises(ValueError, match=r"source must be token ids of shape \(N, T\)"):
        model(np.zeros(3, np.int64), np.zeros((1, 2), np.int64))
    with pytest.raises(ValueError, match="different batch sizes"):
        model(np.zeros((2, 3), np.int64), np.zeros((1, 2), np.int64))
