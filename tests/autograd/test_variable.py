"""Variable: construction, properties, operators and dtype rules."""
import numpy as np
import pytest

import tinyai as ta
import tinyai.functions as F


def test_python_data_is_converted():
    v = ta.Variable([1.0, 2.0])
    assert isinstance(v.data, np.ndarray)
    assert v.dtype == np.float32
    assert ta.Variable(3).dtype.kind == "i"


def test_integer_variables_need_no_gradient():
    assert not ta.Variable(np.array([1, 2])).requires_grad
    assert ta.Variable(np.array([1.0])).requires_grad


@pytest.mark.parametrize("flag", ["no", "False", "", 0, 1, None, 0.0, [False]])
def test_requires_grad_must_be_a_bool(flag):
    # A string is truthy: requires_grad="no" used to switch the gradient on.
    with pytest.raises(TypeError, match=r"^Variable: requires_grad must be True or False, got "):
        ta.Variable(np.array([1.0]), requires_grad=flag)


def test_numpy_bool_requires_grad_is_a_bool():
    assert ta.Variable(np.array([1.0]), requires_grad=np.True_).requires_grad is True
    off = ta.Variable(np.array([1.0]), requires_grad=np.False_)
    assert off.requires_grad is False
    (off * 2.0).sum().backward()
    assert off.grad is None


def test_properties_and_repr():
    v = ta.Variable(np.zeros((2, 3), dtype=np.float32), name="w")
    assert (v.shape, v.ndim, v.size, v.dtype, len(v)) == ((2, 3), 2, 6, np.float32, 2)
    assert v.T.shape == (3, 2)
    text = repr(v)
    assert "name='w'" in text and "shape=(2, 3)" in text and "float32" in text


def test_item_requires_one_element():
    assert ta.Variable(np.array([4.5])).item() == 4.5
    with pytest.raises(ValueError, match="item"):
        ta.Variable(np.ones(2)).item()


@pytest.mark.parametrize("op", [
    lambda x: x * 2.0, lambda x: 2.0 * x, lambda x: x + 1, lambda x: 1 - x, lambda x: x / 3.0,
    lambda x: 3.0 / x, lambda x: x ** 2, lambda x: -x, lambda x: F.exp(x), lambda x: F.mean(x),
    lambda x: F.gelu(x), lambda x: F.softmax(x), lambda x: F.var(x),
])
def test_float32_stays_float32(op):
    x = ta.Variable(np.array([1.0, 2.0], dtype=np.float32))
    y = op(x)
    assert y.dtype == np.float32
    F.sum(y).backward()
    assert x.grad.dtype == np.float32


def test_numpy_array_operands_on_either_side():
    x = ta.Variable(np.array([1.0, 2.0]))
    a = np.array([3.0, 4.0])
    for y, expected in [(x + a, [4, 6]), (a + x, [4, 6]), (a - x, [2, 2]), (a * x, [3, 8]), (a / x, [3, 2])]:
        assert isinstance(y, ta.Variable)
        np.testing.assert_allclose(y.data, expected)


def test_matmul_operator_and_rmatmul():
    a = ta.Variable(np.eye(2))
    b = np.array([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_allclose((a @ b).data, b)
    np.testing.assert_allclose((b @ a).data, b)


def test_indexing_with_repeated_indices_scatters_gradient():
    x = ta.Variable(np.arange(5.0))
    y = x[np.array([0, 0, 3])]
    y.backward(np.array([1.0, 2.0, 5.0]))
    np.testing.assert_allclose(x.grad.data, [3.0, 0, 0, 5.0, 0])


def test_reshape_transpose_methods():
    x = ta.Variable(np.arange(6.0))
    assert x.reshape(2, 3).shape == (2, 3)
    assert x.reshape((3, 2)).transpose().shape == (2, 3)
    assert x.reshape(1, 2, 3).transpose(2, 0, 1).shape == (3, 1, 2)


def test_detach():
    x = ta.Variable(np.array(2.0))
    y = x * 3
    d = y.detach()
    assert d.creator is None and not d.requires_grad
    np.testing.assert_array_equal(d.data, y.data)


def test_variable_of_variable_is_refused():
    with pytest.raises(TypeError, match="already a Variable"):
        ta.Variable(ta.Variable(1.0))


def test_to_gpu_without_gpu_says_why():
    if ta.is_gpu_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="GPU backend is not available"):
        ta.Variable(np.ones(2)).to_gpu()


def test_the_gradient_of_a_0d_input_is_a_0d_array_like_its_data():
    # NumPy's arithmetic on 0-d arrays returns scalars (np.float64), which have no
    # in-place operations and no .base: a leaf's gradient must stay an array.
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        value = rng.standard_normal(dtype=dtype)
        x = ta.Variable(np.array(value, dtype=dtype))
        (x * x + F.exp(x)).backward()
        assert type(x.grad.data) is np.ndarray and x.grad.data.shape == () and x.grad.data.dtype == dtype
        np.testing.assert_allclose(x.grad.data, 2 * value + np.exp(value), rtol=1e-6)
        (F.tanh(x) * 3).backward()  # a second backward adds to the gradient
        assert type(x.grad.data) is np.ndarray and x.grad.data.shape == ()
        np.testing.assert_allclose(x.grad.data, 2 * value + np.exp(value) + 3 * (1 - np.tanh(value) ** 2),
                                   rtol=1e-5)
        x.grad.data += 1.0  # possible only on an array
