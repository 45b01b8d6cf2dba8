"""BatchNorm1d/2d (batch statistics, running buffers, train vs eval) and LayerNorm against NumPy."""
import pickle

import numpy as np
import pytest

import tinyai as ta
from tinyai.nn import BatchNorm1d, BatchNorm2d, LayerNorm


def randomize(layer, rng):
    layer.gamma.data = rng.standard_normal(layer.gamma.shape) + 1.5
    layer.beta.data = rng.standard_normal(layer.beta.shape)


def test_batchnorm1d_train_forward_and_running_stats(rng, float64):
    layer = BatchNorm1d(3, momentum=0.8)
    randomize(layer, rng)
    x = rng.standard_normal((6, 3)) * 2 + 1
    y = layer(x).data
    mean, var = x.mean(axis=0), x.var(axis=0)
    np.testing.assert_allclose(y, layer.gamma.data * (x - mean) / np.sqrt(var + 1e-5) + layer.beta.data,
                               rtol=1e-10)
    np.testing.assert_allclose(layer.running_mean, 0.2 * mean, rtol=1e-10)
    # the running variance uses the unbiased estimate (m / (m - 1))
    np.testing.assert_allclose(layer.running_var, 0.8 + 0.2 * x.var(axis=0, ddof=1), rtol=1e-10)


def test_batchnorm_eval_uses_running_stats_and_leaves_them(rng, float64):
    layer = BatchNorm1d(3)
    randomize(layer, rng)
    layer.running_mean[...] = [1.0, -1.0, 0.5]
    layer.running_var[...] = [4.0, 0.25, 1.0]
    x = rng.standard_normal((4, 3))
    before = layer.running_mean.copy()
    layer.eval()
    y = layer(x).data
    expected = layer.gamma.data * (x - layer.running_mean) / np.sqrt(layer.running_var + 1e-5) + layer.beta.data
    np.testing.assert_allclose(y, expected, rtol=1e-10)
    np.testing.assert_array_equal(layer.running_mean, before)
    # the global test_mode() has the same effect on a layer in train mode
    layer.train()
    with ta.test_mode():
        np.testing.assert_allclose(layer(x).data, expected, rtol=1e-10)
    np.testing.assert_array_equal(layer.running_mean, before)


def test_batchnorm2d_per_channel(rng, float64):
    layer = BatchNorm2d(2)
    randomize(layer, rng)
    x = rng.standard_normal((3, 2, 4, 5)) + np.array([3.0, -2.0])[None, :, None, None]
    y = layer(x).data
    mean = x.mean(axis=(0, 2, 3), keepdims=True)
    var = x.var(axis=(0, 2, 3), keepdims=True)
    g, b = layer.gamma.data[None, :, None, None], layer.beta.data[None, :, None, None]
    np.testing.assert_allclose(y, g * (x - mean) / np.sqrt(var + 1e-5) + b, rtol=1e-10)
    np.testing.assert_allclose(layer.running_mean, 0.1 * mean.ravel(), rtol=1e-10)


@pytest.mark.parametrize("cls, shape", [(BatchNorm1d, (5, 3)), (BatchNorm2d, (2, 3, 3, 2))])
def test_batchnorm_gradients_train_and_eval(cls, shape, rng, float64, layer_gradcheck):
    layer = cls(3)
    randomize(layer, rng)
    layer_gradcheck(layer, rng.standard_normal(shape))
    layer.eval()
    layer_gradcheck(layer, rng.standard_normal(shape))


def test_batchnorm_state_dict_has_buffers():
    layer = BatchNorm2d(4)
    assert list(layer.state_dict()) == ["gamma", "beta", "running_mean", "running_var"]
    assert [n for n, _ in layer.named_params()] == ["gamma", "beta"]
    layer(np.random.default_rng(0).standard_normal((2, 4, 3, 3)).astype(np.float32))
    copy = pickle.loads(pickle.dumps(layer))
    np.testing.assert_array_equal(copy.running_mean, layer.running_mean)


def test_layernorm(rng, float64, layer_gradcheck):
    layer = LayerNorm(4)
    randomize(layer, rng)
    x = rng.standard_normal((2, 3, 4)) * 3
    mean, var = x.mean(axis=-1, keepdims=True), x.var(axis=-1, keepdims=True)
    np.testing.assert_allclose(layer(x).data, layer.gamma.data * (x - mean) / np.sqrt(var + 1e-5) + layer.beta.data,
                               rtol=1e-10)
    layer_gradcheck(layer, x)


def test_errors():
    with pytest.raises(ValueError, match=r"BatchNorm2d 'bn1': expected input of shape \(N, C, H, W\) with C=16, "
                                         r"got \(8, 3, 5, 5\)"):
        BatchNorm2d(16, name="bn1")(np.zeros((8, 3, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"BatchNorm1d: expected input of shape \(N, C\) with C=4"):
        BatchNorm1d(4)(np.zeros((8, 4, 2), np.float32))
    with pytest.raises(ValueError, match=r"LayerNorm 'ln': expected input of shape \(\.\.\., 8\), got \(2, 4\)"):
        LayerNorm(8, name="ln")(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="momentum must be in"):
        BatchNorm1d(3, momentum=1.5)
