"""Elementwise math: exp, log, sin, cos, tanh, sqrt, abs, clip, maximum, minimum.

Forward values against NumPy, first derivatives (gradcheck) and second
derivatives (gradgradcheck) on both backends, with inputs kept off the kinks
of abs/clip and the ties of maximum/minimum.
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


SMOOTH = [
    ("exp", F.exp, np.exp, tst.float_arrays()),
    ("log", F.log, np.log, tst.positive_arrays(margin=0.2)),
    ("sin", F.sin, np.sin, tst.float_arrays()),
    ("cos", F.cos, np.cos, tst.float_arrays()),
    ("tanh", F.tanh, np.tanh, tst.float_arrays()),
    ("sqrt", F.sqrt, np.sqrt, tst.positive_arrays(margin=0.2)),
    ("abs", F.abs, np.abs, tst.nonzero_arrays()),
]


@pytest.mark.parametrize("name, f, reference, inputs", SMOOTH, ids=[s[0] for s in SMOOTH])
def test_forward_first_and_second_derivatives(xp, to_xp, name, f, reference, inputs):
    @given(x=inputs)
    def check(x):
        y = f(ta.Variable(to_xp(x)))
        assert ta.get_array_module(y.data) is xp
        np.testing.assert_allclose(host(y), reference(x), rtol=1e-12, atol=1e-15)
        gradcheck(f, to_xp(x))
        gradgradcheck(f, to_xp(x))

    check()


def test_third_derivative_of_tanh(xp, to_xp):
    # d/dx tanh = 1 - t^2, d2 = -2t(1 - t^2), d3 = -2(1 - t^2)(1 - 3t^2), t = tanh(x):
    # the third pass differentiates the recorded backward of the second.
    x = ta.Variable(to_xp(np.array([-0.8, 0.1, 1.3])))
    F.tanh(x).backward(to_xp(np.ones(3)), create_graph=True)
    for _ in range(2):
        gx = x.grad
        x.clear_grad()
        gx.backward(to_xp(np.ones(3)), create_graph=True)
    t = np.tanh([-0.8, 0.1, 1.3])
    np.testing.assert_allclose(host(x.grad), -2 * (1 - t * t) * (1 - 3 * t * t), rtol=1e-12)


@pytest.mark.parametrize("f, derivative", [
    (F.exp, lambda x: np.exp(x)),
    (F.log, lambda x: 1 / x),
    (F.sin, lambda x: np.cos(x)),
    (F.cos, lambda x: -np.sin(x)),
    (F.tanh, lambda x: 1 / np.cosh(x) ** 2),
    (F.sqrt, lambda x: 0.5 / np.sqrt(x)),
], ids=["exp", "log", "sin", "cos", "tanh", "sqrt"])
def test_derivative_matches_the_textbook_formula(xp, to_xp, f, derivative):
    x = np.array([0.3, 1.0, 2.5])
    v = ta.Variable(to_xp(x))
    f(v).backward(to_xp(np.ones(3)))
    np.testing.assert_allclose(host(v.grad), derivative(x), rtol=1e-12)


def test_abs_derivative_at_zero_is_zero(xp, to_xp):
    x = ta.Variable(to_xp(np.array([-2.0, 0.0, 3.0])))
    F.abs(x).backward(to_xp(np.array([5.0, 5.0, 5.0])))
    np.testing.assert_array_equal(host(x.grad), [-5.0, 0.0, 5.0])


@pytest.mark.parametrize("lo, hi", [(-1.0, 1.0), (None, 0.5), (-0.5, None)])
@given(x=tst.float_arrays())
def test_clip(xp, to_xp, lo, hi, x):
    x = tst.nudge_away(x, [b for b in (lo, hi) if b is not None], 0.1)
    y = F.clip(ta.Variable(to_xp(x)), lo, hi)
    np.testing.assert_array_equal(host(y), np.clip(x, lo, hi))
    gradcheck(lambda v: F.clip(v, lo, hi), to_xp(x))
    gradgradcheck(lambda v: F.clip(v, lo, hi), to_xp(x))


def test_clip_gradient_passes_at_the_bounds_and_stops_outside(xp, to_xp):
    # Documented: the gradient passes where lo <= x <= hi (bounds included).
    x = ta.Variable(to_xp(np.array([-2.0, -1.0, 0.0, 1.0, 2.0])))
    F.clip(x, -1.0, 1.0).backward(to_xp(np.full(5, 3.0)))
    np.testing.assert_array_equal(host(x.grad), [0.0, 3.0, 3.0, 3.0, 0.0])


@st.composite
def untied_pairs(draw):
    """Two broadcastable arrays whose values are all distinct from each other."""
    shape_a, shape_b = draw(tst.broadcastable_shapes())
    size_a = int(np.prod(shape_a, dtype=int))
    values = draw(tst.distinct_arrays(shape=(size_a + int(np.prod(shape_b, dtype=int)),), margin=0.1))
    return values[:size_a].reshape(shape_a), values[size_a:].reshape(shape_b)


@pytest.mark.parametrize("f, reference", [(F.maximum, np.maximum), (F.minimum, np.minimum)],
                         ids=["maximum", "minimum"])
@given(pair=untied_pairs())
def test_maximum_minimum(xp, to_xp, f, reference, pair):
    a, b = pair
    y = f(ta.Variable(to_xp(a)), ta.Variable(to_xp(b)))
    np.testing.assert_array_equal(host(y), reference(a, b))
    gradcheck(f, *to_xp(pair))


@pytest.mark.parametrize("f", [F.maximum, F.minimum], ids=["maximum", "minimum"])
def test_maximum_minimum_ties_send_the_gradient_to_the_first_input(xp, to_xp, f):
    a = ta.Variable(to_xp(np.array([1.0, 2.0, 3.0])))
    b = ta.Variable(to_xp(np.array([1.0, 0.0, 5.0])))
    f(a, b).backward(to_xp(np.array([10.0, 20.0, 30.0])))
    if f is F.maximum:
        np.testing.assert_array_equal(host(a.grad), [10.0, 20.0, 0.0])
        np.testing.assert_array_equal(host(b.grad), [0.0, 0.0, 30.0])
    else:
        np.testing.assert_array_equal(host(a.grad), [10.0, 0.0, 30.0])
        np.testing.assert_array_equal(host(b.grad), [0.0, 20.0, 0.0])


def test_maximum_with_a_scalar_is_a_relu(xp, to_xp):
    x = ta.Variable(to_xp(np.array([-1.0, 2.0], dtype=np.float32)))
    y = F.maximum(x, 0.0)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(host(y), [0.0, 2.0])


@pytest.mark.parametrize("f", [F.maximum, F.minimum], ids=["maximum", "minimum"])
def test_maximum_minimum_name_shapes_that_do_not_broadcast(xp, to_xp, f):
    name = f.__name__
    with pytest.raises(ValueError, match=rf"{name}: shapes \(2,\) and \(3,\) cannot be broadcast together"):
        f(ta.Variable(to_xp(np.ones(2))), ta.Variable(to_xp(np.ones(3))))


@pytest.mark.parametrize("f", [F.exp, F.log, F.sin, F.cos, F.tanh, F.sqrt, F.abs,
                               lambda v: F.clip(v, 0.5, 1.0), lambda v: F.maximum(v, 1.0),
                               lambda v: F.minimum(v, 1.0)])
def test_float32_stays_float32(xp, to_xp, f):
    x = ta.Variable(to_xp(np.array([0.25, 0.75, 2.0], dtype=np.float32)))
    y = f(x)
    assert y.dtype == np.float32
    y.backward(to_xp(np.ones(3, dtype=np.float32)))
    assert x.grad.dtype == np.float32
