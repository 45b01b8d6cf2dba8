"""Embedding: row lookup, gradient that adds repeated ids, errors."""
import numpy as np
import pytest

import tinyai.functions as F
from tinyai.nn import Embedding


def test_lookup(rng):
    layer = Embedding(10, 4)
    ids = np.array([[1, 3, 3], [0, 9, 2]])
    y = layer(ids)
    assert y.shape == (2, 3, 4)
    np.testing.assert_array_equal(y.data, layer.W.data[ids])


def test_gradient_adds_repeated_ids(rng, float64, layer_gradcheck):
    layer = Embedding(5, 3)
    ids = np.array([[1, 3, 3], [0, 3, 1]])
    gy = rng.standard_normal((2, 3, 3))
    F.sum(layer(ids) * gy).backward()
    expected = np.zeros((5, 3))
    np.add.at(expected, ids, gy)
    np.testing.assert_allclose(layer.W.grad.data, expected)
    layer_gradcheck(layer, ids)


def test_errors():
    layer = Embedding(10, 4, name="emb")
    with pytest.raises(ValueError, match=r"Embedding 'emb': ids must lie in \[0, 10\), got values from -1 to 3"):
        layer(np.array([-1, 3]))
    with pytest.raises(ValueError, match=r"got values from 0 to 10"):
        layer(np.array([0, 10]))
    with pytest.raises(TypeError, match="ids must be integers, got dtype float64"):
        layer(np.array([1.0]))
    with pytest.raises(TypeError, match="ids must be an integer array, got list"):
        layer([1, 2])
