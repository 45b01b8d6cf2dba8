"""tinyai on a real GPU (CuPy): the CPU test matrix again, on device arrays.

Every test here is parametrised over a *device backend*: ``standin`` (the
CPU stand-in for CuPy, always run, so the matrix itself is checked in CI)
and ``cupy`` (skipped, with the reason ``gpu_unavailable_reason()`` gives,
unless CuPy imports and a CUDA device answers). ``make test-gpu`` runs the
cupy half, and everything else marked ``gpu``, on a machine with a GPU.

What is covered, each compared with the NumPy run of the same thing:

* every function of ``tinyai.functions`` (a test fails when one is added
  without a case here): values, and ``gradcheck`` in float64 on the device;
* every layer family (the cases of tests/nn/test_backend_clean.py): forward
  values and every parameter's gradient;
* every optimizer: the fused kernel against its reference, and a few steps of
  a device model against the same steps on the host;
* the Trainer on MNIST with ``device="gpu"`` and a checkpoint round trip to
  either device; mixed precision; data-parallel threads with a device model;
* dropout masks drawn on the device, and host/device mixes named as errors.
"""
import copy

import numpy as np
import pytest

import tinyai as ta
import tinyai.functions as F
import tinyai.optim as optim
from tinyai import losses, nn
from tinyai.backend import DeviceMismatchError, gpu_unavailable_reason, is_gpu_available
from tinyai.data.dataset import ArrayDataset
from tinyai.data.mnist import MnistDataSet
from tinyai.optim import kernels
from tinyai.testing import gradcheck
from tinyai.testing.standin import standin_as_gpu
from tinyai.training import Model
from tinyai.training.evaluator import AccuracyEval
from tinyai.training.recipes import FixedSplit
from tinyai.training.trainer import Trainer

NO_GPU = pytest.mark.skipif(not is_gpu_available(), reason=gpu_unavailable_reason() or "no GPU")
BACKENDS = [pytest.param("standin", id="standin"), pytest.param("cupy", id="cupy", marks=[pytest.mark.gpu, NO_GPU])]


@pytest.fixture(params=BACKENDS)
def device(request):
    """The device backend under test: yields its array module; inside, Device("gpu") is that backend."""
    if request.param == "standin":
        with standin_as_gpu() as module:
            yield module
    else:
        import cupy  # noqa: PLC0415 - only where a GPU answered

        yield cupy


def host(a):
    return ta.to_cpu(a.data if isinstance(a, ta.Variable) else a)


# -- every function ----------------------------------------------------------------------
# name -> build(r, put) -> (f, inputs): f takes Variables of ``inputs`` (float64
# arrays already on the backend); constants are made with put() inside build.
def _pair(r):
    return r.standard_normal((3, 4)), r.standard_normal((3, 4))


def _positive(r, shape=(3, 4)):
    return r.uniform(0.5, 2.0, shape)


def _distinct(r, shape=(3, 4)):
    return (r.permutation(int(np.prod(shape))).reshape(shape) - 5) * 0.3


