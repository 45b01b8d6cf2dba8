"""Mixed precision on the CPU (NumPy float16): master weights, loss scaling, overflow skips, MNIST accuracy."""
import time

import numpy as np
import pytest

import tinyai
import tinyai.functions as F
import tinyai.optim as optim
from tinyai import losses, nn
from tinyai.data.dataset import ArrayDataset
from tinyai.data.mnist import MnistDataSet
from tinyai.training import Model
from tinyai.training.evaluator import AccuracyEval
from tinyai.training.precision import MixedPrecision
from tinyai.training.recipes import FixedSplit
from tinyai.training.trainer import Trainer

from trainer_helpers import blob_dataset, blobs


def mlp(seed=0):
    tinyai.seed(seed)
    return Model("mlp", nn.MlpBlock("mlp", 16, "relu", 2, 16, 3))


def one_step(scaler, model, x, t):
    """One hand-written mixed-precision step; returns whether the update was applied."""
    with scaler.autocast():
        prediction = model(scaler.cast_input(x))
        loss = F.softmax_cross_entropy(scaler.to_float32(prediction), t)
        model.clear_grads()
        scaler.backward(loss)
    return scaler.step()


def test_inside_autocast_the_model_computes_in_float16_and_outside_everything_is_float32():
    model = mlp()
    optimizer = optim.Adam(model, lr=0.01)
    scaler = MixedPrecision(model, optimizer)
    x, t = blobs(8)
    seen = {}
    with scaler.autocast():
        prediction = model(scaler.cast_input(x))
        seen["params"] = {p.data.dtype for p in model.params()}
        seen["prediction"] = prediction.dtype
        loss = F.softmax_cross_entropy(scaler.to_float32(prediction), t)
        seen["loss"] = loss.dtype
        scaler.backward(loss)
        seen["grads"] = {p.grad.dtype for p in model.params()}
    assert seen == {"params": {np.dtype(np.float16)}, "prediction": np.float16, "loss": np.float32,
                    "grads": {np.dtype(np.float16)}}
    assert {p.data.dtype for p in model.params()} == {np.dtype(np.float32)}     # masters are back
    assert {p.grad.dtype for p in model.params()} == {np.dtype(np.float32)}     # unscaled, float32
    assert scaler.step()
    assert {p.data.dtype for p in model.params()} == {np.dtype(np.float32)}
    assert {v.dtype for slots in optimizer.state.values() for v in slots.values()} == {np.dtype(np.float32)}


def test_unscaled_gradients_match_float32_gradients():
    # The scale must cancel exactly: the gradient that reaches the optimizer
    # is the float32 one, up to float16 rounding of the forward and backward.
    x, t = blobs(8)
    reference = mlp()
    loss = F.softmax_cross_entropy(reference(x), t)
    loss.backward()
    model = mlp()
    scaler = MixedPrecision(model, optim.SGD(model, lr=0.1), init_scale=2.0 ** 12)
    with scaler.autocast():
        loss16 = F.softmax_cross_entropy(scaler.to_float32(model(scaler.cast_input(x))), t)
        scaler.backward(loss16)
    for (name, p), (_, q) in zip(model.named_params(), reference.named_params()):
        np.testing.assert_allclose(p.grad.data, q.grad.data, rtol=0.05, atol=2e-3, err_msg=name)
    assert abs(float(loss16.data) - float(loss.data)) < 5e-3


def test_an_overflow_skips_the_step_and_halves_the_scale():
    model = mlp()
    optimizer = optim.Momentum(model, lr=0.1)
    scaler = MixedPrecision(model, optimizer, init_scale=2.0 ** 40)  # scaled gradients beyond float16's 65504
    x, t = blobs(8)
    before = {name: p.data.copy() for name, p in model.named_params()}
    velocity = {name: slots["velocity"].copy() for name, slots in optimizer.state.items()}
    assert not one_step(scaler, model, x, t)
    assert scaler.scale == 2.0 ** 39 and scaler.skipped_steps == 1
    assert optimizer.iterations == 0
    for name, p in model.named_params():
        np.testing.assert_array_equal(p.data, before[name], err_msg=name)                       # not moved
        np.testing.assert_array_equal(optimizer.state[name]["velocity"], velocity[name], err_msg=name)
        assert p.grad is None
    scaler.scale = 2.0 ** 10
    assert one_step(scaler, model, x, t)                                                         # and on it goes
    assert optimizer.iterations == 1
    assert any((p.data != before[name]).any() for name, p in model.named_params())


