"""Numerical edge cases that used to give NaN or zeros silently (PyTorch's values as the reference)."""
import numpy as np
import pytest

import tinyai as ta
import tinyai.functions as F
from tinyai.testing import gradcheck, gradgradcheck


def test_the_gradient_of_x_to_the_zero_is_zero_everywhere_including_at_zero():
    rng = np.random.default_rng(0)
    x = ta.Variable(np.array([0.0, -0.0, 1.5, -2.0, 0.0]))
    gy = rng.standard_normal(5)
    y = x ** 0
    np.testing.assert_array_equal(y.data, np.ones(5))
    y.backward(gy)
    np.testing.assert_array_equal(x.grad.data, np.zeros(5))   # d/dx 1 = 0 (PyTorch: 0, not NaN)


def test_x_to_the_zero_with_a_graph_and_its_second_derivative():
    x = ta.Variable(np.array([0.0, 2.0]))
    y = F.sum(x ** 0 * x)                # = sum(x): gradient 1 everywhere, also at 0
    y.backward(create_graph=True)
    np.testing.assert_array_equal(x.grad.data, [1.0, 1.0])
    gx = x.grad
    x.grad = None
    F.sum(gx).backward()
    assert x.grad is None or np.array_equal(x.grad.data, [0.0, 0.0])


@pytest.mark.parametrize("c", [0, 0.0, 1, 2, -1, 0.5])
def test_constant_powers_pass_gradcheck_away_from_zero(c):
    x = np.random.default_rng(1).uniform(0.5, 2.0, (3, 4))
    gradcheck(lambda v: v ** c, x)
    gradgradcheck(lambda v: v ** c, x)


def test_an_empty_batch_has_no_mean_loss():
    with pytest.raises(ValueError, match=r"softmax_cross_entropy: got an empty batch \(shape \(0, 4\)\)"):
        F.softmax_cross_entropy(np.zeros((0, 4), np.float32), np.zeros(0, np.int64))
    with pytest.raises(ValueError, match="empty batch"):
        ta.losses.SoftmaxCrossEntropy().loss(np.zeros(0, np.int64), ta.Variable(np.zeros((0, 4), np.float32)))


def test_an_empty_kernel_is_refused_and_a_1x1_kernel_still_works():
    x = np.random.default_rng(2).standard_normal((1, 2, 3, 3))
    with pytest.raises(ValueError, match=r"conv2d: the kernel must be at least 1 x 1, got 0 x 0"):
        F.conv2d(x, np.ones((3, 2, 0, 0)))
    w = np.random.default_rng(3).standard_normal((3, 2, 1, 1))
    expected = np.einsum("oc,nchw->nohw", w[:, :, 0, 0], x)
    np.testing.assert_allclose(F.conv2d(x, w).data, expected, rtol=1e-12)
