"""Layer and Parameter: registration order, buffers, state_dict round trips, modes, pickling, errors."""
import pickle

import numpy as np
import pytest

import tinyai as ta
import tinyai.functions as F
from tinyai.nn import Layer, Parameter


class Affine(Layer):
    def __init__(self):
        super().__init__()
        # assigned in an order that is not alphabetical, to see that order is kept
        self.z = Parameter(np.ones((2, 3), np.float32))
        self.a = Parameter(np.zeros(3, np.float32))
        self.register_buffer("count", np.zeros(1, np.float32))
        self.register_buffer("table", np.arange(3, dtype=np.float32), persistent=False)

    def forward(self, x):
        return F.matmul(x, self.z) + self.a


def test_parameters_in_assignment_order_and_named():
    layer = Affine()
    assert [n for n, _ in layer.named_params()] == ["z", "a"]
    assert [p.name for p in layer.params()] == ["z", "a"]
    assert layer.num_params() == 9
    assert all(isinstance(p, Parameter) and p.requires_grad for p in layer.params())


def test_parameter_rejects_integers():
    with pytest.raises(TypeError, match="Parameter W: needs floating data, got dtype int64"):
        Parameter(np.arange(3), name="W")


def test_call_wraps_arrays_and_gradients_reach_parameters():
    layer = Affine()
    y = layer(np.ones((4, 2), np.float32))
    assert isinstance(y, ta.Variable)
    F.sum(y).backward()
    np.testing.assert_allclose(layer.z.grad.data, np.full((2, 3), 4.0))
    np.testing.assert_allclose(layer.a.grad.data, np.full(3, 4.0))
    layer.clear_grads()
    assert layer.z.grad is None and layer.a.grad is None


def test_buffers_and_state_dict():
    layer = Affine()
    assert [n for n, _ in layer.named_buffers()] == ["count", "table"]
    state = layer.state_dict()
    assert list(state) == ["z", "a", "count"]  # non-persistent "table" is not saved
    other = Affine()
    other.z.data[...] = 5
    other.count[...] = 7
    layer.load_state_dict(other.state_dict())
    np.testing.assert_array_equal(layer.z.data, 5)
    np.testing.assert_array_equal(layer.count, 7)
    assert layer.z.data is not other.z.data  # loaded values are copies


def test_load_state_dict_converts_dtype():
    layer = Affine()
    layer.load_state_dict({"z": np.full((2, 3), 2.0), "a": np.zeros(3), "count": np.zeros(1)})
    assert layer.z.dtype == np.float32


def test_load_state_dict_reports_every_problem():
    layer = Affine()
    bad = {"z": np.zeros((3, 2), np.float32), "extra": np.zeros(1)}
    with pytest.raises(ValueError) as info:
        layer.load_state_dict(bad)
    message = str(info.value)
    assert r"wrong shape: z (expected (2, 3), got (3, 2))" in message
    assert "missing: a (3,), count (1,)" in message
    assert "unexpected: extra (1,)" in message
    # non-strict loading allows missing and unexpected names, never a wrong shape
    layer.load_state_dict({"a": np.ones(3, np.float32), "extra": 1}, strict=False)
    np.testing.assert_array_equal(layer.a.data, 1)
    with pytest.raises(ValueError, match="wrong shape"):
        layer.load_state_dict(bad, strict=False)


def test_train_eval_flags():
    layer = Affine()
    assert layer.training
    assert layer.eval() is layer and not layer.training
    layer.train()
    assert layer.training


def test_pickle_round_trip():
    layer = Affine()
    layer.z.data[...] = 3
    copy = pickle.loads(pickle.dumps(layer))
    assert [n for n, _ in copy.named_params()] == ["z", "a"]
    np.testing.assert_array_equal(copy.z.data, 3)
    assert copy.z is not layer.z
    x = np.ones((1, 2), np.float32)
    np.testing.assert_array_equal(copy(x).data, layer(x).data)


def test_to_cpu_keeps_numpy_and_to_gpu_needs_a_gpu():
    layer = Affine()
    assert layer.to_cpu() is layer and isinstance(layer.z.data, np.ndarray)
    if not ta.is_gpu_available():
        with pytest.raises(RuntimeError, match="to_gpu"):
            layer.to_gpu()


@pytest.mark.gpu
def test_to_gpu_moves_params_and_buffers():
    if not ta.is_gpu_available():
        pytest.skip("needs CuPy and a CUDA device")
    import cupy
    layer = Affine().to_gpu()
    assert isinstance(layer.z.data, cupy.ndarray) and isinstance(layer.count, cupy.ndarray)
    y = layer(cupy.ones((1, 2), dtype=cupy.float32))
    assert isinstance(y.data, cupy.ndarray)
    layer.to_cpu()
    assert isinstance(layer.z.data, np.ndarray) and isinstance(layer.count, np.ndarray)


def test_registration_errors():
    class Forgot(Layer):
        def __init__(self):
            self.W = Parameter(np.zeros(1, np.float32))

    with pytest.raises(RuntimeError, match=r"Forgot: call super\(\).__init__\(\) before assigning"):
        Forgot()

    layer = Affine()
    with pytest.raises(TypeError, match="'count' is already a buffer; cannot make it a param"):
        layer.count = Parameter(np.zeros(1, np.float32))
    with pytest.raises(TypeError, match="buffer 'x' must be an array, got list"):
        layer.register_buffer("x", [1, 2])
    with pytest.raises(TypeError, match="a Layer cannot own the layer 'inner'.*make Affine a Block"):
        layer.inner = Affine()
    with pytest.raises(TypeError, match="Layer must define forward"):
        Layer()(np.zeros(1))


def test_deleting_a_parameter_unregisters_it():
    layer = Affine()
    del layer.a
    assert [n for n, _ in layer.named_params()] == ["z"]