def test_the_scale_grows_after_enough_good_steps():
    model = mlp()
    scaler = MixedPrecision(model, optim.SGD(model, lr=0.05), init_scale=256.0, growth_interval=3)
    x, t = blobs(8)
    scales = []
    for _ in range(7):
        assert one_step(scaler, model, x, t)
        scales.append(scaler.scale)
    assert scales == [256.0, 256.0, 512.0, 512.0, 512.0, 1024.0, 1024.0]


def test_bad_settings_are_refused():
    model = mlp()
    for kwargs, message in (({"init_scale": 0.0}, "init_scale"), ({"growth_factor": 1.0}, "growth_factor"),
                            ({"backoff_factor": 1.0}, "backoff_factor"), ({"growth_interval": 0}, "growth_interval")):
        with pytest.raises(ValueError, match=message):
            MixedPrecision(model, **kwargs)
    with pytest.raises(ValueError, match="precision must be one of"):
        Trainer(1, precision="half")
    tinyai.backend.set_default_dtype(np.float64)
    try:
        wide = mlp()
    finally:
        tinyai.backend.set_default_dtype(np.float32)
    with pytest.raises(TypeError, match="master weights must be float32"):
        with MixedPrecision(wide).autocast():
            pass


def test_trainer_overflow_is_a_skipped_step_not_a_nonfinite_loss():
    # on_nan="raise" stops at a NaN/inf *loss*; an overflow of the scaled
    # gradients is the loss scaler's business: it skips and halves.
    model = mlp()
    trainer = Trainer(4, progress=None, precision="mixed", on_nan="raise")
    trainer.init(blob_dataset(), model, losses.SoftmaxCrossEntropy(), optim.SGD(model, lr=0.1))
    trainer.mixed_precision.scale = 2.0 ** 26      # loss ~1 times 2**26: gradients far beyond 65504
    history = trainer.train()
    scaler = trainer.mixed_precision
    assert scaler.skipped_steps >= 2                                       # it overflowed, more than once
    assert scaler.scale == 2.0 ** (26 - scaler.skipped_steps)             # each overflow halved the scale
    assert scaler.skipped_steps < 4 * 8                                    # not every step was lost
    assert history["loss"][-1] < history["loss"][0]                        # and it learned
    assert {p.data.dtype for p in model.params()} == {np.dtype(np.float32)}


def test_the_loss_scale_survives_a_checkpoint(tmp_path):
    model = mlp()
    trainer = Trainer(1, progress=None, precision="mixed")
    trainer.init(blob_dataset(), model, losses.SoftmaxCrossEntropy(), optim.SGD(model, lr=0.1))
    trainer.mixed_precision.scale = 2.0 ** 30
    trainer.train()
    trainer.save_checkpoint(tmp_path / "c.npz")
    saved = trainer.mixed_precision.state_dict()
    model2 = mlp(1)
    resumed = Trainer(2, progress=None, precision="mixed")
    resumed.init(blob_dataset(), model2, losses.SoftmaxCrossEntropy(), optim.SGD(model2, lr=0.1))
    resumed.load_checkpoint(tmp_path / "c.npz")
    assert resumed.mixed_precision.state_dict() == saved and saved["scale"] < 2.0 ** 30


def test_mixed_precision_with_data_parallel_training_is_refused_clearly():
    with pytest.raises(ValueError, match="precision='mixed' is not available with enable_parallel"):
        Trainer(1, enable_parallel=True, precision="mixed")