FUNCTION_CASES = {
    "add": lambda r, put: (F.add, [put(a) for a in _pair(r)]),
    "sub": lambda r, put: (F.sub, [put(a) for a in _pair(r)]),
    "mul": lambda r, put: (F.mul, [put(a) for a in _pair(r)]),
    "div": lambda r, put: (F.div, [put(r.standard_normal((3, 4))), put(_positive(r))]),
    "neg": lambda r, put: (F.neg, [put(r.standard_normal((3, 4)))]),
    "pow": lambda r, put: (lambda x: F.pow(x, 3), [put(r.standard_normal((3, 4)))]),
    "rsub": lambda r, put: (lambda x: F.rsub(x, 2.0), [put(r.standard_normal((3, 4)))]),
    "rdiv": lambda r, put: (lambda x: F.rdiv(x, 2.0), [put(_positive(r))]),
    "rpow": lambda r, put: (lambda x: F.rpow(x, 2.0), [put(r.standard_normal((3, 4)))]),
    "exp": lambda r, put: (F.exp, [put(r.standard_normal((3, 4)))]),
    "log": lambda r, put: (F.log, [put(_positive(r))]),
    "sin": lambda r, put: (F.sin, [put(r.standard_normal((3, 4)))]),
    "cos": lambda r, put: (F.cos, [put(r.standard_normal((3, 4)))]),
    "tanh": lambda r, put: (F.tanh, [put(r.standard_normal((3, 4)))]),
    "sqrt": lambda r, put: (F.sqrt, [put(_positive(r))]),
    "abs": lambda r, put: (F.abs, [put(_distinct(r) + 0.1)]),
    "clip": lambda r, put: (lambda x: F.clip(x, -0.45, 0.45), [put(_distinct(r) + 0.1)]),
    "maximum": lambda r, put: (F.maximum, [put(_distinct(r)), put(_distinct(r) + 0.1)]),
    "minimum": lambda r, put: (F.minimum, [put(_distinct(r)), put(_distinct(r) + 0.1)]),
    "sigmoid": lambda r, put: (F.sigmoid, [put(r.standard_normal((3, 4)))]),
    "relu": lambda r, put: (F.relu, [put(_distinct(r) + 0.1)]),
    "leaky_relu": lambda r, put: (lambda x: F.leaky_relu(x, 0.2), [put(_distinct(r) + 0.1)]),
    "gelu": lambda r, put: (F.gelu, [put(r.standard_normal((3, 4)))]),
    "softplus": lambda r, put: (F.softplus, [put(r.standard_normal((3, 4)))]),
    "reshape": lambda r, put: (lambda x: F.reshape(x, (2, 6)), [put(r.standard_normal((3, 4)))]),
    "transpose": lambda r, put: (lambda x: F.transpose(x, (2, 0, 1)), [put(r.standard_normal((2, 3, 4)))]),
    "swapaxes": lambda r, put: (lambda x: F.swapaxes(x, 0, 2), [put(r.standard_normal((2, 3, 4)))]),
    "broadcast_to": lambda r, put: (lambda x: F.broadcast_to(x, (3, 4)), [put(r.standard_normal((1, 4)))]),
    "sum_to": lambda r, put: (lambda x: F.sum_to(x, (1, 4)), [put(r.standard_normal((3, 4)))]),
    "get_item": lambda r, put: (lambda x: F.get_item(x, put(np.array([0, 2, 0]))), [put(r.standard_normal((3, 4)))]),
    "concat": lambda r, put: (lambda a, b: F.concat([a, b], axis=1), [put(a) for a in _pair(r)]),
    "stack": lambda r, put: (lambda a, b: F.stack([a, b], axis=0), [put(a) for a in _pair(r)]),
    "split": lambda r, put: (lambda x: F.split(x, 2, axis=1)[1], [put(r.standard_normal((3, 4)))]),
    "expand_dims": lambda r, put: (lambda x: F.expand_dims(x, 1), [put(r.standard_normal((3, 4)))]),
    "squeeze": lambda r, put: (lambda x: F.squeeze(x, 1), [put(r.standard_normal((3, 1, 4)))]),
    "flatten": lambda r, put: (F.flatten, [put(r.standard_normal((2, 3, 4)))]),
    "sum": lambda r, put: (lambda x: F.sum(x, axis=1), [put(r.standard_normal((3, 4)))]),
    "mean": lambda r, put: (lambda x: F.mean(x, axis=0, keepdims=True), [put(r.standard_normal((3, 4)))]),
    "max": lambda r, put: (lambda x: F.max(x, axis=1), [put(_distinct(r))]),
    "min": lambda r, put: (lambda x: F.min(x, axis=0), [put(_distinct(r))]),
    "var": lambda r, put: (lambda x: F.var(x, axis=1), [put(r.standard_normal((3, 4)))]),
    "logsumexp": lambda r, put: (lambda x: F.logsumexp(x, axis=1), [put(r.standard_normal((3, 4)))]),
    "matmul": lambda r, put: (F.matmul, [put(r.standard_normal((3, 4))), put(r.standard_normal((4, 2)))]),
    "linear": lambda r, put: (F.linear, [put(r.standard_normal(s)) for s in ((3, 4), (4, 2), (2,))]),
    "softmax": lambda r, put: (F.softmax, [put(r.standard_normal((3, 4)))]),
    "log_softmax": lambda r, put: (F.log_softmax, [put(r.standard_normal((3, 4)))]),
    "softmax_cross_entropy": lambda r, put: (
        lambda x: F.softmax_cross_entropy(x, put(np.array([0, 3, 1]))), [put(r.standard_normal((3, 4)))]),
    "sigmoid_cross_entropy": lambda r, put: _with_constant(
        put(r.uniform(0, 1, (3, 4))), lambda t: (lambda x: F.sigmoid_cross_entropy(x, t), [put(r.standard_normal((3, 4)))])),
    "mean_squared_error": lambda r, put: (F.mean_squared_error, [put(a) for a in _pair(r)]),
    "huber_loss": lambda r, put: (lambda a, b: F.huber_loss(a, b, 0.5), [put(_distinct(r)), put(_distinct(r) * 0.5)]),
    "im2col": lambda r, put: (lambda x: F.im2col(x, 3, 1, 1), [put(r.standard_normal((2, 2, 4, 4)))]),
    "col2im": lambda r, put: (lambda c: F.col2im(c, (2, 2, 4, 4), 3, 1, 1),
                              [put(r.standard_normal((2, 2, 3, 3, 4, 4)))]),
    "conv2d": lambda r, put: (lambda x, w, b: F.conv2d(x, w, b, 2, 1),
                              [put(r.standard_normal(s)) for s in ((2, 2, 5, 5), (3, 2, 3, 3), (3,))]),
    "conv_transpose2d": lambda r, put: (lambda x, w, b: F.conv_transpose2d(x, w, b, 2, 1),
                                        [put(r.standard_normal(s)) for s in ((2, 3, 3, 3), (3, 2, 3, 3), (2,))]),
    "max_pool2d": lambda r, put: (lambda x: F.max_pool2d(x, 2), [put(_distinct(r, (2, 2, 4, 4)))]),
    "avg_pool2d": lambda r, put: (lambda x: F.avg_pool2d(x, 2), [put(r.standard_normal((2, 2, 4, 4)))]),
    "batch_norm": lambda r, put: (
        lambda x, g, b: F.batch_norm(x, g, b, put(np.zeros(3)), put(np.ones(3))),
        [put(r.standard_normal((4, 3))), put(_positive(r, (3,))), put(r.standard_normal(3))]),
    "layer_norm": lambda r, put: (F.layer_norm, [put(r.standard_normal((3, 4))), put(_positive(r, (4,))),
                                                 put(r.standard_normal(4))]),
    # In test mode dropout is the identity; the train-mode mask is checked below.
    "dropout": lambda r, put: (lambda x: _in_test_mode(F.dropout, x), [put(r.standard_normal((3, 4)))]),
    "embedding": lambda r, put: (lambda w: F.embedding(put(np.array([[0, 2], [2, 1]])), w),
                                 [put(r.standard_normal((3, 4)))]),
    "cast": lambda r, put: (lambda x: F.cast(x, np.float32) * 1.0, [put(r.standard_normal((3, 4)))]),
}


