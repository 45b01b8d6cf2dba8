"""sigmoid, relu, leaky_relu, gelu, softplus: values, gradients, stability, dtypes."""
import math

import numpy as np
import pytest
from hypothesis import given

import tinyai as ta
import tinyai.functions as F
from tinyai.testing import gradcheck, gradgradcheck
from tinyai.testing import strategies as tst


def host(v):
    return ta.to_cpu(v.data)


def reference_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def reference_gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


ACTIVATIONS = [
    ("sigmoid", F.sigmoid, reference_sigmoid, tst.float_arrays(), True),
    ("relu", F.relu, lambda x: np.where(x > 0, x, 0.0), tst.nonzero_arrays(), False),
    ("leaky_relu", F.leaky_relu, lambda x: np.where(x > 0, x, 0.01 * x), tst.nonzero_arrays(), False),
    ("leaky_relu_0.2", lambda v: F.leaky_relu(v, slope=0.2), lambda x: np.where(x > 0, x, 0.2 * x),
     tst.nonzero_arrays(), False),
    ("gelu", F.gelu, reference_gelu_tanh, tst.float_arrays(), True),
    ("softplus", F.softplus, lambda x: np.log1p(np.exp(x)), tst.float_arrays(), True),
]


@pytest.mark.parametrize("name, f, reference, inputs, smooth", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
def test_values_and_gradients(xp, to_xp, name, f, reference, inputs, smooth):
    @given(x=inputs)
    def check(x):
        y = f(ta.Variable(to_xp(x)))
        assert ta.get_array_module(y.data) is xp
        np.testing.assert_allclose(host(y), reference(x), rtol=1e-12, atol=1e-15)
        gradcheck(f, to_xp(x))
        if smooth:
            gradgradcheck(f, to_xp(x))

    check()


def test_gelu_is_close_to_the_exact_x_phi_x(xp, to_xp):
    # The tanh form approximates x * Phi(x) (Phi the normal CDF) to within 1e-3.
    x = np.linspace(-6, 6, 241)
    exact = np.array([v * 0.5 * (1 + math.erf(v / math.sqrt(2))) for v in x])
    np.testing.assert_allclose(host(F.gelu(ta.Variable(to_xp(x)))), exact, atol=1e-3)


def test_relu_and_leaky_relu_derivative_at_zero_is_the_left_one(xp, to_xp):
    x = ta.Variable(to_xp(np.array([-1.0, 0.0, 1.0])))
    F.relu(x).backward(to_xp(np.full(3, 2.0)))
    np.testing.assert_array_equal(host(x.grad), [0.0, 0.0, 2.0])
    x.clear_grad()
    F.leaky_relu(x, slope=0.1).backward(to_xp(np.full(3, 2.0)))
    np.testing.assert_allclose(host(x.grad), [0.2, 0.2, 2.0])


def test_relu_second_derivative_away_from_zero(xp, to_xp, rng):
    # relu(x) * x is x^2 for x > 0 and 0 below: its second derivative 2 [x > 0]
    # goes through relu's backward on Variables (inner) and on arrays (outer).
    x = tst.nudge_away(rng.standard_normal((3, 4)), [0.0], 0.1)
    gradgradcheck(lambda v: F.relu(v) * v, to_xp(x))


def test_sigmoid_and_softplus_do_not_overflow(xp, to_xp):
    x = np.array([-1e4, -800.0, 0.0, 800.0, 1e4])
    with np.errstate(over="raise", invalid="raise"):
        s = host(F.sigmoid(ta.Variable(to_xp(x))))
        p = host(F.softplus(ta.Variable(to_xp(x))))
    np.testing.assert_array_equal(s, [0.0, 0.0, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(p, [0.0, 0.0, np.log(2.0), 800.0, 1e4], rtol=1e-15, atol=1e-300)
    v = ta.Variable(to_xp(x))
    F.softplus(v).backward(to_xp(np.ones(5)))
    np.testing.assert_array_equal(host(v.grad), [0.0, 0.0, 0.5, 1.0, 1.0])  # softplus' = sigmoid


def test_sigmoid_gradient_by_hand(xp, to_xp):
    x = ta.Variable(to_xp(np.array([0.0, 2.0])))
    F.sigmoid(x).backward(to_xp(np.ones(2)))
    s = 1 / (1 + math.exp(-2.0))
    np.testing.assert_allclose(host(x.grad), [0.25, s * (1 - s)], rtol=1e-12)


@pytest.mark.parametrize("f", [F.sigmoid, F.relu, F.leaky_relu, F.gelu, F.softplus])
def test_float32_stays_float32(xp, to_xp, f):
    x = ta.Variable(to_xp(np.array([-1.5, 0.5, 2.0], dtype=np.float32)))
    y = f(x)
    assert y.dtype == np.float32
    y.backward(to_xp(np.ones(3, dtype=np.float32)))
    assert x.grad.dtype == np.float32
