"""batch_norm (train and test mode, running statistics) and layer_norm.

References are the textbook formulas in plain NumPy; gradients (first and
second) are checked with gradcheck / gradgradcheck and random output
gradients, which catch a wrong closed form that the all-ones gradient
would hide (the batch-norm input gradient is orthogonal to it).
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinyai as ta
import tinyai.functions as F
from tinyai.testing import gradcheck, gradgradcheck


def host(v):
    return ta.to_cpu(v.data)


def reference_batch_norm(x, gamma, beta, mean, var, eps):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return gamma.reshape(shape) * (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) \
        + beta.reshape(shape)


batch_shapes = st.one_of(
    st.tuples(st.integers(2, 5), st.integers(1, 4)),
    st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3)),
).filter(lambda s: int(np.prod(s)) // s[1] >= 2)  # train mode needs two values per channel


# -- batch_norm, train mode -------------------------------------------------------------
@given(shape=batch_shapes, seed=st.integers(0, 1000))
def test_batch_norm_train_matches_formula_and_gradcheck(xp, to_xp, shape, seed):
    rng = np.random.default_rng(seed)
    c = shape[1]
    x = rng.standard_normal(shape) * 2 + 1
    gamma, beta = rng.standard_normal(c), rng.standard_normal(c)
    axes = (0,) if x.ndim == 2 else (0, 2, 3)
    rm, rv = to_xp(np.zeros(c)), to_xp(np.ones(c))
    y = F.batch_norm(to_xp(x), to_xp(gamma), to_xp(beta), rm, rv, eps=1e-5)
    expected = reference_batch_norm(x, gamma, beta, x.mean(axis=axes), x.var(axis=axes), 1e-5)
    np.testing.assert_allclose(host(y), expected, rtol=1e-10, atol=1e-10)
    gradcheck(lambda *v: F.batch_norm(*v, rm, rv), *to_xp((x, gamma, beta)))


def test_batch_norm_updates_running_statistics_in_place(xp, to_xp, rng):
    x = rng.standard_normal((6, 3, 2, 2)) * 3 + 2
    rm0, rv0 = rng.standard_normal(3), rng.random(3) + 0.5
    rm, rv = to_xp(rm0.copy()), to_xp(rv0.copy())
    F.batch_norm(to_xp(x), to_xp(np.ones(3)), to_xp(np.zeros(3)), rm, rv, momentum=0.8)
    batch_mean = x.mean(axis=(0, 2, 3))
    # The running variance uses the unbiased estimate (divide by m - 1 = 23).
    batch_var = x.transpose(1, 0, 2, 3).reshape(3, -1).var(axis=1, ddof=1)
    np.testing.assert_allclose(ta.to_cpu(rm), 0.8 * rm0 + 0.2 * batch_mean, rtol=1e-12)
    np.testing.assert_allclose(ta.to_cpu(rv), 0.8 * rv0 + 0.2 * batch_var, rtol=1e-12)


def test_batch_norm_running_statistics_converge_to_the_data(rng):
    # momentum 0 takes the batch statistics outright; repeated batches of the same data
    # with momentum 0.5 converge to them too.
    x = rng.standard_normal((50, 2)) * [1.0, 4.0] + [3.0, -1.0]
    rm, rv = np.zeros(2, np.float32), np.ones(2, np.float32)
    F.batch_norm(x.astype(np.float32), np.ones(2, np.float32), np.zeros(2, np.float32), rm, rv, momentum=0.0)
    np.testing.assert_allclose(rm, x.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(rv, x.var(axis=0, ddof=1), rtol=1e-5)
    rm2, rv2 = np.zeros(2), np.ones(2)
    for _ in range(40):
        F.batch_norm(x, np.ones(2), np.zeros(2), ta.Variable(rm2), ta.Variable(rv2), momentum=0.5)
    np.testing.assert_allclose(rm2, x.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(rv2, x.var(axis=0, ddof=1), rtol=1e-9)


def test_batch_norm_train_output_is_standardized(rng):
    x = rng.standard_normal((8, 3, 2, 2)) * 5 - 3
    y = host(F.batch_norm(x, np.ones(3), np.zeros(3), np.zeros(3), np.ones(3), eps=0.0))
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0.0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1.0, rtol=1e-12)


def test_batch_norm_keeps_float32(rng):
    x = rng.standard_normal((4, 3)).astype(np.float32)
    p = np.ones(3, np.float32)
    y = F.batch_norm(x, p, p * 0, p * 0, p.copy())
    assert y.dtype == np.float32
    with ta.test_mode():
        assert F.batch_norm(x, p, p * 0, p * 0, p.copy()).dtype == np.float32


# -- batch_norm, test mode -----------------------------------------------------------------------
@given(shape=batch_shapes, seed=st.integers(0, 1000))
def test_batch_norm_test_mode_uses_running_statistics(xp, to_xp, shape, seed):
    rng = np.random.default_rng(seed)
    c = shape[1]
    x = rng.standard_normal(shape)
    gamma, beta = rng.standard_normal(c), rng.standard_normal(c)
    rm0, rv0 = rng.standard_normal(c), rng.random(c) + 0.5
    rm, rv = to_xp(rm0.copy()), to_xp(rv0.copy())
    with ta.test_mode():
        y = F.batch_norm(to_xp(x), to_xp(gamma), to_xp(beta), rm, rv, eps=1e-3)
        np.testing.assert_allclose(host(y), reference_batch_norm(x, gamma, beta, rm0, rv0, 1e-3), rtol=1e-10)
        gradcheck(lambda *v: F.batch_norm(*v, rm, rv, eps=1e-3), *to_xp((x, gamma, beta)))
    np.testing.assert_array_equal(ta.to_cpu(rm), rm0)  # left untouched
    np.testing.assert_array_equal(ta.to_cpu(rv), rv0)


def test_batch_norm_test_mode_accepts_one_sample(rng):
    with ta.test_mode():
        y = F.batch_norm(np.array([[2.0, 3.0]]), np.ones(2), np.zeros(2), np.array([1.0, 1.0]), np.array([4.0, 1.0]),
                         eps=0.0)
    np.testing.assert_allclose(host(y), [[0.5, 2.0]])


def test_batch_norm_second_derivatives(xp, to_xp, rng):
    x, gamma, beta = rng.standard_normal((3, 2, 2, 2)), rng.standard_normal(2), rng.standard_normal(2)
    rm, rv = to_xp(np.zeros(2)), to_xp(np.ones(2))
    gradgradcheck(lambda *v: F.batch_norm(*v, rm, rv), *to_xp((x, gamma, beta)))
    with ta.test_mode():
        gradgradcheck(lambda *v: F.batch_norm(*v, rm, rv) ** 2, *to_xp((x, gamma, beta)))


# -- layer_norm ----------------------------------------------------------------------------------------
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple).filter(lambda s: s[-1] >= 2),
       seed=st.integers(0, 1000))
def test_layer_norm_matches_formula_and_gradcheck(xp, to_xp, shape, seed):
    rng = np.random.default_rng(seed)
    d = shape[-1]
    x = rng.standard_normal(shape) * 2 - 1
    gamma, beta = rng.standard_normal(d), rng.standard_normal(d)
    y = F.layer_norm(to_xp(x), to_xp(gamma), to_xp(beta), eps=1e-5)
    mu, var = x.mean(axis=-1, keepdims=True), x.var(axis=-1, keepdims=True)
    np.testing.assert_allclose(host(y), gamma * (x - mu) / np.sqrt(var + 1e-5) + beta, rtol=1e-10, atol=1e-10)
    gradcheck(F.layer_norm, *to_xp((x, gamma, beta)))


def test_layer_norm_is_the_same_in_test_mode(rng):
    x, gamma, beta = rng.standard_normal((3, 4)), rng.standard_normal(4), rng.standard_normal(4)
    with ta.test_mode():
        y_test = host(F.layer_norm(x, gamma, beta))
    np.testing.assert_array_equal(host(F.layer_norm(x, gamma, beta)), y_test)


def test_layer_norm_second_derivatives(xp, to_xp, rng):
    x, gamma, beta = rng.standard_normal((2, 3, 4)), rng.standard_normal(4), rng.standard_normal(4)
    gradgradcheck(F.layer_norm, *to_xp((x, gamma, beta)))


# -- errors -----------------------------------------------------------------------------------------------
def test_batch_norm_errors():
    x = np.zeros((4, 3))
    p = np.zeros(3)
    with pytest.raises(ValueError, match=r"batch_norm: gamma has shape \(4,\) but the input has channel count 3; "
                                         r"expected \(3,\)"):
        F.batch_norm(x, np.zeros(4), p, p, p)
    with pytest.raises(ValueError, match=r"batch_norm: running_var has shape \(3, 1\) .* expected \(3,\)"):
        F.batch_norm(x, p, p, p, np.zeros((3, 1)))
    with pytest.raises(ValueError, match=r"batch_norm: input must be \(N, C\) or \(N, C, H, W\), "
                                         r"got shape \(4, 3, 2\)"):
        F.batch_norm(np.zeros((4, 3, 2)), p, p, p, p)
    with pytest.raises(ValueError, match=r"batch_norm: train mode needs more than one value per channel .* "
                                         r"input of shape \(1, 3\)"):
        F.batch_norm(np.zeros((1, 3)), p, p, p, p)
    with pytest.raises(ValueError, match=r"batch_norm: momentum must be in \[0, 1\], got 1.5"):
        F.batch_norm(x, p, p, p, p, momentum=1.5)


def test_layer_norm_errors():
    with pytest.raises(ValueError, match=r"layer_norm: gamma has shape \(5,\) but the last axis of the input has "
                                         r"size 4; expected \(4,\)"):
        F.layer_norm(np.zeros((2, 4)), np.zeros(5), np.zeros(4))
    with pytest.raises(ValueError, match=r"layer_norm: beta has shape \(4, 1\)"):
        F.layer_norm(np.zeros((2, 4)), np.zeros(4), np.zeros((4, 1)))
