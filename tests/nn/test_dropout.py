"""Dropout: inverted scaling, drop rate, test mode and eval() pass through, seeded masks."""
import numpy as np
import pytest

import tinyai as ta
import tinyai.functions as F
from tinyai.nn import Dropout


def test_train_drops_and_scales():
    ta.seed(3)
    x = np.ones((200, 50), np.float32)
    y = Dropout(0.3)(x).data
    kept = y != 0
    assert kept.mean() == pytest.approx(0.7, abs=0.02)
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)


def test_gradient_uses_the_same_mask():
    ta.seed(4)
    x = ta.Variable(np.ones((10, 10), np.float32))
    y = Dropout(0.5)(x)
    F.sum(y).backward()
    np.testing.assert_array_equal(x.grad.data, y.data)


def test_eval_and_test_mode_pass_through():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    layer = Dropout(0.5)
    layer.eval()
    np.testing.assert_array_equal(layer(x).data, x)
    layer.train()
    with ta.test_mode():
        np.testing.assert_array_equal(layer(x).data, x)


def test_seed_reproduces_the_mask():
    x = np.ones((4, 8), np.float32)
    ta.seed(11)
    a = Dropout(0.5)(x).data
    ta.seed(11)
    b = Dropout(0.5)(x).data
    np.testing.assert_array_equal(a, b)


def test_errors():
    with pytest.raises(ValueError, match=r"Dropout 'd': ratio must be in \[0, 1\), got 1.0"):
        Dropout(1.0, name="d")
