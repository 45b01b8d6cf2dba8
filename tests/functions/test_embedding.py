"""embedding: row lookup checked against one-hot products, scatter-add gradients
with repeated ids, and the error messages."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinyai as ta
import tinyai.functions as F
from tinyai.testing import gradcheck, gradgradcheck


def host(v):
    return ta.to_cpu(v.data)


@given(vocab=st.integers(1, 6), dim=st.integers(1, 4), data=st.data())
def test_lookup_equals_one_hot_product_and_gradcheck(xp, to_xp, vocab, dim, data):
    ids = data.draw(hnp.arrays(np.int64, hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
                               elements=st.integers(0, vocab - 1)))
    W = np.random.default_rng(vocab * 10 + dim).standard_normal((vocab, dim))
    y = F.embedding(to_xp(ids), to_xp(W))
    one_hot = (ids[..., None] == np.arange(vocab)).astype(np.float64)
    assert y.shape == ids.shape + (dim,)
    np.testing.assert_allclose(host(y), one_hot @ W, rtol=1e-12)
    gradcheck(lambda w: F.embedding(to_xp(ids), w), to_xp(W))


def test_repeated_ids_accumulate(xp, to_xp, rng):
    ids = np.array([[3, 1, 3], [3, 0, 1]])
    W = ta.Variable(to_xp(rng.standard_normal((5, 2))))
    gy = rng.standard_normal((2, 3, 2))
    F.embedding(to_xp(ids), W).backward(to_xp(gy))
    expected = np.zeros((5, 2))
    expected[3] = gy[0, 0] + gy[0, 2] + gy[1, 0]  # id 3 was read three times
    expected[1] = gy[0, 1] + gy[1, 2]
    expected[0] = gy[1, 1]
    np.testing.assert_allclose(host(W.grad), expected, rtol=1e-12)  # rows 2 and 4 unread: zero


def test_second_derivatives(xp, to_xp, rng):
    ids = np.array([0, 2, 2, 1])
    gradgradcheck(lambda w: F.embedding(to_xp(ids), w) ** 2, to_xp(rng.standard_normal((3, 2))))


def test_ids_as_variable_list_or_host_array(xp, to_xp, rng):
    W = to_xp(rng.standard_normal((4, 3)))
    expected = ta.to_cpu(W)[[2, 0]]
    for ids in ([2, 0], np.array([2, 0]), ta.Variable(np.array([2, 0]))):
        np.testing.assert_array_equal(host(F.embedding(ids, W)), expected)


def test_keeps_float32(rng):
    W = rng.standard_normal((4, 3)).astype(np.float32)
    assert F.embedding(np.array([1, 2]), W).dtype == np.float32


def test_errors():
    W = np.zeros((5, 3))
    with pytest.raises(TypeError, match=r"embedding: ids must be integers, got dtype float64 \(shape \(2,\)\)"):
        F.embedding(np.array([1.0, 2.0]), W)
    with pytest.raises(ValueError, match=r"embedding: id 5 is out of range for a table of 5 rows "
                                         r"\(W shape \(5, 3\)\); ids must be in \[0, 5\)"):
        F.embedding(np.array([0, 5]), W)
    with pytest.raises(ValueError, match=r"embedding: id -1 is out of range for a table of 5 rows"):
        F.embedding(np.array([-1, 2]), W)
    with pytest.raises(ValueError, match=r"embedding: W must be 2-D \(vocab, dim\), got shape \(5,\)"):
        F.embedding(np.array([0]), np.zeros(5))
