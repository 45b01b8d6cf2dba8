"""Loss functions: softmax/sigmoid cross-entropy, mean squared error, Huber."""
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


def reference_softmax_cross_entropy(x, t):
    x2, t2 = x.reshape(-1, x.shape[-1]), t.reshape(-1)
    log_p = x2 - x2.max(axis=1, keepdims=True)
    log_p = log_p - np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    return -np.mean(log_p[np.arange(len(t2)), t2])


@st.composite
def logits_and_labels(draw):
    lead = draw(tst.shapes(min_dims=1, max_dims=2, max_side=4))
    n_classes = draw(st.integers(1, 5))
    x = draw(tst.float_arrays(lead + (n_classes,)))
    t = draw(st.lists(st.integers(0, n_classes - 1), min_size=int(np.prod(lead)), max_size=int(np.prod(lead))))
    return x, np.array(t, dtype=np.int64).reshape(lead)


@given(case=logits_and_labels())
def test_softmax_cross_entropy(xp, to_xp, case):
    x, t = case
    loss = F.softmax_cross_entropy(ta.Variable(to_xp(x)), to_xp(t))
    assert loss.shape == ()
    np.testing.assert_allclose(host(loss), reference_softmax_cross_entropy(x, t), rtol=1e-12, atol=1e-15)
    gradcheck(F.softmax_cross_entropy, to_xp(x), to_xp(t))  # the integer labels must get no gradient


def test_softmax_cross_entropy_gradient_by_hand(xp, to_xp):
    # Gradient (softmax(x) - onehot(t)) / N; equal logits give softmax = 1/C.
    x = ta.Variable(to_xp(np.zeros((2, 4))))
    F.softmax_cross_entropy(x, to_xp(np.array([1, 3]))).backward()
    np.testing.assert_allclose(host(x.grad), [[0.125, -0.375, 0.125, 0.125], [0.125, 0.125, 0.125, -0.375]])


def test_softmax_cross_entropy_second_derivative(xp, to_xp, rng):
    gradgradcheck(F.softmax_cross_entropy, to_xp(rng.standard_normal((3, 4))), to_xp(np.array([0, 3, 1])))


def test_softmax_cross_entropy_over_sequences(xp, to_xp, rng):
    # (N, T, C) logits with (N, T) labels: every (n, t) is an example.
    x, t = rng.standard_normal((2, 3, 4)), np.array([[0, 3, 1], [2, 2, 0]])
    flat = x.reshape(6, 4)
    expected = np.mean(np.log(np.exp(flat).sum(axis=1)) - flat[np.arange(6), t.reshape(6)])
    assert float(host(F.softmax_cross_entropy(ta.Variable(to_xp(x)), to_xp(t)))) == pytest.approx(expected,
                                                                                                 rel=1e-12)
    gradcheck(F.softmax_cross_entropy, to_xp(x), to_xp(t))
    gradgradcheck(F.softmax_cross_entropy, to_xp(x), to_xp(t))


def test_softmax_cross_entropy_huge_logits(xp, to_xp):
    x = np.array([[1e4, -1e4], [1e4, -1e4], [-1e4, -1e4]])
    with np.errstate(over="raise", invalid="raise", under="ignore"):
        right = host(F.softmax_cross_entropy(ta.Variable(to_xp(x[:1])), to_xp(np.array([0]))))
        wrong = host(F.softmax_cross_entropy(ta.Variable(to_xp(x[1:2])), to_xp(np.array([1]))))
        even = host(F.softmax_cross_entropy(ta.Variable(to_xp(x[2:])), to_xp(np.array([1]))))
    assert right == 0.0 and wrong == 2e4 and even == pytest.approx(np.log(2.0), rel=1e-15)
    v = ta.Variable(to_xp(x))
    F.softmax_cross_entropy(v, to_xp(np.array([0, 1, 1]))).backward()
    np.testing.assert_allclose(host(v.grad), np.array([[0.0, 0.0], [1.0, -1.0], [0.5, -0.5]]) / 3, atol=1e-15)


