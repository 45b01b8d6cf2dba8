"""TransformerEncoder, TransformerDecoder, Transformer: stacking, masks end to end, gradients, errors."""
import numpy as np
import pytest

import tinyai.functions as F
from tinyai.nn import Transformer, TransformerDecoder, TransformerEncoder


def test_encoder_is_its_layers_in_order(rng, float64):
    enc = TransformerEncoder(2, 8, 2, 16)
    x = rng.standard_normal((2, 3, 8))
    np.testing.assert_allclose(enc(x).data, enc.layer1(enc.layer0(x)).data, rtol=1e-12)
    assert [n for n, _ in enc.named_children()] == ["layer0", "layer1"]
    pre = TransformerEncoder(1, 8, 2, 16, norm_first=True)
    np.testing.assert_allclose(pre(x).data, pre.final_norm(pre.layer0(x)).data, rtol=1e-12)


def test_encoder_gradients(rng, float64, layer_gradcheck):
    layer_gradcheck(TransformerEncoder(1, 4, 2, 8, norm_first=True), rng.standard_normal((2, 3, 4)))


def test_decoder_only_stack_is_causal(rng, float64):
    dec = TransformerDecoder(2, 8, 2, 16, cross_attention=False)
    x = rng.standard_normal((1, 5, 8))
    x2 = x.copy()
    x2[:, 3:] = 0
    np.testing.assert_allclose(dec(x).data[:, :3], dec(x2).data[:, :3], rtol=1e-12)


def test_transformer_shapes_masks_and_gradients(rng):
    model = Transformer(9, 7, d_model=8, num_heads=2, num_layers=1, d_ff=16, max_len=10)
    src, tgt = rng.integers(0, 9, (2, 6)), rng.integers(0, 7, (2, 4))
    logits = model(src, tgt)
    assert logits.shape == (2, 4, 7)
    # padding in the source: padded tokens do not affect the output
    pad = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    src2 = src.copy()
    src2[0, 4:] = (src[0, 4:] + 1) % 9
    np.testing.assert_allclose(model(src, tgt, src_padding_mask=pad).data[0],
                               model(src2, tgt, src_padding_mask=pad).data[0], rtol=1e-5)
    # the decoder cannot see future targets
    tgt2 = tgt.copy()
    tgt2[:, 2:] = (tgt[:, 2:] + 1) % 7
    np.testing.assert_allclose(model(src, tgt).data[:, :2], model(src, tgt2).data[:, :2], rtol=1e-5)
    F.softmax_cross_entropy(logits, tgt).backward()
    assert all(p.grad is not None for p in model.params())


def test_errors():
    model = Transformer(5, 5, d_model=8, num_heads=2, num_layers=1, d_ff=8, max_len=4, name="tf")
    with pytest.raises(ValueError, match=r"Transformer 'tf': source must be integer token ids of shape \(N, T\)"):
        model(np.zeros((2, 3, 8), np.float32), np.zeros((2, 3), np.int64))
    with pytest.raises(ValueError, match="sequence length 5 exceeds max_len=4"):
        model(np.zeros((1, 5), np.int64), np.zeros((1, 2), np.int64))
    with pytest.raises(ValueError, match="num_layers must be a positive int, got 0"):
        TransformerEncoder(0, 8, 2, 8)
    with pytest.raises(ValueError, match="different batch sizes"):
        model(np.zeros((2, 3), np.int64), np.zeros((1, 2), np.int64))
