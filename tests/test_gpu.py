"""The same functions on real CuPy arrays: runs only where a CUDA device answers.

Without a GPU the whole module is skipped with the reason that
``tinyai.backend.gpu_unavailable_reason()`` gives (CuPy missing, or no
device). The CPU stand-in (tests use the ``xp`` fixture) covers
backend-cleanness everywhere else; this file proves it on the real thing.
"""
import numpy as np
import pytest

import tinyai as ta
import tinyai.functions as F
from tinyai.backend import gpu_unavailable_reason, is_gpu_available
from tinyai.testing import gradcheck, gradgradcheck

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not is_gpu_available(), reason=gpu_unavailable_reason() or "no GPU"),
]


@pytest.fixture(scope="module")
def cupy():
    import cupy  # noqa: PLC0415 - only where a GPU answered

    return cupy


def test_arrays_stay_on_the_device(cupy, rng):
    a = rng.standard_normal((3, 4))
    x = ta.Variable(ta.to_gpu(a))
    assert ta.get_array_module(x) is cupy
    y = F.sum(F.tanh(x) * 2.0, axis=1)
    assert isinstance(y.data, cupy.ndarray)
    np.testing.assert_allclose(ta.to_cpu(y.data), (np.tanh(a) * 2.0).sum(axis=1), rtol=1e-12)
    y.backward(cupy.ones(3))
    assert isinstance(x.grad.data, cupy.ndarray)
    np.testing.assert_allclose(ta.to_cpu(x.grad.data), 2.0 / np.cosh(a) ** 2, rtol=1e-12)


@pytest.mark.parametrize("f", [
    F.exp, F.tanh, F.sigmoid, F.gelu, F.softplus, F.softmax, F.log_softmax,
    lambda v: F.logsumexp(v, axis=1), lambda v: F.var(v, axis=0),
    lambda v: F.max(v, axis=1), lambda v: F.transpose(v), lambda v: F.split(v, 2, axis=1)[1],
], ids=["exp", "tanh", "sigmoid", "gelu", "softplus", "softmax", "log_softmax", "logsumexp", "var",
        "max", "transpose", "split"])
def test_gradcheck_on_the_gpu(cupy, rng, f):
    # distinct values (a permutation) so max has no ties
    x = cupy.asarray(rng.permutation(12).reshape(3, 4) * 0.3 - 1.5)
    assert gradcheck(f, x, seed=0)


def test_matmul_linear_and_losses_on_the_gpu(cupy, rng):
    x, W, b = (cupy.asarray(rng.standard_normal(s)) for s in ((4, 3), (3, 5), (5,)))
    labels = cupy.asarray(np.array([0, 4, 2, 1]))
    assert gradcheck(F.matmul, x, W, seed=0)
    assert gradcheck(F.linear, x, W, b, seed=0)
    assert gradcheck(lambda a, w: F.softmax_cross_entropy(F.matmul(a, w), labels), x, W, seed=0)
    assert gradgradcheck(F.softmax, x, seed=0)


def test_repeated_indices_scatter_add_on_the_gpu(cupy):
    x = ta.Variable(cupy.asarray(np.arange(6.0).reshape(3, 2)))
    index = cupy.asarray(np.array([0, 0, 2]))
    x[index].backward(cupy.ones((3, 2)))
    np.testing.assert_array_equal(ta.to_cpu(x.grad.data), [[2.0, 2.0], [0.0, 0.0], [1.0, 1.0]])


def test_huge_logits_on_the_gpu(cupy):
    x = cupy.asarray(np.array([[1e4, -1e4, 0.0]]))
    np.testing.assert_array_equal(ta.to_cpu(F.softmax(x).data), [[1.0, 0.0, 0.0]])
    assert float(F.softmax_cross_entropy(x, cupy.asarray(np.array([1]))).data) == 2e4
