"""Linear: forward against NumPy, gradients, lazy creation, initialisation statistics, errors."""
import numpy as np
import pytest

import tinyai as ta
from tinyai.nn import Linear


def test_forward_matches_numpy(rng, float64):
    layer = Linear(4, 3)
    layer.b.data = rng.standard_normal(3)
    x = rng.standard_normal((5, 4))
    np.testing.assert_allclose(layer(x).data, x @ layer.W.data + layer.b.data, rtol=1e-12)
    x3 = rng.standard_normal((2, 5, 4))  # leading axes are batch axes
    np.testing.assert_allclose(layer(x3).data, x3 @ layer.W.data + layer.b.data, rtol=1e-12)


def test_no_bias(rng):
    layer = Linear(4, 3, bias=False)
    assert [n for n, _ in layer.named_params()] == ["W"]
    x = rng.standard_normal((2, 4)).astype(np.float32)
    np.testing.assert_allclose(layer(x).data, x @ layer.W.data, rtol=1e-6)


def test_gradients(rng, float64, layer_gradcheck):
    layer = Linear(4, 3)
    layer.b.data = rng.standard_normal(3)
    layer_gradcheck(layer, rng.standard_normal((5, 4)))
    layer_gradcheck(layer, rng.standard_normal((2, 3, 4)))


def test_lazy_creation(rng):
    layer = Linear(None, 3)
    assert layer.W is None and list(layer.params()) == []
    assert "? -> 3" in repr(layer)
    layer(rng.standard_normal((2, 7)).astype(np.float32))
    assert layer.W.shape == (7, 3) and layer.in_features == 7


def test_initialisation_statistics():
    ta.seed(0)
    xavier = Linear(400, 600).W.data
    he = Linear(400, 600, init="he").W.data
    assert xavier.dtype == np.float32
    # Xavier uniform: variance 2 / (fan_in + fan_out); He normal: 2 / fan_in
    assert xavier.var() == pytest.approx(2 / 1000, rel=0.05)
    assert np.abs(xavier).max() <= np.sqrt(6 / 1000)
    assert he.var() == pytest.approx(2 / 400, rel=0.05)
    np.testing.assert_array_equal(Linear(3, 2).b.data, 0)


def test_errors():
    layer = Linear(784, 10, name="fc1")
    with pytest.raises(ValueError, match=r"Linear 'fc1': expected input with 784 features, got shape \(32, 1, 28, 28\)"):
        layer(np.zeros((32, 1, 28, 28), np.float32))
    with pytest.raises(ValueError, match="out_features must be a positive int, got 0"):
        Linear(3, 0)
    with pytest.raises(ValueError, match="in_features must be a positive int or None, got -1"):
        Linear(-1, 3)
    with pytest.raises(ValueError, match="unknown init 'lecun'"):
        Linear(3, 3, init="lecun")
    with pytest.raises(TypeError, match="Linear 'fc1': input must be a Variable or an array, got list"):
        layer([1.0, 2.0])