@pytest.mark.slow
def test_mnist_mlp_in_mixed_precision_is_within_half_a_point_of_float32():
    # 2,000 bundled MNIST training images, 2 epochs of Adam, 2,000 test images.
    # NumPy's float16 matrix products are slow (no BLAS): this is the costly test (~6 s).
    mnist = MnistDataSet(100)
    mnist.prepare()
    train, test = mnist.get_train_dataset(), mnist.get_test_dataset()
    results, seconds = {}, {}
    for precision in ("float32", "mixed"):
        tinyai.seed(0)
        data = FixedSplit(ArrayDataset(train.x[:2000], train.y[:2000], 100),
                          ArrayDataset(test.x[:2000], test.y[:2000], 500))
        model = Model("mnist", nn.MlpBlock("mlp", 100, "relu", 784, 128, 64, 10))
        trainer = Trainer(2, evaluator=AccuracyEval(), progress=None, precision=precision)
        trainer.init(data, model, losses.SoftmaxCrossEntropy(), optim.Adam(model, lr=0.002))
        start = time.perf_counter()
        results[precision] = trainer.train()["test_accuracy"][-1]
        seconds[precision] = time.perf_counter() - start
        assert model.block.fc1.W.data.dtype == np.float32
    assert results["float32"] > 0.85                                   # a model that learned
    assert abs(results["mixed"] - results["float32"]) <= 0.005, (results, seconds)


def test_a_nan_in_the_data_still_stops_mixed_precision_training():
    from tinyai.training import NonFiniteLossError

    x, y = blobs(8)
    x[3, 1] = np.nan
    model = mlp()
    trainer = Trainer(1, progress=None, precision="mixed", on_nan="raise")
    data = ArrayDataset(x, y, 24, allow_non_finite=True)  # the NaN is meant to reach training
    trainer.init(data, model, losses.SoftmaxCrossEntropy(), optim.SGD(model, lr=0.1))
    with pytest.raises(NonFiniteLossError, match="the loss is nan"):
        trainer.train()
    assert trainer.mixed_precision.skipped_steps == 0      # not mistaken for a loss-scale overflow


# -- float32 where float16 loses ---------------------------------------------------------------
def test_float16_products_and_sums_are_accurate_and_stay_float16(xp, to_xp):
    # 4096 x 0.1 = 409.6. A backend that accumulated in float16 would stall at 256,
    # where 0.1 is below half a unit of the last place (0.125).
    a = to_xp(np.full((1, 4096), 0.1, np.float16))
    ones = to_xp(np.ones((4096, 1), np.float16))
    for y in (F.matmul(a, ones), F.linear(a, ones), F.sum(a, axis=1), F.mean(a) * 4096.0):
        assert y.dtype == np.float16
        assert abs(float(tinyai.to_cpu(y.data).ravel()[0]) - 409.6) <= 0.25


def test_float16_softmax_and_batch_norm_compute_in_float32_and_answer_in_float16(rng):
    logits = (rng.standard_normal((4, 10)) * 8).astype(np.float16)
    probabilities = F.softmax(logits)
    assert probabilities.dtype == np.float16
    np.testing.assert_allclose(probabilities.data.astype(np.float64).sum(axis=1), 1.0, atol=4e-3)
    expected = np.exp(logits.astype(np.float64) - logits.astype(np.float64).max(axis=1, keepdims=True))
    np.testing.assert_allclose(probabilities.data, expected / expected.sum(axis=1, keepdims=True), atol=1e-3)

    x = (rng.standard_normal((64, 3)) * 100 + 1000).astype(np.float16)   # a variance float16 sums would ruin
    mean32, var32 = np.zeros(3, np.float32), np.ones(3, np.float32)
    gamma, beta = tinyai.Variable(np.ones(3, np.float16)), tinyai.Variable(np.zeros(3, np.float16))
    y = F.batch_norm(x, gamma, beta, mean32, var32, momentum=0.0)
    assert y.dtype == np.float16 and mean32.dtype == np.float32
    wide = x.astype(np.float64)
    np.testing.assert_allclose(mean32, wide.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(var32, wide.var(axis=0) * 64 / 63, rtol=1e-4)
    np.testing.assert_allclose(y.data, (wide - wide.mean(0)) / np.sqrt(wide.var(0) + 1e-5), atol=1e-2)
    y.backward(np.ones_like(y.data))
    assert gamma.grad.dtype == np.float16


def test_the_command_line_trains_in_mixed_precision(capsys):
    from tinyai.cli import main

    code = main(["train", "--example", "mnist-mlp", "--epochs", "1", "--batch-size", "32", "--lr", "0.1",
                 "--optimizer", "sgd", "--limit", "600", "--no-progress", "--precision", "mixed"])
    assert code == 0
    out = capsys.readouterr().out
    assert float(out.split("final test accuracy: ")[1].split("%")[0]) > 60.0