def _with_constant(constant, build):
    return build(constant)


def _in_test_mode(f, x):
    with ta.test_mode():
        return f(x)


def test_every_function_has_a_case():
    assert sorted(set(F.__all__) - set(FUNCTION_CASES)) == []


@pytest.mark.parametrize("name", sorted(FUNCTION_CASES))
def test_function_values_and_gradients_on_the_device(name, device):
    f_host, on_host = FUNCTION_CASES[name](np.random.default_rng(0), lambda a: a)
    f, on_device = FUNCTION_CASES[name](np.random.default_rng(0), device.asarray)
    expected = f_host(*[ta.Variable(a) for a in on_host])
    got = f(*[ta.Variable(a) for a in on_device])
    assert ta.get_array_module(got) is device
    np.testing.assert_allclose(host(got), host(expected), rtol=1e-6 if name == "cast" else 1e-10, atol=1e-12)
    if name != "cast":  # float32 on the way: no float64 finite differences
        assert gradcheck(f, *on_device, seed=0)


# -- every layer family ------------------------------------------------------------------------
def _layer_cases():
    from nn.test_backend_clean import CASES  # noqa: PLC0415 - the CPU matrix, reused

    return CASES


@pytest.mark.parametrize("case", sorted(_layer_cases()))
def test_layer_families_on_the_device(case, device, rng):
    from nn.test_backend_clean import _run  # noqa: PLC0415

    make, inputs, kwargs = _layer_cases()[case]
    with ta.backend.default_dtype(np.float64):
        model = make()
        xs = inputs(rng)
        expected_y, expected_grads = _run(model, xs, kwargs)
        moved = copy.deepcopy(model).to_gpu()
        kwargs = {k: (device.asarray(v) if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()}
        y, grads = _run(moved, [device.asarray(x) for x in xs], kwargs)
    assert all(ta.get_array_module(p.data) is device for p in moved.params())
    np.testing.assert_allclose(host(y), expected_y, rtol=1e-9, atol=1e-11)
    for name in expected_grads:
        np.testing.assert_allclose(host(grads[name]), host(expected_grads[name]), rtol=1e-8, atol=1e-11,
                                   err_msg=name)


# -- every optimizer ------------------------------------------------------------------------------
@pytest.mark.parametrize("rule", sorted(kernels.UPDATES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_optimizer_kernels_match_their_references(rule, dtype, device):
    fused, reference = kernels.UPDATES[rule]
    r = np.random.default_rng(1)
    arrays = {"param": r.standard_normal(1000), "grad": r.standard_normal(1000),
              "a": np.abs(r.standard_normal(1000)), "b": np.abs(r.standard_normal(1000))}
    results = []
    for function in (fused, reference):
        d = {k: device.asarray(v.astype(dtype)) for k, v in arrays.items()}
        args = {"sgd": (0.1,), "momentum": (d["a"], 0.1, 0.9, True), "adam": (d["a"], d["b"], 0.01, 0.9, 0.99, 1e-8, 3, 0.1),
                "rmsprop": (d["a"], 0.01, 0.9, 1e-8), "adagrad": (d["a"], 0.1, 1e-8)}[rule]
        function(d["param"], d["grad"], *args)
        results.append([host(d[k]) for k in ("param", "a", "b")])
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    for got, want in zip(*results):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_softmax_cross_entropy_gradient_matches_its_reference(dtype, device):
    from tinyai.functions import fused

    r = np.random.default_rng(4)
    x = r.standard_normal((6, 5, 7)).astype(dtype) * 3
    labels = r.integers(0, 7, (6, 5))
    lse = np.log(np.exp(x).sum(axis=-1)).reshape(-1)
    expected = fused.softmax_cross_entropy_grad_reference(x, labels, lse, 0.25)
    got = fused.softmax_cross_entropy_grad(device.asarray(x), device.asarray(labels), device.asarray(lse),
                                           device.asarray(np.asarray(0.25, dtype)))
    assert ta.get_array_module(got) is device and got.dtype == dtype
    np.testing.assert_allclose(host(got), expected, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-7)


POOL_GEOMETRIES = [((2, 3, 6, 6), (2, 2), (2, 2), (0, 0)), ((2, 3, 7, 5), (3, 3), (2, 2), (1, 1)),
                   ((1, 2, 5, 6), (3, 2), (1, 2), (1, 0))]


@pytest.mark.gpu
@NO_GPU
@pytest.mark.parametrize("shape, kernel, stride, pad", POOL_GEOMETRIES)
def test_max_pool_kernels_match_the_array_version(shape, kernel, stride, pad):
    import cupy  # noqa: PLC0415

    from tinyai.functions import fused
    from tinyai.functions.im2col import conv_output_size

    r = np.random.default_rng(5)
    x = (r.permutation(int(np.prod(shape))).reshape(shape) * 0.1).astype(np.float32)  # no ties
    out_hw = tuple(conv_output_size(s, k, st, p) for s, k, st, p in zip(shape[2:], kernel, stride, pad))
    xv = ta.Variable(x)
    y = F.max_pool2d(xv, kernel, stride, pad)
    gy = r.standard_normal(y.shape).astype(np.float32)
    y.backward(gy)
    got_y, winner = fused.max_pool_forward(cupy.asarray(x), out_hw, kernel, stride, pad)
    np.testing.assert_array_equal(host(got_y), host(y))
    gx = fused.max_pool_backward(cupy.asarray(gy), winner, shape, kernel, stride, pad)
    np.testing.assert_allclose(host(gx), host(xv.grad), rtol=1e-6, atol=1e-6)
    # The gather is the adjoint of the backward: <backward(gy), v> = <gy, gather(v)>.
    v = r.standard_normal(shape).astype(np.float32)
    gathered = fused.max_pool_gather(cupy.asarray(v), winner, kernel, stride, pad)
    np.testing.assert_allclose(float((host(gx) * v).sum()), float((gy * host(gathered)).sum()), rtol=1e-4)


@pytest.mark.gpu
@NO_GPU
@pytest.mark.parametrize("shape, kernel, stride, pad", POOL_GEOMETRIES)
def test_col2im_kernel_matches_the_array_version(shape, kernel, stride, pad):
    import cupy  # noqa: PLC0415

    from tinyai.functions import fused
    from tinyai.functions.im2col import col2im_array, conv_output_size

    out_hw = tuple(conv_output_size(s, k, st, p) for s, k, st, p in zip(shape[2:], kernel, stride, pad))
    col = np.random.default_rng(6).standard_normal((*shape[:2], *kernel, *out_hw))
    expected = col2im_array(col, shape, kernel, stride, pad)
    got = fused.col2im_gather(cupy.asarray(col), shape, kernel, stride, pad)
    np.testing.assert_allclose(host(got), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.gpu
@NO_GPU
@pytest.mark.parametrize("shape, kernel, stride, pad", POOL_GEOMETRIES)
def test_blocks_to_image_kernel_matches_the_array_version(shape, kernel, stride, pad):
    import cupy  # noqa: PLC0415

    from tinyai.functions import fused
    from tinyai.functions.im2col import blocks_to_image, conv_output_size

    oh, ow = (conv_output_size(s, k, st, p) for s, k, st, p in zip(shape[2:], kernel, stride, pad))
    blocks = np.random.default_rng(7).standard_normal((kernel[0] * kernel[1], shape[0] * oh * ow, shape[1]))
    expected = blocks_to_image(blocks, shape, kernel, stride, pad)
    got = fused.blocks_to_image_gather(cupy.asarray(blocks), shape, kernel, stride, pad)
    np.testing.assert_allclose(host(got), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.gpu
@NO_GPU
def test_max_pooling_and_convolution_on_the_kernels_have_second_derivatives():
    import cupy  # noqa: PLC0415

    from tinyai.testing import gradgradcheck

    r = np.random.default_rng(8)
    x = cupy.asarray((r.permutation(2 * 2 * 5 * 5).reshape(2, 2, 5, 5) * 0.1))
    assert gradgradcheck(lambda v: F.max_pool2d(v, 3, 2, 1), x, seed=0)
    w = cupy.asarray(r.standard_normal((3, 2, 3, 3)))
    assert gradgradcheck(lambda v, k: F.conv2d(v, k, None, 2, 1), x, w, seed=0)


@pytest.mark.parametrize("name", ["SGD", "Momentum", "Adam", "AdamW", "RMSprop", "AdaGrad"])
def test_optimizers_step_a_device_model_as_on_the_host(name, device):
    def train(on_device):
        ta.seed(0)
        model = nn.MlpBlock("m", 8, "tanh", 4, 6, 3)
        if on_device:
            model.to_gpu()
        optimizer = getattr(optim, name)(model, lr=0.05)
        r = np.random.default_rng(2)
        for _ in range(4):
            x, t = r.standard_normal((8, 4)).astype(np.float32), r.integers(0, 3, 8)
            x, t = (device.asarray(x), device.asarray(t)) if on_device else (x, t)
            model.clear_grads()
            F.softmax_cross_entropy(model(x), t).backward()
            optimizer.update()
        states = [v for slots in optimizer.state.values() for v in slots.values()]
        assert all(ta.get_array_module(a) is (device if on_device else np) for a in states)
        return {n: host(p.data) for n, p in model.named_params()}

    on_host, on_device = train(False), train(True)
    for n in on_host:
        np.testing.assert_allclose(on_device[n], on_host[n], rtol=2e-4, atol=2e-5, err_msg=n)


# -- the Trainer ----------------------------------------------------------------------------------
def _mnist(n_train=1000, n_test=500, batch=100):
    mnist = MnistDataSet(batch)
    mnist.prepare()
    train, test = mnist.get_train_dataset(), mnist.get_test_dataset()
    return FixedSplit(ArrayDataset(train.x[:n_train], train.y[:n_train], batch),
                      ArrayDataset(test.x[:n_test], test.y[:n_test], batch))


def _mnist_run(device_name, epochs, precision="float32", checkpoint=None, resume=None, **kwargs):
    ta.seed(0)
    model = Model("mnist", nn.MlpBlock("mlp", 100, "relu", 784, 64, 10))
    trainer = Trainer(epochs, evaluator=AccuracyEval(), progress=None, device=device_name, precision=precision,
                      checkpoint_path=checkpoint, **kwargs)
    trainer.init(_mnist(), model, losses.SoftmaxCrossEntropy(), optim.Adam(model, lr=0.002))
    if resume is not None:
        trainer.load_checkpoint(resume)
    history = trainer.train()
    return history, model, trainer


@pytest.mark.slow
def test_trainer_on_mnist_with_a_checkpoint_round_trip(device, tmp_path):
    full, full_model, trainer = _mnist_run("gpu", 2)
    assert full["test_accuracy"][-1] > 0.75
    assert all(ta.get_array_module(p.data) is device for p in full_model.params())
    _mnist_run("gpu", 1, checkpoint=tmp_path / "half.npz")
    expected = {k: host(v) for k, v in full_model.state_dict().items()}
    for where in ("cpu", "gpu"):
        _, model, _ = _mnist_run(where, 2, resume=tmp_path / "half.npz")
        for k, v in model.state_dict().items():
            np.testing.assert_allclose(host(v), expected[k], rtol=1e-4, atol=1e-5, err_msg=f"{where}: {k}")


@pytest.mark.slow
def test_mixed_precision_on_the_device(device):
    f32, _, _ = _mnist_run("gpu", 1)
    mixed, model, trainer = _mnist_run("gpu", 1, precision="mixed")
    assert abs(mixed["test_accuracy"][-1] - f32["test_accuracy"][-1]) <= 0.01
    assert all(p.data.dtype == np.float32 for p in model.params())
    scaler = trainer.mixed_precision
    scaler.scale = 2.0 ** 60                                            # force an overflow
    before = {n: host(p.data) for n, p in model.named_params()}
    x = device.asarray(np.random.default_rng(0).standard_normal((4, 784)).astype(np.float32))
    with scaler.autocast():
        loss = F.softmax_cross_entropy(scaler.to_float32(model(scaler.cast_input(x))), device.asarray(np.arange(4)))
        model.clear_grads()
        scaler.backward(loss)
    assert not scaler.step() and scaler.scale == 2.0 ** 59
    for n, p in model.named_params():
        np.testing.assert_array_equal(host(p.data), before[n])


@pytest.mark.slow
def test_data_parallel_threads_with_a_device_model(device):
    single, single_model, _ = _mnist_run("gpu", 1)
    parallel, model, trainer = _mnist_run("gpu", 1, enable_parallel=True, thread_count=2, parallel_backend="thread")
    trainer.shutdown()
    assert all(ta.get_array_module(p.data) is device for p in model.params())
    for (n, p), (_, q) in zip(model.named_params(), single_model.named_params()):
        np.testing.assert_allclose(host(p.data), host(q.data), rtol=1e-3, atol=1e-5, err_msg=n)


# -- randomness and errors -------------------------------------------------------------------------
def test_dropout_masks_are_drawn_on_the_device(device):
    x = device.asarray(np.ones((100, 100), np.float32))
    ta.seed(3)
    a = F.dropout(x, 0.5).data
    ta.seed(3)
    b = F.dropout(x, 0.5).data
    assert ta.get_array_module(a) is device
    np.testing.assert_array_equal(host(a), host(b))
    assert 0.45 < float((host(a) == 0).mean()) < 0.55


def test_a_host_array_meeting_a_device_array_names_the_op_and_devices(device):
    layer = nn.Linear(3, 2).to_gpu()
    with pytest.raises(DeviceMismatchError, match=r"Linear: inputs are on different devices: input 0 on cpu; "
                                                  r"inputs 1, 2 on gpu:0"):
        layer(ta.Variable(np.ones((2, 3), np.float32)))


# -- the tests that were here first (CuPy only) ----------------------------------------------------
@pytest.fixture(scope="module")
def cupy():
    if not is_gpu_available():
        pytest.skip(gpu_unavailable_reason() or "no GPU")
    import cupy  # noqa: PLC0415 - only where a GPU answered

    return cupy



@pytest.mark.gpu
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


@pytest.mark.gpu
def test_repeated_indices_scatter_add_on_the_gpu(cupy):
    x = ta.Variable(cupy.asarray(np.arange(6.0).reshape(3, 2)))
    index = cupy.asarray(np.array([0, 0, 2]))
    x[index].backward(cupy.ones((3, 2)))
    np.testing.assert_array_equal(ta.to_cpu(x.grad.data), [[2.0, 2.0], [0.0, 0.0], [1.0, 1.0]])


@pytest.mark.gpu
def test_huge_logits_on_the_gpu(cupy):
    x = cupy.asarray(np.array([[1e4, -1e4, 0.0]]))
    np.testing.assert_array_equal(ta.to_cpu(F.softmax(x).data), [[1.0, 0.0, 0.0]])
    assert float(F.softmax_cross_entropy(x, cupy.asarray(np.array([1]))).data) == 2e4


@pytest.mark.gpu
def test_a_second_gpu_is_its_own_device(cupy):
    if cupy.cuda.runtime.getDeviceCount() < 2:
        pytest.skip("needs two CUDA devices")
    layer = nn.Linear(3, 2).to_gpu(1)
    assert layer.device == "gpu:1"
    with pytest.raises(DeviceMismatchError, match="gpu:0.*gpu:1|gpu:1.*gpu:0"):
        with ta.backend.using_device("gpu:1"):
            layer(ta.to_gpu(np.ones((2, 3), np.float32), 0))


def test_the_gpu_benchmark_runs_on_the_standin(monkeypatch):
    # `make bench-gpu` must work the first time a GPU is there: its code runs here at tiny sizes.
    from benchmarks import bench_gpu

    monkeypatch.setenv("TINYAI_BENCH_GPU_STANDIN", "1")
    data = bench_gpu.run(quick=True)
    text = bench_gpu.report(data)
    assert "stand-in" in data["device"] and len(data["training_steps"]) == 4 and len(data["optimizers"]) == 5
    assert "conv2d reaches" in text and "fused us/1M params" in text and "mixed precision" in text


@pytest.mark.skipif(is_gpu_available(), reason="checks the benchmark's skip without a GPU")
def test_the_gpu_benchmark_skips_without_a_gpu(monkeypatch):
    from benchmarks import bench_gpu

    monkeypatch.delenv("TINYAI_BENCH_GPU_STANDIN", raising=False)
    data = bench_gpu.run(quick=True)
    assert data == {"skipped": gpu_unavailable_reason()}
    assert bench_gpu.report(data).startswith("skipped: CuPy")
