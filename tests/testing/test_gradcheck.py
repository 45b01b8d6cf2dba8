"""gradcheck itself: it must catch the bugs it exists for, and say where they are.

Each broken operation below has a plausible, wrong backward. The tests show
gradcheck rejecting it; two of them also show that the weaker all-ones check
(backward of sum(f(x)) against finite differences of sum(f(x))) accepts it.
"""
import pickle

import numpy as np
import pytest

import tinyai as ta
import tinyai.functions as F
from tinyai.autograd import Function
from tinyai.backend import get_array_module
from tinyai.testing import gradcheck, gradgradcheck, numerical_grad
from tinyai.testing.standin import StandInArray, xp as standin_xp


def host(v):
    return ta.to_cpu(v.data)


# -- deliberately broken operations ------------------------------------------------
class BrokenSoftmax(Function):
    """Right forward; backward y * (gy - mean(gy)) instead of y * (gy - sum(y * gy))."""

    def forward(self, x):
        xp = get_array_module(x)
        e = xp.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    def backward(self, gy):
        y, = self.saved_outputs()
        return y * (gy - F.mean(gy, axis=-1, keepdims=True))


class BrokenBatchNorm(Function):
    """Normalise over the batch axis; backward forgets the term through the variance.

    Right: gx = (gy - mean(gy) - x_hat * mean(gy * x_hat)) / sigma.
    Wrong: gx = (gy - mean(gy)) / sigma. Both are 0 when gy is all ones.
    """

    def forward(self, x):
        xp = get_array_module(x)
        self.sigma = xp.sqrt(x.var(axis=0, keepdims=True) + 1e-5)
        return (x - x.mean(axis=0, keepdims=True)) / self.sigma

    def backward(self, gy):
        return (gy - F.mean(gy, axis=0, keepdims=True)) / self.sigma


