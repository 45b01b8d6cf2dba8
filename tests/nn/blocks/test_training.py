"""Behaviour tests: small models must actually learn. Each fails if a forward or backward is wrong.

The update rules are written here (plain gradient descent, and a few lines of
Adam for the Transformer), so these tests depend on nothing but tinyai.nn and
tinyai.functions.
"""
import numpy as np
import pytest

import tinyai as ta
import tinyai.functions as F
from tinyai.nn import LstmBlock, MlpBlock, Transformer

pytestmark = pytest.mark.slow


def spiral(points_per_class=100, classes=3, seed=0):
    """The three-armed spiral of CS231n: class k's arm turns from angle 4k, with noise."""
    rng = np.random.default_rng(seed)
    x = np.zeros((points_per_class * classes, 2), np.float32)
    t = np.zeros(points_per_class * classes, np.int64)
    for k in range(classes):
        rate = np.arange(points_per_class) / points_per_class
        radius = rate
        theta = k * 4.0 + 4.0 * rate + rng.standard_normal(points_per_class) * 0.2
        rows = slice(k * points_per_class, (k + 1) * points_per_class)
        x[rows] = np.c_[radius * np.sin(theta), radius * np.cos(theta)]
        t[rows] = k
    return x, t


def sgd_step(model, lr):
    for p in model.params():
        p.data -= lr * p.grad.data
    model.clear_grads()


class Adam:
    """Adam (Kingma and Ba), written out so this test needs no optimizer package."""

    def __init__(self, model, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8):
        self.model, self.lr, self.beta1, self.beta2, self.eps = model, lr, beta1, beta2, eps
        self.m, self.v, self.t = {}, {}, 0

    def step(self):
        self.t += 1
        for name, p in self.model.named_params():
            g = p.grad.data
            m = self.m[name] = self.beta1 * self.m.get(name, 0) + (1 - self.beta1) * g
            v = self.v[name] = self.beta2 * self.v.get(name, 0) + (1 - self.beta2) * g * g
            m_hat = m / (1 - self.beta1 ** self.t)
            v_hat = v / (1 - self.beta2 ** self.t)
            p.data -= (self.lr * m_hat / (np.sqrt(v_hat) + self.eps)).astype(p.dtype)
        self.model.clear_grads()


def test_mlp_learns_the_spiral():
    ta.seed(0)
    x, t = spiral()
    model = MlpBlock("mlp", 300, "relu", 2, 64, 64, 3)
    rng = np.random.default_rng(1)
    for epoch in range(300):
        order = rng.permutation(len(x))
        for start in range(0, len(x), 30):
            rows = order[start:start + 30]
            loss = F.softmax_cross_entropy(model(x[rows]), t[rows])
            loss.backward()
            sgd_step(model, lr=0.5)
    with ta.no_grad():
        accuracy = (model(x).data.argmax(axis=1) == t).mean()
    assert accuracy >= 0.95, f"training accuracy {accuracy:.3f}"


def test_lstm_learns_next_value_of_a_sine():
    ta.seed(0)
    phase = np.random.default_rng(2).uniform(0, 2 * np.pi, size=32)
    steps = np.arange(21) * 0.3
    waves = np.sin(phase[:, None] + steps[None, :]).astype(np.float32)  # (32, 21)
    x, y = waves[:, :-1, None], waves[:, 1:, None]  # predict the next value at every step
    model = LstmBlock("lstm", 1, 16, 1)
    optimizer = Adam(model, lr=0.02)
    first = None
    for _ in range(200):
        model.reset_state()
        loss = F.mean_squared_error(model(x), y)
        first = first if first is not None else float(loss.data)
        loss.backward()
        optimizer.step()
    model.reset_state()
    with ta.no_grad():
        final = float(F.mean_squared_error(model(x), y).data)
    # predicting "no change" (y_t = x_t) has MSE 1 - cos 0.3 ~ 0.045; the LSTM must do far better
    no_change = float(np.mean((x - y) ** 2))
    assert final < no_change / 10, f"final loss {final:.4f} (first {first:.4f}, no-change baseline {no_change:.4f})"


def test_transformer_learns_to_reverse_sequences():
    ta.seed(0)
    rng = np.random.default_rng(3)
    vocab, length, bos = 6, 5, 6  # tokens 0..5, and 6 as the begin token of the decoder input
    model = Transformer(vocab, vocab + 1, d_model=32, num_heads=4, num_layers=1, d_ff=64, max_len=16,
                        norm_first=True)
    optimizer = Adam(model, lr=0.003)
    for _ in range(350):
        src = rng.integers(0, vocab, size=(32, length))
        tgt = src[:, ::-1]
        tgt_in = np.concatenate([np.full((32, 1), bos), tgt[:, :-1]], axis=1)
        loss = F.softmax_cross_entropy(model(src, tgt_in), tgt)
        loss.backward()
        optimizer.step()
    src = rng.integers(0, vocab, size=(100, length))
    predicted = model.generate(src, bos, length)
    accuracy = (predicted == src[:, ::-1]).mean()
    assert accuracy >= 0.95, f"token accuracy {accuracy:.3f}"
