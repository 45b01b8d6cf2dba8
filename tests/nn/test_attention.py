"""MultiHeadAttention against a plain NumPy computation; masks; gradients; errors."""
import numpy as np
import pytest

from tinyai.nn import MultiHeadAttention


def numpy_mha(layer, q_in, k_in, v_in, allowed=None):
    """Per-head loop, written independently of the layer's reshapes."""
    p = {name: par.data for name, par in layer.named_params()}
    q = q_in @ p["query_proj.W"] + p["query_proj.b"]
    k = k_in @ p["key_proj.W"] + p["key_proj.b"]
    v = v_in @ p["value_proj.W"] + p["value_proj.b"]
    n, t_q, d = q.shape
    h, dk = layer.num_heads, d // layer.num_heads
    out = np.zeros((n, t_q, d))
    weights = np.zeros((n, h, t_q, k.shape[1]))
    for b in range(n):
        for i in range(h):
            cols = slice(i * dk, (i + 1) * dk)
            s = q[b, :, cols] @ k[b, :, cols].T / np.sqrt(dk)
            if allowed is not None:
                s = np.where(allowed[b], s, -np.inf)
            e = np.exp(s - s.max(axis=1, keepdims=True))
            w = e / e.sum(axis=1, keepdims=True)
            weights[b, i] = w
            out[b, :, cols] = w @ v[b, :, cols]
    return out @ p["out_proj.W"] + p["out_proj.b"], weights


def randomized(rng, d_model=8, heads=2):
    layer = MultiHeadAttention(d_model, heads)
    for par in layer.params():
        par.data = rng.standard_normal(par.shape) * 0.5
    return layer


def test_self_attention_matches_numpy(rng, float64):
    layer = randomized(rng)
    x = rng.standard_normal((2, 5, 8))
    expected, weights = numpy_mha(layer, x, x, x)
    np.testing.assert_allclose(layer(x).data, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.last_attention, weights, rtol=1e-10, atol=1e-12)


def test_cross_attention_with_different_lengths(rng, float64):
    layer = randomized(rng)
    q, kv = rng.standard_normal((2, 3, 8)), rng.standard_normal((2, 6, 8))
    expected, _ = numpy_mha(layer, q, kv, kv)
    y = layer(q, kv)
    assert y.shape == (2, 3, 8)
    np.testing.assert_allclose(y.data, expected, rtol=1e-10, atol=1e-12)


def test_causal_mask(rng, float64):
    layer = randomized(rng)
    x = rng.standard_normal((2, 5, 8))
    allowed = np.broadcast_to(np.tril(np.ones((5, 5), bool)), (2, 5, 5))
    expected, _ = numpy_mha(layer, x, x, x, allowed)
    np.testing.assert_allclose(layer(x, causal=True).data, expected, rtol=1e-10, atol=1e-12)
    # the defining property: changing a later position does not change earlier outputs
    x2 = x.copy()
    x2[:, 3:] += 1.0
    y1, y2 = layer(x, causal=True).data, layer(x2, causal=True).data
    np.testing.assert_allclose(y1[:, :3], y2[:, :3], rtol=1e-12)
    assert not np.allclose(y1[:, 3:], y2[:, 3:])
    assert np.all(np.triu(layer.last_attention[0, 0], k=1) == 0)


def test_padding_mask(rng, float64):
    layer = randomized(rng)
    x = rng.standard_normal((2, 4, 8))
    pad = np.array([[1, 1, 1, 0], [1, 1, 0, 0]])
    allowed = np.broadcast_to(pad[:, None, :].astype(bool), (2, 4, 4))
    expected, _ = numpy_mha(layer, x, x, x, allowed)
    np.testing.assert_allclose(layer(x, padding_mask=pad).data, expected, rtol=1e-10, atol=1e-12)
    # padded keys get zero weight; their content does not matter
    assert np.all(layer.last_attention[1, :, :, 2:] == 0)
    x2 = x.copy()
    x2[1, 2:] = 100.0
    np.testing.assert_allclose(layer(x2, padding_mask=pad).data[1, :2], layer(x, padding_mask=pad).data[1, :2])


def test_causal_and_padding_together(rng, float64):
    layer = randomized(rng)
    x = rng.standard_normal((1, 4, 8))
    pad = np.array([[1, 0, 1, 1]])
    allowed = np.tril(np.ones((4, 4), bool)) & pad.astype(bool)[:, None, :]
    expected, _ = numpy_mha(layer, x, x, x, allowed)
    np.testing.assert_allclose(layer(x, causal=True, padding_mask=pad).data, expected, rtol=1e-10, atol=1e-12)


def test_gradients(rng, float64, layer_gradcheck):
    layer = randomized(rng)
    layer_gradcheck(layer, rng.standard_normal((2, 3, 8)), causal=True, padding_mask=np.array([[1, 1, 0], [1, 1, 1]]))


def test_cross_attention_gradients(rng, float64, layer_gradcheck):
    layer = randomized(rng, d_model=4, heads=2)
    layer_gradcheck(layer, rng.standard_normal((1, 2, 4)), rng.standard_normal((1, 3, 4)))


def test_errors():
    with pytest.raises(ValueError, match="d_model=10 must be divisible by num_heads=3"):
        MultiHeadAttention(10, 3)
    layer = MultiHeadAttention(8, 2, name="attn")
    with pytest.raises(ValueError, match=r"MultiHeadAttention 'attn': query must have shape \(N, T, 8\), got \(2, 5\)"):
        layer(np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match=r"padding_mask must have shape \(N, T_k\) = \(2, 3\), got \(2, 4\)"):
        layer(np.zeros((2, 3, 8), np.float32), padding_mask=np.ones((2, 4)))
    with pytest.raises(ValueError, match="key .* and value .* must have the same"):
        layer(np.zeros((2, 3, 8), np.float32), np.zeros((2, 4, 8), np.float32), np.zeros((2, 5, 8), np.float32))
