"""add, sub, mul, div, neg, pow and the reflected operators, with broadcasting.

Every check runs on NumPy and on the CPU stand-in for CuPy (the ``xp``
fixture); values are compared with plain NumPy formulas written here.
"""
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


def var(to_xp, a):
    return ta.Variable(to_xp(a))


BINARY = [
    (F.add, np.add),
    (F.sub, np.subtract),
    (F.mul, np.multiply),
]


@pytest.mark.parametrize("f, reference", BINARY, ids=["add", "sub", "mul"])
@given(pair=tst.broadcastable_arrays())
def test_binary_matches_numpy_and_gradcheck(xp, to_xp, f, reference, pair):
    a, b = pair
    y = f(var(to_xp, a), var(to_xp, b))
    assert ta.get_array_module(y.data) is xp
    np.testing.assert_allclose(host(y), reference(a, b), rtol=1e-12)
    gradcheck(f, *to_xp(pair))


@given(pair=tst.broadcastable_arrays())
def test_div_matches_numpy_and_gradcheck(xp, to_xp, pair):
    a, b = pair[0], tst.nudge_away(pair[1], [0.0], 0.3)  # keep 1/b well conditioned
    np.testing.assert_allclose(host(F.div(var(to_xp, a), var(to_xp, b))), a / b, rtol=1e-12)
    gradcheck(F.div, to_xp(a), to_xp(b))
    gradgradcheck(F.div, to_xp(a), to_xp(b))


@given(x=tst.float_arrays())
def test_neg(xp, to_xp, x):
    np.testing.assert_array_equal(host(-var(to_xp, x)), -x)
    gradcheck(F.neg, to_xp(x))


def test_add_sub_neg_second_derivatives(xp, to_xp, rng):
    # add, sub and neg alone have constant first derivatives; composed with a
    # product their backward formulas enter the second derivative, and with a
    # broadcast operand so does sum_to.
    a, b = rng.standard_normal((3, 4)), rng.standard_normal(4)
    gradgradcheck(lambda u, v: (u + v) * (u - v), to_xp(a), to_xp(b))
    gradgradcheck(lambda u, v: -(u * v) + u, to_xp(a), to_xp(b))


