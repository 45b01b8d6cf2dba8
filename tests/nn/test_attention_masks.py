"""Masked attention replaces the forbidden scores: fully masked rows are exactly uniform in any precision."""
import numpy as np
import pytest

from tinyai import Variable
from tinyai.backend import default_dtype
from tinyai.nn import MultiHeadAttention


def _layer(rng, dtype, scale):
    with default_dtype(dtype):
        layer = MultiHeadAttention(8, 2)
    for p in layer.params():
        p.data = (rng.standard_normal(p.shape) * scale).astype(dtype)
    return layer


@pytest.mark.parametrize("dtype,scale", [(np.float64, 0.5), (np.float32, 0.5), (np.float32, 30.0)])
def test_a_query_that_may_attend_to_no_key_gets_exactly_uniform_weights(dtype, scale):
    rng = np.random.default_rng(4)
    layer = _layer(rng, dtype, scale)
    x = rng.standard_normal((2, 4, 8)).astype(dtype)
    allowed = np.ones((2, 1, 4, 4), bool)
    allowed[0, 0, 1, :] = False                     # batch 0, query 1: no key at all
    allowed[1, 0, 2, [0, 3]] = False                # batch 1, query 2: keys 1 and 2 only
    layer(x, attn_mask=allowed)
    weights = layer.last_attention
    assert weights.dtype == dtype
    np.testing.assert_array_equal(weights[0, :, 1, :], np.full((2, 4), 0.25, dtype))
    assert np.all(weights[1, :, 2, [0, 3]] == 0)
    np.testing.assert_allclose(weights[1, :, 2, 1:3].sum(axis=-1), 1.0, rtol=1e-6)
    assert np.all(np.isfinite(weights))


def test_masked_scores_get_no_gradient():
    rng = np.random.default_rng(6)
    layer = _layer(rng, np.float64, 0.5)
    x = rng.standard_normal((1, 3, 8))
    # The padded position is no query's allowed key, so the outputs of the other
    # positions do not depend on it: its input gets exactly zero gradient from them.
    xv = Variable(x)
    y = layer(xv, padding_mask=np.array([[1, 1, 0]]))
    (y[:, :2] * Variable(rng.standard_normal((1, 2, 8)))).sum().backward()
    assert np.all(xv.grad.data[0, 2] == 0)
    assert np.all(xv.grad.data[0, :2] != 0)
