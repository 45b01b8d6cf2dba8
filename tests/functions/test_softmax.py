"""softmax and log_softmax: values, gradients with random output gradients, stability."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinyai as ta
import tinyai.functions as F
from tinyai.testing import gradcheck, gradgradcheck
from tinyai.testing import strategies as tst


def host(v):
    return ta.to_cpu(v.data)


def reference_softmax(x, axis):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


@given(x=tst.float_arrays(min_dims=1), data=st.data())
def test_softmax_and_log_softmax_values_and_gradients(xp, to_xp, x, data):
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    p = F.softmax(ta.Variable(to_xp(x)), axis=axis)
    np.testing.assert_allclose(host(p), reference_softmax(x, axis), rtol=1e-12)
    np.testing.assert_allclose(host(p).sum(axis=axis), 1.0, rtol=1e-12)
    log_p = F.log_softmax(ta.Variable(to_xp(x)), axis=axis)
    np.testing.assert_allclose(host(log_p), np.log(reference_softmax(x, axis)), rtol=1e-12, atol=1e-12)
    gradcheck(lambda v: F.softmax(v, axis=axis), to_xp(x))
    gradcheck(lambda v: F.log_softmax(v, axis=axis), to_xp(x))


@pytest.mark.parametrize("f", [F.softmax, F.log_softmax], ids=["softmax", "log_softmax"])
def test_second_derivatives(xp, to_xp, rng, f):
    gradgradcheck(f, to_xp(rng.standard_normal((3, 4))))
    gradgradcheck(lambda v: f(v, axis=0), to_xp(rng.standard_normal((3, 4))))


def test_softmax_gradient_by_hand(xp, to_xp):
    # d softmax_i / d x_j = y_i (delta_ij - y_j); with y = (1/2, 1/2) and gy = (1, 0): gx = (1/4, -1/4).
    x = ta.Variable(to_xp(np.array([0.3, 0.3])))
    F.softmax(x).backward(to_xp(np.array([1.0, 0.0])))
    np.testing.assert_allclose(host(x.grad), [0.25, -0.25], rtol=1e-12)


def test_huge_logits_give_exact_finite_values(xp, to_xp):
    x = np.array([[1e4, -1e4, 0.0], [1e4, 1e4, -1e4], [-1e4, -1e4, -1e4]])
    with np.errstate(over="raise", invalid="raise", under="ignore"):
        p = host(F.softmax(ta.Variable(to_xp(x))))
        log_p = host(F.log_softmax(ta.Variable(to_xp(x))))
    np.testing.assert_array_equal(p, [[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3]])
    np.testing.assert_allclose(log_p, [[0.0, -2e4, -1e4], [-np.log(2), -np.log(2), -2e4 - np.log(2)],
                                       [-np.log(3)] * 3], rtol=1e-15)
    v = ta.Variable(to_xp(x))
    F.log_softmax(v).backward(to_xp(np.array([[1.0, 0.0, 0.0]] * 3)))
    assert np.all(np.isfinite(host(v.grad)))
    np.testing.assert_allclose(host(v.grad)[0], [0.0, 0.0, 0.0], atol=1e-15)


@pytest.mark.parametrize("f", [F.softmax, F.log_softmax], ids=["softmax", "log_softmax"])
def test_float32_stays_float32(xp, to_xp, f):
    x = ta.Variable(to_xp(np.array([[0.5, 1.0, 2.0]], dtype=np.float32)))
    y = f(x)
    assert y.dtype == np.float32
    y.backward(to_xp(np.array([[1.0, -1.0, 0.5]], dtype=np.float32)))
    assert x.grad.dtype == np.float32
