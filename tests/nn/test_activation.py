"""Activation layers: values from the formulas, gradients, name lookup and its errors."""
import math
import pickle

import numpy as np
import pytest

import tinyai.functions as F
from tinyai.nn import GELU, Activation, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh, get_activation
from tinyai.nn.activation import activation_init

X = np.array([[-2.0, -0.5, 0.0, 0.7, 3.0]])


@pytest.mark.parametrize("layer, expected", [
    (ReLU(), np.maximum(X, 0)),
    (LeakyReLU(0.1), np.where(X > 0, X, 0.1 * X)),
    (Sigmoid(), 1 / (1 + np.exp(-X))),
    (Tanh(), np.tanh(X)),
    (GELU(), 0.5 * X * (1 + np.tanh(math.sqrt(2 / math.pi) * (X + 0.044715 * X ** 3)))),
    (Softmax(), np.exp(X) / np.exp(X).sum()),
])
def test_values(layer, expected):
    np.testing.assert_allclose(layer(X).data, expected, rtol=1e-12)


def test_softmax_axis(rng):
    x = rng.standard_normal((3, 4))
    y = Softmax(axis=0)(x).data
    np.testing.assert_allclose(y.sum(axis=0), 1.0)
    np.testing.assert_allclose(y, np.exp(x) / np.exp(x).sum(axis=0))


@pytest.mark.parametrize("layer", [Sigmoid(), Tanh(), GELU(), Softmax(), LeakyReLU(0.2)])
def test_gradients(layer, rng, layer_gradcheck):
    layer_gradcheck(layer, rng.standard_normal((3, 4)))


def test_relu_gradient_away_from_zero(rng, layer_gradcheck):
    x = rng.standard_normal((3, 4))
    x[np.abs(x) < 0.1] = 0.5
    layer_gradcheck(ReLU(), x)


def test_get_activation():
    assert isinstance(get_activation("ReLU"), ReLU)
    assert isinstance(get_activation("gelu"), GELU)
    tanh = Tanh()
    assert get_activation(tanh) is tanh
    wrapped = get_activation(F.softplus)
    assert isinstance(wrapped, Activation)
    np.testing.assert_allclose(wrapped(X).data, np.log1p(np.exp(X)))
    assert isinstance(pickle.loads(pickle.dumps(wrapped)), Activation)
    assert activation_init("relu") == "he" and activation_init(ReLU()) == "he" and activation_init(F.relu) == "he"
    assert activation_init("tanh") == "xavier" and activation_init(Sigmoid()) == "xavier"


def test_errors():
    with pytest.raises(ValueError, match="MlpBlock: unknown activation 'swishy'; choose one of"):
        get_activation("swishy", "MlpBlock")
    with pytest.raises(TypeError, match="activation must be a name, a Layer or a function, got int"):
        get_activation(3)
    with pytest.raises(TypeError, match="a lambda cannot be pickled"):
        Activation(lambda x: x)
