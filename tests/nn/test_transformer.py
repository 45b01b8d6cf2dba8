"""FeedForward, TransformerEncoderLayer and TransformerDecoderLayer: composition, causality, gradients."""
import numpy as np
import pytest

from tinyai.nn import FeedForward, TransformerDecoderLayer, TransformerEncoderLayer


def layer_norm(x, eps=1e-5):
    return (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps)


def test_feedforward_matches_numpy(rng, float64, layer_gradcheck):
    ffn = FeedForward(4, 6)
    for p in ffn.params():
        p.data = rng.standard_normal(p.shape)
    x = rng.standard_normal((2, 3, 4))
    p = {n: q.data for n, q in ffn.named_params()}
    expected = np.maximum(x @ p["fc1.W"] + p["fc1.b"], 0) @ p["fc2.W"] + p["fc2.b"]
    np.testing.assert_allclose(ffn(x).data, expected, rtol=1e-10)
    layer_gradcheck(ffn, x)


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_is_the_documented_composition(norm_first, rng, float64):
    layer = TransformerEncoderLayer(8, 2, 16, norm_first=norm_first)
    x = rng.standard_normal((2, 5, 8))
    attn, ffn = layer.self_attn, layer.ffn
    if norm_first:
        h = x + attn(layer_norm(x)).data
        expected = h + ffn(layer_norm(h)).data
    else:
        h = layer_norm(x + attn(x).data)
        expected = layer_norm(h + ffn(h).data)
    np.testing.assert_allclose(layer(x).data, expected, rtol=1e-9, atol=1e-12)


def test_encoder_layer_gradients(rng, float64, layer_gradcheck):
    layer = TransformerEncoderLayer(4, 2, 8)
    layer_gradcheck(layer, rng.standard_normal((2, 3, 4)), padding_mask=np.array([[1, 1, 0], [1, 1, 1]]))


def test_decoder_layer_gradients_and_causality(rng, float64, layer_gradcheck):
    layer = TransformerDecoderLayer(4, 2, 8, norm_first=True)
    x, memory = rng.standard_normal((1, 4, 4)), rng.standard_normal((1, 3, 4))
    layer_gradcheck(layer, x, memory)
    x2 = x.copy()
    x2[:, 2:] += 1.0
    np.testing.assert_allclose(layer(x2, memory).data[:, :2], layer(x, memory).data[:, :2], rtol=1e-12)
    memory2 = memory + 1.0  # every position sees the memory
    assert not np.allclose(layer(x, memory2).data[:, 0], layer(x, memory).data[:, 0])


def test_decoder_only_layer(rng):
    layer = TransformerDecoderLayer(4, 2, 8, cross_attention=False)
    assert not any(n.startswith("cross_attn") for n, _ in layer.named_params())
    assert layer(rng.standard_normal((2, 3, 4)).astype(np.float32)).shape == (2, 3, 4)


def test_errors(rng):
    x = np.zeros((1, 3, 4), np.float32)
    with pytest.raises(ValueError, match="TransformerDecoderLayer 'dec': needs the encoder output"):
        TransformerDecoderLayer(4, 2, 8, name="dec")(x)
    with pytest.raises(ValueError, match="built with cross_attention=False but received memory"):
        TransformerDecoderLayer(4, 2, 8, cross_attention=False)(x, x)
    with pytest.raises(ValueError, match=r"TransformerEncoderLayer 'enc': input must have shape \(N, T, 4\), "
                                         r"got \(1, 3, 5\)"):
        TransformerEncoderLayer(4, 2, 8, name="enc")(np.zeros((1, 3, 5), np.float32))