def test_softmax_cross_entropy_bad_labels(xp, to_xp):
    x = ta.Variable(to_xp(np.zeros((2, 3))))
    with pytest.raises(ValueError, match=r"softmax_cross_entropy: labels must lie in \[0, 3\), got values from 0 to 3"):
        F.softmax_cross_entropy(x, to_xp(np.array([0, 3])))
    with pytest.raises(ValueError, match=r"softmax_cross_entropy: labels must lie in \[0, 3\), got values from -1"):
        F.softmax_cross_entropy(x, to_xp(np.array([-1, 2])))
    with pytest.raises(TypeError, match="softmax_cross_entropy: labels must be integers .*got dtype float64"):
        F.softmax_cross_entropy(x, to_xp(np.array([0.0, 1.0])))
    with pytest.raises(ValueError, match=r"softmax_cross_entropy: labels of shape \(3,\) do not match logits of "
                                         r"shape \(2, 3\); expected labels of shape \(2,\)"):
        F.softmax_cross_entropy(x, to_xp(np.array([0, 1, 2])))
    with pytest.raises(ValueError, match=r"softmax_cross_entropy: logits need shape \(N, C\), got \(3,\)"):
        F.softmax_cross_entropy(ta.Variable(to_xp(np.zeros(3))), to_xp(np.array(0)))


def reference_binary_cross_entropy(x, t):
    p = 1.0 / (1.0 + np.exp(-x))
    return -np.mean(t * np.log(p) + (1 - t) * np.log(1 - p))


@given(x=tst.float_arrays(min_dims=1), data=st.data())
def test_sigmoid_cross_entropy(xp, to_xp, x, data):
    t = data.draw(tst.float_arrays(x.shape, low=0.0, high=1.0))
    loss = F.sigmoid_cross_entropy(ta.Variable(to_xp(x)), ta.Variable(to_xp(t)))
    np.testing.assert_allclose(host(loss), reference_binary_cross_entropy(x, t), rtol=1e-10)
    gradcheck(F.sigmoid_cross_entropy, to_xp(x), to_xp(t))  # targets are float: their gradient is checked too
    gradgradcheck(F.sigmoid_cross_entropy, to_xp(x), to_xp(t))


def test_sigmoid_cross_entropy_with_integer_targets_and_huge_logits(xp, to_xp):
    x = np.array([1e4, -1e4, 1e4, 0.0])
    t = np.array([1, 0, 0, 1])
    with np.errstate(over="raise", invalid="raise", under="ignore"):
        loss = host(F.sigmoid_cross_entropy(ta.Variable(to_xp(x)), to_xp(t)))
    np.testing.assert_allclose(loss, (0.0 + 0.0 + 1e4 + np.log(2.0)) / 4, rtol=1e-15)
    gradcheck(F.sigmoid_cross_entropy, to_xp(np.array([0.5, -1.0, 2.0])), to_xp(np.array([1, 0, 1])))


def test_sigmoid_cross_entropy_shape_mismatch(xp, to_xp):
    with pytest.raises(ValueError, match=r"sigmoid_cross_entropy: logits of shape \(3,\) and targets of shape "
                                         r"\(2,\) differ"):
        F.sigmoid_cross_entropy(ta.Variable(to_xp(np.zeros(3))), to_xp(np.zeros(2)))


@given(x=tst.float_arrays(min_dims=0), data=st.data())
def test_mean_squared_error(xp, to_xp, x, data):
    t = data.draw(tst.float_arrays(x.shape))
    loss = F.mean_squared_error(ta.Variable(to_xp(x)), ta.Variable(to_xp(t)))
    np.testing.assert_allclose(host(loss), np.mean((x - t) ** 2), rtol=1e-12, atol=1e-15)
    gradcheck(F.mean_squared_error, to_xp(x), to_xp(t))
    gradgradcheck(F.mean_squared_error, to_xp(x), to_xp(t))