def test_broadcast_gradient_is_summed_back_to_the_bias_shape(xp, to_xp, rng):
    # A bias of shape (3,) added to 4 rows gets the column sums of gy.
    x = var(to_xp, rng.standard_normal((4, 3)))
    b = var(to_xp, rng.standard_normal(3))
    gy = rng.standard_normal((4, 3))
    F.add(x, b).backward(to_xp(gy))
    assert b.grad.shape == (3,)
    np.testing.assert_allclose(host(b.grad), gy.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(host(x.grad), gy, rtol=1e-12)


def test_mul_broadcast_gradient_by_hand(xp, to_xp):
    # y = a * b with a (2, 1), b (3,): dL/da_i = sum_j gy_ij b_j, dL/db_j = sum_i gy_ij a_i.
    a = var(to_xp, np.array([[2.0], [-1.0]]))
    b = var(to_xp, np.array([1.0, 3.0, 0.5]))
    gy = np.array([[1.0, 0.0, 2.0], [0.5, 1.0, -1.0]])
    F.mul(a, b).backward(to_xp(gy))
    np.testing.assert_allclose(host(a.grad), [[1.0 + 0.0 + 1.0], [0.5 + 3.0 - 0.5]])
    np.testing.assert_allclose(host(b.grad), [2.0 - 0.5, -1.0, 4.0 + 1.0])


@pytest.mark.parametrize("c", [2, 3, 0.5, -1.5])
@given(x=tst.positive_arrays(margin=0.3))
def test_pow_constant_exponent(xp, to_xp, c, x):
    np.testing.assert_allclose(host(var(to_xp, x) ** c), x ** c, rtol=1e-12)
    gradcheck(lambda v: F.pow(v, c), to_xp(x))
    gradgradcheck(lambda v: F.pow(v, c), to_xp(x))


@given(x=tst.float_arrays())
def test_integer_power_of_negative_numbers(xp, to_xp, x):
    np.testing.assert_allclose(host(var(to_xp, x) ** 3), x ** 3, rtol=1e-12)
    gradcheck(lambda v: v ** 3, to_xp(x))


@given(pair=tst.broadcastable_arrays())
def test_pow_with_variable_exponent(xp, to_xp, pair):
    base = np.abs(pair[0]) + 0.5  # a ** b with b real needs a > 0
    exponent = pair[1]
    np.testing.assert_allclose(host(F.pow(var(to_xp, base), var(to_xp, exponent))), base ** exponent, rtol=1e-12)
    gradcheck(lambda a, b: F.pow(a, b), to_xp(base), to_xp(exponent))


@given(x=tst.positive_arrays(margin=0.3))
def test_reflected_operators(xp, to_xp, x):
    v = var(to_xp, x)
    np.testing.assert_allclose(host(2.0 - v), 2.0 - x, rtol=1e-12)
    np.testing.assert_allclose(host(2.0 / v), 2.0 / x, rtol=1e-12)
    np.testing.assert_allclose(host(2.0 ** v), 2.0 ** x, rtol=1e-12)
    np.testing.assert_allclose(host(3.0 + v), 3.0 + x, rtol=1e-12)
    np.testing.assert_allclose(host(3.0 * v), 3.0 * x, rtol=1e-12)
    gradcheck(lambda a: 2.0 - a, to_xp(x))
    gradcheck(lambda a: 2.0 / a, to_xp(x))
    gradcheck(lambda a: 2.0 ** a, to_xp(x))


def test_reflected_operator_gradients_by_hand(xp, to_xp):
    x = var(to_xp, np.array([2.0]))
    (3.0 / x).backward()
    assert host(x.grad)[0] == pytest.approx(-3.0 / 4.0)  # d/dx 3/x = -3/x^2
    x.clear_grad()
    (2.0 ** x).backward()
    assert host(x.grad)[0] == pytest.approx(4.0 * np.log(2.0))  # d/dx 2^x = 2^x ln 2


@pytest.mark.parametrize("expression", [
    lambda v: v * 2.0, lambda v: 2.0 * v, lambda v: v + 1, lambda v: v - 0.5, lambda v: 1.0 - v,
    lambda v: v / 3.0, lambda v: 3.0 / v, lambda v: v ** 2, lambda v: 2.0 ** v, lambda v: -v,
    lambda v: v * v, lambda v: v / v,
])
def test_float32_stays_float32(xp, to_xp, expression):
    x = var(to_xp, np.array([0.5, 1.5, 2.0], dtype=np.float32))
    y = expression(x)
    assert y.dtype == np.float32
    y.backward(to_xp(np.ones(3, dtype=np.float32)))
    assert x.grad.dtype == np.float32


@pytest.mark.parametrize("f, name", [(F.add, "add"), (F.sub, "sub"), (F.mul, "mul"), (F.div, "div")])
def test_shapes_that_do_not_broadcast_are_named(xp, to_xp, f, name):
    a = var(to_xp, np.ones((2, 3)))
    b = var(to_xp, np.ones(4))
    with pytest.raises(ValueError, match=rf"^{name}: shapes \(2, 3\) and \(4,\) cannot be broadcast together$"):
        f(a, b)


def test_pow_with_shapes_that_do_not_broadcast(xp, to_xp):
    with pytest.raises(ValueError, match=r"pow: shapes \(2,\) and \(3,\) cannot be broadcast together"):
        F.pow(var(to_xp, np.ones(2)), var(to_xp, np.ones(3)))


@given(pair=tst.broadcastable_arrays())
def test_mul_second_derivative(xp, to_xp, pair):
    gradgradcheck(F.mul, *to_xp(pair))


@given(st.integers(-5, 5), st.integers(-5, 5))
def test_integer_variables_stay_integer_and_get_no_grad(xp, to_xp, a, b):
    y = var(to_xp, np.array([a])) + var(to_xp, np.array([b]))
    assert y.dtype.kind == "i" and host(y)[0] == a + b
    assert not y.requires_grad


def test_pow_gradient_at_a_zero_base_by_hand(xp, to_xp, rng):
    # d/db a^b = a^b ln a is 0 * -inf as written where a = 0; its value there is 0 for b >= 0
    # (a^b is 0 for every b > 0, PyTorch says 0 too), and -inf stays -inf for b < 0.
    # d/da = b a^(b-1): 0 at b = 0 (a^0 is constant), 1 at b = 1, 0 for b > 1, +inf for 0 < b < 1.
    a = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0])
    b = np.array([2.0, 1.0, 0.5, 0.0, 3.5, 0.0, -1.0])
    gy = rng.uniform(0.5, 2.0, size=7)
    va, vb = var(to_xp, a), var(to_xp, b)
    with np.errstate(divide="ignore"):
        F.pow(va, vb).backward(to_xp(gy))
    np.testing.assert_array_equal(host(vb.grad), [0.0, 0.0, 0.0, 0.0, 0.0, np.log(2.0) * gy[5], -np.inf])
    np.testing.assert_array_equal(host(va.grad), [0.0, gy[1], np.inf, 0.0, 0.0, 0.0, -np.inf])


def test_pow_exponent_gradient_through_zero_bases(xp, to_xp, rng):
    # Zero bases in a constant base array, exponents away from the kink at b = 0: finite
    # differences in b see 0^b = 0 on both sides, so the exact gradient there is 0.
    base = to_xp(np.where(rng.random((3, 4)) < 0.5, 0.0, rng.uniform(0.5, 2.0, (3, 4))))
    exponent = rng.uniform(0.5, 2.5, (3, 4))
    assert gradcheck(lambda b: F.pow(base, b), to_xp(exponent))
    assert gradgradcheck(lambda b: F.pow(base, b), to_xp(exponent))
    # broadcast: one exponent per column, bases with zeros in every column
    assert gradcheck(lambda b: F.pow(base, b), to_xp(exponent[0]))


def test_pow_gradients_near_zero_bases(xp, to_xp, rng):
    # Both inputs, bases small but away from the kink at 0: the shifted formula must not touch them.
    a = rng.uniform(0.05, 0.3, (2, 3))
    b = rng.uniform(-1.5, 2.5, (2, 3))
    assert gradcheck(F.pow, to_xp(a), to_xp(b))
    assert gradgradcheck(F.pow, to_xp(a), to_xp(b))