def all_ones_check(f, x):
    """The weak check: analytic gradient of sum(f(x)) against its finite differences."""
    v = ta.Variable(x)
    y = f(v)
    y.backward(get_array_module(x).ones_like(y.data))
    numeric = numerical_grad(f, x)[0]
    return np.allclose(host(v.grad), numeric, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("broken", [lambda v: BrokenSoftmax()(v), lambda v: BrokenBatchNorm()(v)],
                         ids=["softmax", "batch_norm"])
def test_random_output_gradients_catch_what_all_ones_misses(xp, to_xp, rng, broken):
    x = to_xp(rng.standard_normal((4, 3)))
    assert all_ones_check(broken, x)  # the all-ones check is fooled
    with pytest.raises(AssertionError, match="gradient of input 0"):
        gradcheck(broken, x, seed=1)


def test_the_right_versions_pass(xp, to_xp, rng):
    x = to_xp(rng.standard_normal((4, 3)))
    assert gradcheck(F.softmax, x, seed=1)

    def batch_norm(v):
        centred = v - F.mean(v, axis=0, keepdims=True)
        return centred / F.sqrt(F.mean(centred * centred, axis=0, keepdims=True) + 1e-5)

    assert gradcheck(batch_norm, x, seed=1)


@pytest.mark.parametrize("fast", [True, False])
def test_failure_message_names_input_error_location_and_seed(rng, fast):
    x = rng.standard_normal((2, 3))
    w = rng.standard_normal((2, 3))

    def f(a, b):
        return F.mul(a, BrokenSoftmax()(b))

    with pytest.raises(AssertionError) as info:
        gradcheck(f, x, w, seed=4242, fast=fast)
    message = str(info.value)
    assert "gradient of input 1 (shape (2, 3)) is wrong" in message
    assert "largest error" in message and "at index (" in message
    assert "analytic" in message and "numeric" in message
    assert "seed=4242" in message


def test_same_seed_same_verdict(rng):
    x = rng.standard_normal((3, 3))
    messages = []
    for _ in range(2):
        with pytest.raises(AssertionError) as info:
            gradcheck(lambda v: BrokenSoftmax()(v), x, seed=7)
        messages.append(str(info.value))
    assert messages[0] == messages[1]


class WrongShape(Function):
    def forward(self, x):
        return x * 2

    def backward(self, gy):
        return F.reshape(gy * 2, (1, -1))


class WrongDtype(Function):
    def forward(self, x):
        return x * 2

    def backward(self, gy):
        return (gy * 2).astype(np.float32)  # gradcheck's plain backward hands raw arrays


class GradToLabels(Function):
    """Picks x[i, t_i]; backward also returns a 'gradient' for the integer labels."""

    def forward(self, x, t):
        xp = get_array_module(x)
        return x[xp.arange(len(t)), t]

    def backward(self, gy):
        x, t = self.saved_inputs()
        xp = get_array_module(x)
        gx = xp.zeros_like(x)
        gx[xp.arange(len(t)), t] = gy
        return gx, xp.zeros(t.shape)


class NoisyBackward(Function):
    _noise = np.random.default_rng(0)

    def forward(self, x):
        return x * 2

    def backward(self, gy):
        xp = get_array_module(gy)
        return gy * 2 + xp.asarray(1e-3 * self._noise.standard_normal(gy.shape))


def test_wrong_gradient_shape(xp, to_xp):
    with pytest.raises(AssertionError, match=r"gradient of input 0 has shape \(1, 3\), the input has shape \(3,\)"):
        gradcheck(lambda v: WrongShape()(v), to_xp(np.ones(3)), seed=0)


def test_wrong_gradient_dtype(xp, to_xp):
    with pytest.raises(AssertionError, match="gradient of input 0 has dtype float32, the input has dtype float64"):
        gradcheck(lambda v: WrongDtype()(v), to_xp(np.ones(3)), seed=0)


def test_gradient_given_to_an_integer_input(xp, to_xp, rng):
    # Autograd drops it (labels never require a gradient), so only gradcheck can tell.
    x, t = to_xp(rng.standard_normal((3, 4))), to_xp(np.array([0, 3, 1]))
    with pytest.raises(AssertionError, match=r"input 1 has dtype int64 but received a gradient from "
                                             r"GradToLabels\.backward.*seed=5"):
        gradcheck(lambda a, b: GradToLabels()(a, b), x, t, seed=5)
    assert gradcheck(lambda a, b: F.get_item(a, (xp.arange(3), b)), x, t)  # the same lookup done right


def test_non_deterministic_backward(xp, to_xp):
    with pytest.raises(AssertionError, match="backward run twice gave different gradients for input 0"):
        gradcheck(lambda v: NoisyBackward()(v), to_xp(np.ones(3)), seed=0)


class CubeWithConstantDerivative(Function):
    """x^3 whose backward takes the slope 3 x^2 as a constant kept by forward:
    right once, wrong twice (the slope depends on x, so it must come from
    saved_inputs() to be differentiated again)."""

    def forward(self, x):
        self.slope = 3 * x ** 2
        return x ** 3

    def backward(self, gy):
        return gy * self.slope


def test_gradgradcheck_catches_a_wrong_second_derivative(xp, to_xp, rng):
    x = to_xp(rng.uniform(0.5, 2.0, size=(3,)))
    cube = lambda v: CubeWithConstantDerivative()(v)  # noqa: E731
    assert gradcheck(cube, x, seed=3)
    with pytest.raises(AssertionError, match="gradient of input 0"):
        gradgradcheck(cube, x, seed=3)
    assert gradgradcheck(lambda v: v ** 3, x, seed=3)


def test_gradgradcheck_on_0d_inputs():
    # Regression: a 0-d input shifted by eps * v became a NumPy scalar, was taken
    # for a non-float input and got no gradient, so this correct op failed.
    for seed in range(5):
        assert gradgradcheck(F.div, np.array(0.0), np.array(0.3), seed=seed)


def test_numerical_grad_against_hand_computed_values():
    # f(a, b) = a^2 b at (3, 2): df/da = 2ab = 12, df/db = a^2 = 9.
    def f(a, b):
        return a * a * b

    ga, gb = numerical_grad(f, np.array(3.0), np.array(2.0))
    assert ga == pytest.approx(12.0, rel=1e-8) and gb == pytest.approx(9.0, rel=1e-8)
    # With an output gradient: L = <g, f(x)>, so each entry scales by its g.
    (gx,) = numerical_grad(F.sin, np.array([0.0, np.pi / 3]), grad_outputs=[np.array([2.0, -1.0])])
    np.testing.assert_allclose(gx, [2.0, -0.5], rtol=1e-8)
    assert numerical_grad(lambda a, t: a * 2, np.ones(2), np.array([1, 2]))[1] is None


def test_gradcheck_on_a_float32_input_checks_in_float64(xp, to_xp):
    x = to_xp(np.array([0.1, 0.2, 0.3], dtype=np.float32))
    assert gradcheck(F.tanh, x)
    assert x.dtype == np.float32  # the caller's array is not changed


# -- the stand-in backend ---------------------------------------------------------------
def test_standin_refuses_implicit_conversion_and_numpy_functions():
    x = standin_xp.asarray(np.arange(4.0))
    with pytest.raises(TypeError, match="implicit conversion to a NumPy array is not allowed"):
        np.asarray(x)
    with pytest.raises(TypeError, match=r"numpy\.exp was called on a stand-in"):
        np.exp(x)
    with pytest.raises(TypeError, match=r"numpy\.sum was called on a stand-in"):
        np.sum(x)
    with pytest.raises(TypeError, match=r"numpy\.concatenate was called on a stand-in"):
        np.concatenate([x, x])
    with pytest.raises(TypeError, match="mixed with stand-in"):
        x + np.ones(4)
    with pytest.raises(TypeError):
        np.ones(4) + x
    with pytest.raises(TypeError, match="mixed with stand-in"):
        x[np.array([0, 1])]
    with pytest.raises(TypeError, match="mixed with stand-in"):
        standin_xp.maximum(x, np.zeros(4))


def test_standin_behaves_like_a_device_array():
    host_array = np.array([[1.0, -2.0], [3.0, 4.0]])
    x = standin_xp.asarray(host_array)
    assert ta.get_array_module(x) is standin_xp and ta.get_array_module(ta.Variable(x)) is standin_xp
    assert isinstance(x.sum(), StandInArray) and x.sum().shape == ()  # reductions give 0-d arrays
    assert isinstance(x[0, 0], StandInArray)
    copy = x.get()
    assert isinstance(copy, np.ndarray)
    copy[0, 0] = 100.0
    assert float(x[0, 0]) == 1.0  # .get() copies
    np.testing.assert_array_equal(ta.to_cpu(x.T), host_array.T)
    np.testing.assert_array_equal(ta.to_cpu(standin_xp.exp(x)), np.exp(host_array))
    np.testing.assert_array_equal(ta.to_cpu(x * np.float64(2.0)), host_array * 2)  # NumPy scalars are fine
    target = standin_xp.zeros(3)
    standin_xp.add.at(target, standin_xp.asarray(np.array([0, 0, 2])), 1.0)
    np.testing.assert_array_equal(ta.to_cpu(target), [2.0, 0.0, 1.0])
    x[1] = 0.0
    x += 1.0
    np.testing.assert_array_equal(ta.to_cpu(x), [[2.0, -1.0], [1.0, 1.0]])
    np.testing.assert_array_equal(ta.to_cpu(pickle.loads(pickle.dumps(x))), ta.to_cpu(x))


def test_gradcheck_catches_the_broken_softmax_on_the_standin(rng):
    x = standin_xp.asarray(rng.standard_normal((3, 4)))
    with pytest.raises(AssertionError, match="seed=11"):
        gradcheck(lambda v: BrokenSoftmax()(v), x, seed=11)


def test_gradgradcheck_names_a_backward_that_returns_raw_arrays():
    from tinyai import Function, Variable
    from tinyai.testing import gradcheck, gradgradcheck

    class RawSquare(Function):
        def forward(self, x):
            return x ** 2

        def backward(self, gy):
            x, = self.inputs
            return 2 * x.data * (gy.data if isinstance(gy, Variable) else gy)   # arrays, not Variables

    def raw_square(x):
        return RawSquare()(x)

    x = np.random.default_rng(0).standard_normal(3)
    assert gradcheck(raw_square, x)          # first derivatives are fine either way
    with pytest.raises(TypeError) as info:
        gradgradcheck(raw_square, x)
    message = str(info.value)
    assert "RawSquare" in message and "raw ndarray, not a Variable" in message
    assert "x, = self.saved_inputs()" in message


# -- settings and inputs that would check nothing, or fail for the wrong reason ------------------------------
X = np.array([0.3, -0.7, 1.1])


@pytest.mark.parametrize("check", [gradcheck, gradgradcheck], ids=["gradcheck", "gradgradcheck"])
@pytest.mark.parametrize("kwargs, words", [
    (dict(eps=0), "eps (the finite-difference step) must be a finite number > 0, got 0"),
    (dict(eps=-1e-6), "got -1e-06"),
    (dict(eps=float("nan")), "got nan"),
    (dict(atol="1e-5"), "atol must be a finite number >= 0, got '1e-5'"),
    (dict(rtol=-1.0), "rtol must be a finite number >= 0, got -1.0"),
    (dict(seed="a"), "seed must be a non-negative int or None, got 'a'"),
    (dict(seed=-2), "seed must be a non-negative int or None, got -2"),
])
def test_bad_settings_are_refused_not_reported_as_a_wrong_gradient(check, kwargs, words):
    name = check.__name__
    with pytest.raises(ValueError) as info:
        check(F.tanh, X, **kwargs)
    assert str(info.value).startswith(f"{name}: ") and words in str(info.value)


@pytest.mark.parametrize("check", [gradcheck, gradgradcheck], ids=["gradcheck", "gradgradcheck"])
def test_integer_inputs_alone_check_nothing_and_are_refused(check):
    # An integer array gets no gradient: the check used to return True without comparing anything.
    with pytest.raises(ValueError, match=r"no floating-point input to check \(dtypes int64\)"):
        check(F.tanh, np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="no inputs"):
        check(F.tanh)
    with pytest.raises(TypeError, match="the first argument must be the function to check, got int"):
        check(3, X)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_non_finite_input_is_named(bad):
    # NaN != NaN: the check used to fail with "backward run twice gave different gradients".
    x = X.copy()
    x[1] = bad
    with pytest.raises(ValueError, match=r"gradcheck: input 0 holds 1 (NaN|inf) of 3 values \(first at index \(1,\)\)"):
        gradcheck(F.tanh, x)


def test_numerical_grad_refuses_a_zero_step():
    with pytest.raises(ValueError, match="numerical_grad: eps"):
        numerical_grad(F.tanh, X, eps=0)
