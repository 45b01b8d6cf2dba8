"""SimpleRNN, LSTM and GRU: the gate equations against plain NumPy, gradients, carried state, errors."""
import pickle

import numpy as np
import pytest

import tinyai.functions as F
from tinyai.autograd import Variable
from tinyai.nn import GRU, LSTM, SimpleRNN


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def numpy_rnn(x, h, W_x, W_h, b):
    return np.tanh(x @ W_x + h @ W_h + b)


def numpy_lstm(x, h, c, W_x, W_h, b):
    H = h.shape[1]
    z = x @ W_x + h @ W_h + b
    i, f, g, o = sigmoid(z[:, :H]), sigmoid(z[:, H:2 * H]), np.tanh(z[:, 2 * H:3 * H]), sigmoid(z[:, 3 * H:])
    c = f * c + i * g
    return o * np.tanh(c), c


def numpy_gru(x, h, W_x, W_h, b_x, b_h):
    H = h.shape[1]
    xw, hw = x @ W_x + b_x, h @ W_h + b_h
    r = sigmoid(xw[:, :H] + hw[:, :H])
    z = sigmoid(xw[:, H:2 * H] + hw[:, H:2 * H])
    n = np.tanh(xw[:, 2 * H:] + r * hw[:, 2 * H:])
    return (1 - z) * n + z * h


def randomize(layer, rng):
    """Random values everywhere (biases start at 0 or 1, which would hide bias mistakes)."""
    for p in layer.params():
        p.data = rng.standard_normal(p.shape).astype(p.dtype) * 0.5


def params(layer):
    return {name: p.data.astype(np.float64) for name, p in layer.named_params()}


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
def test_sequence_matches_numpy_loop(cls, rng, float64):
    layer = cls(3, 4)
    randomize(layer, rng)
    x = rng.standard_normal((2, 5, 3))
    y = layer(x)
    p = params(layer)
    h = np.zeros((2, 4))
    c = np.zeros((2, 4))
    expected = []
    for t in range(5):
        if cls is SimpleRNN:
            h = numpy_rnn(x[:, t], h, p["W_x"], p["W_h"], p["b"])
        elif cls is LSTM:
            h, c = numpy_lstm(x[:, t], h, c, p["W_x"], p["W_h"], p["b"])
        else:
            h = numpy_gru(x[:, t], h, p["W_x"], p["W_h"], p["b_x"], p["b_h"])
        expected.append(h)
    assert y.shape == (2, 5, 4)
    np.testing.assert_allclose(y.data, np.stack(expected, axis=1), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.h.data, h, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
def test_steps_carry_state_and_equal_the_sequence(cls, rng, float64):
    layer = cls(3, 4)
    randomize(layer, rng)
    x = rng.standard_normal((2, 6, 3))
    whole = layer(x).data
    layer.reset_state()
    steps = [layer(x[:, t]).data for t in range(6)]
    np.testing.assert_allclose(np.stack(steps, axis=1), whole, rtol=1e-12)
    # chunks: the state carries over from the first call to the second
    layer.reset_state()
    first = layer(x[:, :4]).data
    second = layer(x[:, 4:]).data
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), whole, rtol=1e-12)
    # after reset_state the next call starts from zeros again
    layer.reset_state()
    np.testing.assert_allclose(layer(x[:, 0]).data, whole[:, 0], rtol=1e-12)


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
def test_cell_is_pure(cls, rng, float64):
    layer = cls(3, 4)
    randomize(layer, rng)
    x = rng.standard_normal((2, 3))
    layer(rng.standard_normal((2, 3)))  # leaves a carried state behind
    carried = layer.h.data.copy()
    state = layer.cell(x)
    h = state[0] if cls is LSTM else state
    fresh = cls(3, 4)
    for (_, p), (_, q) in zip(fresh.named_params(), layer.named_params()):
        p.data = q.data.copy()
    np.testing.assert_allclose(h.data, fresh(x).data, rtol=1e-12)
    np.testing.assert_array_equal(layer.h.data, carried)


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
def test_gradients_sequence(cls, rng, float64, layer_gradcheck):
    layer = cls(3, 4)
    randomize(layer, rng)
    layer_gradcheck(layer, rng.standard_normal((2, 4, 3)))


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
def test_gradients_flow_into_a_given_initial_state(cls, rng, float64):
    from tinyai.testing import gradcheck
    layer = cls(3, 4)
    randomize(layer, rng)
    x = rng.standard_normal((2, 3, 3))

    def f(x, h, c):
        layer.reset_state()
        layer.set_state(h, c if cls is LSTM else None)
        return layer(x)

    gradcheck(f, x, rng.standard_normal((2, 4)), rng.standard_normal((2, 4)), seed=1)


def test_lstm_forget_bias_starts_at_one():
    layer = LSTM(2, 3)
    np.testing.assert_array_equal(layer.b.data, [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0])


def test_lazy_in_features_and_param_order(rng):
    layer = GRU(None, 5)
    assert list(layer.params()) == []
    layer(rng.standard_normal((2, 7)).astype(np.float32))
    assert [(n, p.shape) for n, p in layer.named_params()] == [
        ("W_x", (7, 15)), ("W_h", (5, 15)), ("b_x", (15,)), ("b_h", (15,))]


def test_detach_state_cuts_the_graph(rng):
    layer = SimpleRNN(2, 3)
    layer(rng.standard_normal((1, 4, 2)).astype(np.float32))
    assert layer.h.creator is not None
    layer.detach_state()
    assert layer.h.creator is None
    y = layer(rng.standard_normal((1, 2)).astype(np.float32))
    F.sum(y).backward()
    assert layer.W_x.grad is not None


def test_pickle_drops_carried_state(rng):
    layer = LSTM(2, 3, name="lstm")
    layer(rng.standard_normal((1, 4, 2)).astype(np.float32))
    copy = pickle.loads(pickle.dumps(layer))
    assert copy.h is None and copy.c is None
    np.testing.assert_array_equal(copy.W_x.data, layer.W_x.data)


def test_errors(rng):
    layer = LSTM(3, 4, name="enc")
    with pytest.raises(ValueError, match=r"LSTM 'enc': expected input with 3 features, got shape \(2, 5\)"):
        layer(np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match=r"LSTM 'enc': expected input of shape \(N, in\).*got \(3,\)"):
        layer(np.zeros(3, np.float32))
    layer(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="carried hidden state has batch size 2 but the input has 5.*reset_state"):
        layer(np.zeros((5, 3), np.float32))
    with pytest.raises(ValueError, match=r"hidden state must have shape \(N, 4\), got \(2, 3\)"):
        layer.set_state(Variable(np.zeros((2, 3), np.float32)))
    with pytest.raises(ValueError, match="has no cell state"):
        GRU(3, 4).set_state(np.zeros((2, 4), np.float32), np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="hidden_size must be a positive int"):
        SimpleRNN(3, 0)
