"""sum, mean, max, min, var, logsumexp over chosen axes, with keepdims."""
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


def reference_logsumexp(x, axis, keepdims):
    m = np.max(x, axis=axis, keepdims=True)
    y = m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))
    return y if keepdims else np.squeeze(y, axis=axis)


@st.composite
def array_axis_keepdims(draw, elements=None):
    """An array, an axis argument for it (None, an int, possibly negative, or a tuple) and keepdims."""
    x = draw(elements if elements is not None else tst.float_arrays(min_dims=0))
    if x.ndim == 0:
        axis = None
    else:
        axis = draw(st.one_of(
            st.none(),
            st.integers(-x.ndim, x.ndim - 1),
            st.lists(st.integers(0, x.ndim - 1), min_size=1, max_size=x.ndim, unique=True).map(tuple)))
    return x, axis, draw(st.booleans())


REDUCTIONS = [
    ("sum", F.sum, np.sum, None),
    ("mean", F.mean, np.mean, None),
    ("max", F.max, np.max, tst.distinct_arrays(min_dims=0)),  # no ties: one winner per slice
    ("min", F.min, np.min, tst.distinct_arrays(min_dims=0)),
    ("var", F.var, np.var, None),
    ("logsumexp", F.logsumexp, reference_logsumexp, None),
]


@pytest.mark.parametrize("name, f, reference, elements", REDUCTIONS, ids=[r[0] for r in REDUCTIONS])
def test_values_and_gradients(xp, to_xp, name, f, reference, elements):
    @given(case=array_axis_keepdims(elements))
    def check(case):
        x, axis, keepdims = case
        y = f(ta.Variable(to_xp(x)), axis=axis, keepdims=keepdims)
        expected = reference(x, axis=axis, keepdims=keepdims)
        assert y.shape == np.shape(expected)
        np.testing.assert_allclose(host(y), expected, rtol=1e-12, atol=1e-14)
        gradcheck(lambda v: f(v, axis=axis, keepdims=keepdims), to_xp(x))

    check()


@pytest.mark.parametrize("f", [F.sum, F.mean, F.var, F.logsumexp], ids=["sum", "mean", "var", "logsumexp"])
def test_second_derivatives(xp, to_xp, rng, f):
    x = rng.standard_normal((3, 4))
    gradgradcheck(lambda v: f(v, axis=1), to_xp(x))
    gradgradcheck(f, to_xp(x))
    # sum and mean alone have constant first derivatives: composed with a
    # square, their backward formulas enter the second derivative.
    gradgradcheck(lambda v: f(v * v, axis=0, keepdims=True), to_xp(x))


@pytest.mark.parametrize("f", [F.max, F.min], ids=["max", "min"])
def test_ties_share_the_gradient_equally(xp, to_xp, f):
    # Documented: tied extremes each get gy / (number of ties); the shares add up to gy.
    sign = 1.0 if f is F.max else -1.0
    a = sign * np.array([[1.0, 3.0, 3.0, 3.0], [2.0, 0.0, 2.0, -1.0]])
    x = ta.Variable(to_xp(a))
    f(x, axis=1).backward(to_xp(np.array([6.0, 10.0])))
    np.testing.assert_allclose(host(x.grad), [[0.0, 2.0, 2.0, 2.0], [5.0, 0.0, 5.0, 0.0]], rtol=1e-15)
    x.clear_grad()
    f(x).backward()  # over all axes: the three tied 3s share one gradient of 1
    np.testing.assert_allclose(host(x.grad), [[0.0, 1 / 3, 1 / 3, 1 / 3], [0.0, 0.0, 0.0, 0.0]], rtol=1e-15)


def test_var_with_ddof_matches_numpy(xp, to_xp, rng):
    a = rng.standard_normal((4, 5))
    for ddof in (0, 1):
        np.testing.assert_allclose(host(F.var(ta.Variable(to_xp(a)), axis=0, ddof=ddof)),
                                   np.var(a, axis=0, ddof=ddof), rtol=1e-12)
    gradcheck(lambda v: F.var(v, axis=0, ddof=1), to_xp(a))


def test_mean_gradient_by_hand(xp, to_xp):
    x = ta.Variable(to_xp(np.ones((2, 4))))
    F.mean(x, axis=1).backward(to_xp(np.array([4.0, 8.0])))
    np.testing.assert_array_equal(host(x.grad), [[1.0] * 4, [2.0] * 4])


def test_logsumexp_does_not_overflow(xp, to_xp):
    a = np.array([[1e4, 1e4], [-1e4, -1e4], [1e4, -1e4]])
    with np.errstate(over="raise", under="ignore", invalid="raise"):
        y = host(F.logsumexp(ta.Variable(to_xp(a)), axis=1))
    np.testing.assert_allclose(y, [1e4 + np.log(2.0), -1e4 + np.log(2.0), 1e4], rtol=1e-15)
    x = ta.Variable(to_xp(a))
    F.logsumexp(x, axis=1).backward(to_xp(np.ones(3)))
    # exp(x - logsumexp): the rounding of 1e4 + log 2 (about 1e-12) is the only error.
    np.testing.assert_allclose(host(x.grad), [[0.5, 0.5], [0.5, 0.5], [1.0, 0.0]], rtol=1e-11)