def test_mean_squared_error_shape_mismatch(xp, to_xp):
    with pytest.raises(ValueError, match=r"mean_squared_error: prediction of shape \(3,\) and target of shape "
                                         r"\(3, 1\) differ"):
        F.mean_squared_error(ta.Variable(to_xp(np.zeros(3))), ta.Variable(to_xp(np.zeros((3, 1)))))


def reference_huber(x, t, delta):
    d = np.abs(x - t)
    return np.mean(np.where(d <= delta, 0.5 * d ** 2, delta * d - 0.5 * delta ** 2))


@pytest.mark.parametrize("delta", [1.0, 0.3])
@given(x=tst.float_arrays(min_dims=1), data=st.data())
def test_huber_loss(xp, to_xp, delta, x, data):
    t = data.draw(tst.float_arrays(x.shape))
    t = x - tst.nudge_away(x - t, [-delta, delta], 0.05)  # keep x - t off the two kinks
    loss = F.huber_loss(ta.Variable(to_xp(x)), ta.Variable(to_xp(t)), delta=delta)
    np.testing.assert_allclose(host(loss), reference_huber(x, t, delta), rtol=1e-12, atol=1e-15)
    gradcheck(lambda a, b: F.huber_loss(a, b, delta=delta), to_xp(x), to_xp(t))
    gradgradcheck(lambda a, b: F.huber_loss(a, b, delta=delta), to_xp(x), to_xp(t))


def test_huber_gradient_is_the_clipped_difference(xp, to_xp):
    x = ta.Variable(to_xp(np.array([0.0, 0.0, 0.0, 0.0])))
    t = to_xp(np.array([-3.0, -0.5, 0.5, 3.0]))
    F.huber_loss(x, t, delta=1.0).backward()
    np.testing.assert_allclose(host(x.grad), np.array([1.0, 0.5, -0.5, -1.0]) / 4)


def test_huber_shape_mismatch(xp, to_xp):
    with pytest.raises(ValueError, match=r"huber_loss: prediction of shape \(2,\) and target of shape \(3,\) differ"):
        F.huber_loss(ta.Variable(to_xp(np.zeros(2))), ta.Variable(to_xp(np.zeros(3))))


@pytest.mark.parametrize("loss", [
    lambda x, to_xp: F.softmax_cross_entropy(x, to_xp(np.array([0, 2]))),
    lambda x, to_xp: F.sigmoid_cross_entropy(x, to_xp(np.ones((2, 3), dtype=np.float32))),
    lambda x, to_xp: F.mean_squared_error(x, to_xp(np.ones((2, 3), dtype=np.float32))),
    lambda x, to_xp: F.huber_loss(x, to_xp(np.ones((2, 3), dtype=np.float32))),
], ids=["softmax_cross_entropy", "sigmoid_cross_entropy", "mean_squared_error", "huber_loss"])
def test_float32_stays_float32(xp, to_xp, loss):
    x = ta.Variable(to_xp(np.array([[0.5, 1.0, 2.0], [-1.0, 0.0, 3.0]], dtype=np.float32)))
    y = loss(x, to_xp)
    assert y.dtype == np.float32 and y.shape == ()
    y.backward()
    assert x.grad.dtype == np.float32


def test_softmax_cross_entropy_gradient_is_differentiable_in_the_logits_and_the_upstream_gradient(xp, to_xp, rng):
    # The loss's gradient gx = (softmax(x) - onehot) * s / N is an operation of
    # its own (one fused kernel in a plain backward): its derivatives with
    # respect to x and to the upstream gradient s, and theirs again.
    t = to_xp(np.array([[0, 3, 1], [2, 2, 0]]))

    def gradient(x, s):
        with ta.enable_grad():
            F.softmax_cross_entropy(x, t).backward(s * 1.0, create_graph=True)
        gx, x.grad = x.grad, None  # the check's own backward accumulates into x.grad next
        return gx

    x, s = to_xp(rng.standard_normal((2, 3, 4))), to_xp(np.array(rng.uniform(0.5, 2.0)))
    gradcheck(gradient, x, s)
    gradgradcheck(gradient, x, s)
