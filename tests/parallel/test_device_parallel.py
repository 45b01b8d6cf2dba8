"""Data parallelism for a model on a device, on the CuPy stand-in (the GPU code path, on the CPU)."""
import logging

import numpy as np
import pytest

import tinyai as ta
from tinyai import optim
from tinyai.backend import default_dtype, get_array_module
from tinyai.data import ArrayDataset
from tinyai.parallel import DataParallel
from tinyai.parallel.auto import choose_backend
from tinyai.parallel.utils import deep_copy_model
from tinyai.testing.standin import StandInArray, standin_as_gpu, xp
from tinyai.training import Trainer

from tests.parallel.models import ClassLoss, ConvBatchNormNet


@pytest.fixture
def device_model():
    with standin_as_gpu():
        with default_dtype(np.float64):
            ta.seed(5)
            model = ConvBatchNormNet()
        model.to("gpu")
        yield model


def _batches(n=3, batch=9):
    rng = np.random.default_rng(2)
    return [(rng.standard_normal((batch, 1, 6, 6)), rng.integers(0, 4, batch)) for _ in range(n)]


class RecordingLoss(ClassLoss):
    """Remembers the array module of every target it sees (the workers' shards)."""

    seen = []

    def loss(self, target, prediction):
        RecordingLoss.seen.append(get_array_module(target.data))
        return super().loss(target, prediction)


def test_threads_deliver_shards_on_the_device_and_equal_single_device_training(device_model):
    reference = deep_copy_model(device_model)
    for x, y in _batches():  # one device, one thread
        reference.clear_grads()
        value = ClassLoss().loss(ta.Variable(xp.asarray(y)), reference(ta.Variable(xp.asarray(x))))
        value.backward()
        for p in reference.params():
            p.data -= 0.1 * p.grad.data
    RecordingLoss.seen = []
    engine = DataParallel(device_model, RecordingLoss(), 3, backend="thread")
    try:
        for x, y in _batches():  # host batches: the executor moves each shard to the device
            outcome = engine.compute_gradients(x, y)
            assert isinstance(outcome.prediction, StandInArray)
            for p in device_model.params():
                assert isinstance(p.grad.data, StandInArray)
                p.data -= 0.1 * p.grad.data
    finally:
        engine.shutdown()
    assert RecordingLoss.seen and all(module is xp for module in RecordingLoss.seen)
    for (name, p), (_, q) in zip(device_model.named_params(), reference.named_params()):
        np.testing.assert_allclose(p.data.get(), q.data.get(), rtol=1e-10, atol=1e-12, err_msg=name)
    for (name, a), (_, b) in zip(device_model.named_buffers(), reference.named_buffers()):
        np.testing.assert_allclose(a.get(), b.get(), rtol=1e-10, atol=1e-12, err_msg=name)


def test_process_backend_refuses_a_device_model_in_one_clear_error(device_model):
    with pytest.raises(ValueError, match=r"process executor: the model's parameters live on a device .*"
                                         r"cannot share device memory.*use backend='thread'"):
        DataParallel(device_model, ClassLoss(), 2, backend="process")


def test_auto_never_picks_processes_for_a_device_model_and_the_trainer_trains_on_threads(device_model, caplog):
    x, y = _batches(1, 8)[0]
    with caplog.at_level(logging.INFO, logger="tinyai.parallel.auto"):
        choice = choose_backend(device_model, ClassLoss(), x, y, workers=2, repeats=1)
    assert set(choice.timings) == {"single", "thread"}
    assert "process backend is not a candidate" in caplog.text
    rng = np.random.default_rng(3)
    data = ArrayDataset(rng.standard_normal((24, 1, 6, 6)), rng.integers(0, 4, 24), batch_size=8)
    with Trainer(1, progress=None, enable_parallel=True, thread_count=2, parallel_backend="thread") as trainer:
        trainer.init(data, device_model, ClassLoss(), optim.SGD(device_model, lr=0.1))
        history = trainer.train()
        assert trainer.get_parallel_thread_count() == 2
    assert np.isfinite(history["loss"][0])
    assert all(isinstance(p.data, StandInArray) for p in device_model.params())


def test_dropout_masks_drawn_on_the_device_do_not_depend_on_the_split():
    from tests.parallel.models import DropoutNet, MeanSquared

    rng = np.random.default_rng(6)
    batches = [(rng.standard_normal((9, 6)), rng.standard_normal((9, 3))) for _ in range(2)]
    with standin_as_gpu():
        with default_dtype(np.float64):
            ta.seed(8)
            model = DropoutNet()
        model.to("gpu")
        reference = deep_copy_model(model)
        ta.seed(99)
        for x, y in batches:
            reference.clear_grads()
            MeanSquared().loss(ta.Variable(xp.asarray(y)), reference(ta.Variable(xp.asarray(x)))).backward()
            for p in reference.params():
                p.data -= 0.1 * p.grad.data
        ta.seed(99)
        engine = DataParallel(model, MeanSquared(), 3, backend="thread")
        try:
            for x, y in batches:
                engine.compute_gradients(x, y)
                for p in model.params():
                    p.data -= 0.1 * p.grad.data
        finally:
            engine.shutdown()
    for (name, p), (_, q) in zip(model.named_params(), reference.named_params()):
        np.testing.assert_allclose(p.data.get(), q.data.get(), rtol=1e-10, atol=1e-12, err_msg=name)