@pytest.mark.parametrize("f, name", [(F.sum, "sum"), (F.mean, "mean"), (F.max, "max"), (F.min, "min"),
                                     (F.var, "var"), (F.logsumexp, "logsumexp")])
def test_axis_out_of_range_is_named(xp, to_xp, f, name):
    with pytest.raises(ValueError, match=rf"^{name}: axis 2 is out of range for an input of shape \(2, 3\) "
                                         rf"\(2 dimensions\)$"):
        f(ta.Variable(to_xp(np.ones((2, 3)))), axis=2)


REDUCTIONS = [(F.sum, "sum"), (F.mean, "mean"), (F.max, "max"), (F.min, "min"), (F.var, "var"),
              (F.logsumexp, "logsumexp")]


@pytest.mark.parametrize("f, name", REDUCTIONS)
@pytest.mark.parametrize("keepdims", ["yes", "no", 1, 0, None, [True]])
def test_keepdims_must_be_a_bool(f, name, keepdims):
    # "no" is truthy and 1 is not a flag: each was taken as keepdims=True (or failed inside NumPy).
    x = ta.Variable(np.ones((2, 3)))
    with pytest.raises(TypeError, match=rf"^{name}: keepdims must be True or False, got "):
        f(x, axis=1, keepdims=keepdims)


@pytest.mark.parametrize("f, name", REDUCTIONS)
def test_numpy_bool_keepdims_is_a_bool(f, name):
    x = ta.Variable(np.arange(6.0).reshape(2, 3))
    assert f(x, axis=1, keepdims=np.True_).shape == (2, 1)
    assert f(x, axis=1, keepdims=np.False_).shape == (2,)


@pytest.mark.parametrize("f, name", REDUCTIONS)
@pytest.mark.parametrize("axis, error, words", [
    (True, TypeError, "axis must be an int, a tuple of ints or None, got bool True"),
    ("1", TypeError, "axis must be an int, a tuple of ints or None, got str '1'"),
    (1.0, TypeError, "got float 1.0"),
    ((0, "1"), TypeError, "axis entries must be ints, got str '1' in axis=(0, '1')"),
    ((0, 1.0), TypeError, "axis entries must be ints, got float 1.0"),
    ((1, -1), ValueError, "axis=(1, -1) names the same axis twice (input of shape (2, 3))"),
    ((0, -3), ValueError, "axis -3 is out of range for an input of shape (2, 3)"),
])
def test_bad_axis_is_named(f, name, axis, error, words):
    with pytest.raises(error) as caught:
        f(ta.Variable(np.ones((2, 3))), axis=axis)
    assert str(caught.value).startswith(f"{name}: ") and words in str(caught.value)


@pytest.mark.parametrize("ddof", [-1, 0.5, "1", True])
def test_var_ddof_must_be_a_non_negative_int(ddof):
    with pytest.raises(ValueError, match=r"^var: ddof must be a non-negative int, got "):
        F.var(ta.Variable(np.ones((4, 3))), axis=0, ddof=ddof)


def test_numpy_integer_axes_are_accepted():
    x = ta.Variable(np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(F.sum(x, axis=np.int64(1)).data, [3.0, 12.0])
    np.testing.assert_array_equal(F.sum(x, axis=[np.int32(0), 1]).data, 15.0)


@pytest.mark.parametrize("f, name", [(F.mean, "mean"), (F.max, "max"), (F.min, "min")])
def test_empty_input_is_refused(xp, to_xp, f, name):
    with pytest.raises(ValueError, match=rf"{name}: the input of shape \(0, 3\) is empty"):
        f(ta.Variable(to_xp(np.ones((0, 3)))))


def test_var_without_degrees_of_freedom(xp, to_xp):
    with pytest.raises(ValueError, match=r"var: 1 elements over axis 0 with ddof=1 leave no degrees of freedom"):
        F.var(ta.Variable(to_xp(np.ones((1, 3)))), axis=0, ddof=1)


@pytest.mark.parametrize("f", [F.sum, F.mean, F.max, F.min, F.var, F.logsumexp])
def test_float32_stays_float32(xp, to_xp, f):
    x = ta.Variable(to_xp(np.array([[0.5, 1.0, 2.0], [3.0, -1.0, 0.25]], dtype=np.float32)))
    y = f(x, axis=1)
    assert y.dtype == np.float32
    y.backward(to_xp(np.ones(2, dtype=np.float32)))
    assert x.grad.dtype == np.float32


def test_methods_on_variable(xp, to_xp, rng):
    a = rng.standard_normal((2, 3))
    x = ta.Variable(to_xp(a))
    np.testing.assert_allclose(host(x.sum(axis=0)), a.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(host(x.mean(axis=1, keepdims=True)), a.mean(axis=1, keepdims=True), rtol=1e-12)
    assert host(x.max()) == a.max() and host(x.min()) == a.min()
