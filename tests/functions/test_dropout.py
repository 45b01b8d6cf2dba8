"""dropout: kept fraction, inverted scaling, gradient through the same mask,
reproducibility from the seed, and identity in test mode."""
import numpy as np
import pytest

import tinyai as ta
import tinyai.functions as F
from tinyai.backend import get_state, seed, set_state, using_rng
from tinyai.testing import gradcheck, gradgradcheck


def host(v):
    return ta.to_cpu(v.data)


@pytest.mark.parametrize("ratio", [0.1, 0.5, 0.8])
def test_kept_fraction_and_scaling(xp, to_xp, ratio):
    x = np.random.default_rng(0).random((200, 100)) + 1.0  # never zero, so zeros are drops
    with using_rng(np.random.default_rng(1)):
        y = host(F.dropout(to_xp(x), ratio))
    kept = y != 0
    n = kept.size
    # Binomial(n, 1 - ratio): within 5 standard deviations.
    assert abs(kept.mean() - (1 - ratio)) < 5 * np.sqrt(ratio * (1 - ratio) / n)
    np.testing.assert_allclose(y[kept], x[kept] / (1 - ratio), rtol=1e-12)
    # Inverted dropout keeps the mean: E[y] = x.
    assert y.mean() == pytest.approx(x.mean(), rel=0.02)


def test_gradient_uses_the_same_mask(xp, to_xp, rng):
    x = ta.Variable(to_xp(rng.standard_normal((30, 20))))
    gy = rng.standard_normal((30, 20))
    y = F.dropout(x, 0.4)
    y.backward(to_xp(gy))
    dropped = host(y) == 0
    g = host(x.grad)
    np.testing.assert_array_equal(g[dropped], 0.0)
    np.testing.assert_allclose(g[~dropped], gy[~dropped] / 0.6, rtol=1e-12)


def test_gradcheck_with_a_fixed_mask(xp, to_xp, rng):
    def f(v):
        with using_rng(np.random.default_rng(7)):  # same mask on every evaluation
            return F.dropout(v, 0.3)
    x = to_xp(rng.standard_normal((4, 5)))
    gradcheck(f, x)
    gradgradcheck(lambda v: f(v) ** 2, x)


def test_same_seed_same_mask_next_call_different_mask():
    x = np.ones((50, 40))
    saved = get_state()  # leave the global stream as other tests found it
    try:
        seed(123)
        a = host(F.dropout(x, 0.5))
        b = host(F.dropout(x, 0.5))
        seed(123)
        c = host(F.dropout(x, 0.5))
    finally:
        set_state(saved)
    np.testing.assert_array_equal(a, c)
    assert not np.array_equal(a, b)  # the stream moves on between calls


def test_identity_in_test_mode_and_for_ratio_zero(xp, to_xp, rng):
    x = ta.Variable(to_xp(rng.standard_normal((3, 4))))
    with ta.test_mode():
        assert F.dropout(x, 0.9) is x
        y = F.dropout(to_xp(rng.standard_normal((2, 2))), 0.5)
        assert isinstance(y, ta.Variable)
    assert F.dropout(x, 0.0) is x


def test_keeps_float32():
    y = F.dropout(np.ones((10, 10), np.float32), 0.5)
    assert y.dtype == np.float32
    assert set(np.unique(host(y))) <= {0.0, 2.0}


@pytest.mark.parametrize("ratio", [1.0, -0.1, 2, "0.5", True])
def test_bad_ratio(ratio):
    with pytest.raises(ValueError, match=r"dropout: ratio must be a number in \[0, 1\), got "):
        F.dropout(np.ones(3), ratio)


def test_integer_input_is_rejected():
    with pytest.raises(TypeError, match=r"dropout: input must be floating point, got dtype int64"):
        F.dropout(np.ones(3, dtype=np.int64), 0.5)
