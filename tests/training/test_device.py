"""Training on a device, end to end, with the CPU stand-in for CuPy playing the GPU.

Inside ``standin_as_gpu()`` ``Trainer(device="gpu")`` takes exactly the path
it takes on CUDA: the model, its buffers and the optimizer's state move, every
batch is copied over, dropout masks are drawn on the device, checkpoints hold
host arrays. The stand-in refuses any silent mix of host and device arrays, so
a test that passes here has no hidden host round trip.
"""
import numpy as np
import pytest

import tinyai
import tinyai.functions as F
import tinyai.optim as optim
from tinyai import nn
from tinyai.backend import Device, DeviceMismatchError, device_of, is_gpu_available
from tinyai.data.dataset import ArrayDataset
from tinyai.testing.standin import StandInArray, standin_as_gpu
from tinyai.training import Model
from tinyai.training.evaluator import AccuracyEval
from tinyai.training.predictor import ClassTranslator, Predictor
from tinyai.training.recipes import FixedSplit
from tinyai.training.trainer import Trainer

from trainer_helpers import CrossEntropy, blobs


class Net(nn.Block):
    """Linear -> BatchNorm -> ReLU -> (Dropout) -> Linear: parameters, buffers and randomness."""

    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(2, 16)
        self.bn = nn.BatchNorm1d(16)
        self.fc2 = nn.Linear(16, 3)
        self.dropout = dropout

    def forward(self, x):
        h = F.relu(self.bn(self.fc1(x)))
        if self.dropout:
            h = F.dropout(h, self.dropout)
        return self.fc2(h)


def split(seed=0):
    x, y = blobs(40, seed)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    return FixedSplit(ArrayDataset(x[:96], y[:96], 16), ArrayDataset(x[96:], y[96:], 16))


def make(device=None, dropout=0.0, max_epoch=3, **kwargs):
    tinyai.seed(5)
    model = Model("net", Net(dropout))
    trainer = Trainer(max_epoch, evaluator=AccuracyEval(), progress=None, device=device, **kwargs)
    trainer.init(split(), model, CrossEntropy(), optim.Adam(model, lr=0.05))
    return trainer, model


def host_state(model):
    return {name: tinyai.to_cpu(value) for name, value in model.state_dict().items()}


def all_on_standin(trainer, model):
    arrays = [p.data for p in model.params()] + [b for _, b in model.block.named_buffers()]
    arrays += [p.grad.data for p in model.params() if p.grad is not None]
    arrays += [v for slots in trainer.optimizer.state.values() for v in slots.values()]
    return arrays and all(isinstance(a, StandInArray) for a in arrays)


# -- devices ------------------------------------------------------------------------------
@pytest.mark.parametrize("spec, kind, index, text", [
    ("cpu", "cpu", None, "cpu"), ("gpu", "gpu", 0, "gpu:0"), ("GPU:2", "gpu", 2, "gpu:2"), ("cuda:1", "gpu", 1, "gpu:1"),
])
def test_device_strings(spec, kind, index, text):
    device = Device(spec)
    assert (device.kind, device.index, str(device)) == (kind, index, text)
    assert device == text and Device(device) == device


@pytest.mark.parametrize("spec", ["tpu", "gpu:x", "cpu:0", "gpu:-1", ""])
def test_bad_device_strings_are_refused(spec):
    with pytest.raises(ValueError, match="Device: expected 'cpu', 'gpu' or 'gpu:N'"):
        Device(spec)


@pytest.mark.skipif(is_gpu_available(), reason="checks the error raised without a GPU")
def test_trainer_on_a_gpu_without_one_says_why():
    with pytest.raises(RuntimeError, match=r"GPU backend is not available.*pip install 'tinyai-numpy\[gpu\]'"):
        Trainer(1, device="gpu")


def test_the_standin_plays_a_single_gpu():
    with standin_as_gpu():
        assert device_of(tinyai.to_gpu(np.zeros(2))) == "gpu:0"
        with pytest.raises(RuntimeError, match="gpu:1: the CPU stand-in plays a single GPU"):
            Model("net", Net()).to("gpu:1")


# -- training -----------------------------------------------------------------------------
def test_device_training_equals_cpu_training():
    # The stand-in computes with NumPy underneath, so without dropout the two
    # runs must agree to the last bit: the device path adds or drops nothing.
    cpu_trainer, cpu_model = make(device="cpu")
    cpu_history = cpu_trainer.train()
    with standin_as_gpu():
        trainer, model = make(device="gpu")
        assert all_on_standin(trainer, model)      # moved by init, before any step
        history = trainer.train()
        assert all_on_standin(trainer, model)      # and still there after training
        assert model.device == "gpu:0"
    assert history["loss"] == cpu_history["loss"]
    assert history["test_accuracy"] == cpu_history["test_accuracy"] and history["test_accuracy"][-1] >= 0.9
    for name, value in host_state(cpu_model).items():
        np.testing.assert_array_equal(tinyai.to_cpu(model.state_dict()[name]), value, err_msg=name)


def test_dropout_masks_are_drawn_on_the_device_and_follow_the_seed():
    with standin_as_gpu():
        x = tinyai.to_gpu(np.ones((200, 50), np.float32))
        tinyai.seed(1)
        first = F.dropout(x, 0.3).data
        second = F.dropout(x, 0.3).data
        tinyai.seed(1)
        again = F.dropout(x, 0.3).data
    assert isinstance(first, StandInArray)
    first, second, again = first.get(), second.get(), again.get()
    np.testing.assert_array_equal(first, again)                 # same seed, same masks
    assert (first != second).any()                              # a new mask every call
    assert abs((first == 0).mean() - 0.3) < 0.03                # about ratio of the units dropped
    np.testing.assert_allclose(first[first != 0], 1 / 0.7, rtol=1e-6)


def test_device_training_with_dropout_is_reproducible():
    results = []
    for _ in range(2):
        with standin_as_gpu():
            trainer, model = make(device="gpu", dropout=0.2, max_epoch=2)
            results.append((trainer.train()["loss"], host_state(model)))
    assert results[0][0] == results[1][0]
    for name, value in results[0][1].items():
        np.testing.assert_array_equal(results[1][1][name], value, err_msg=name)


def test_checkpoint_from_the_device_holds_host_arrays_and_resumes_on_either_device(tmp_path):
    path = tmp_path / "run.npz"
    with standin_as_gpu():
        full, full_model = make(device="gpu", max_epoch=3)
        full.train()
        half, _ = make(device="gpu", max_epoch=2, checkpoint_path=path)
        half.train()
    with np.load(path, allow_pickle=False) as archive:        # plain NumPy arrays on disk
        assert all(archive[key].dtype != object for key in archive.files)
    expected = host_state(full_model)

    for device in ("cpu", "gpu"):
        with standin_as_gpu():
            resumed, model = make(device=device, max_epoch=3)
            resumed.load_checkpoint(path)
            assert all_on_standin(resumed, model) == (device == "gpu")  # loaded onto the trainer's device
            resumed.train()
            state = host_state(model)
        for name, value in expected.items():
            np.testing.assert_allclose(state[name], value, rtol=1e-5, atol=1e-6, err_msg=f"{device}: {name}")


def test_predictor_and_evaluator_on_a_device_model():
    trainer, model = make(device="cpu", max_epoch=2)
    trainer.train()
    x, _ = blobs(10, seed=9)
    on_cpu = Predictor(ClassTranslator(), model).predict(x)
    accuracy = AccuracyEval(model, split()).evaluate()
    with standin_as_gpu():
        model.to_gpu()
        assert Predictor(ClassTranslator(), model).predict(x).tolist() == on_cpu.tolist()
        assert AccuracyEval(model, split()).evaluate() == accuracy
        assert isinstance(model.block.bn.running_mean, StandInArray)


# -- mixing host and device ----------------------------------------------------------------
def test_host_input_to_a_device_model_names_the_op_and_both_devices():
    with standin_as_gpu():
        layer = nn.Linear(2, 3).to_gpu()
        with pytest.raises(DeviceMismatchError, match=r"Linear: inputs are on different devices: "
                                                      r"input 0 on cpu; inputs 1, 2 on gpu:0"):
            layer(tinyai.Variable(np.ones((4, 2), np.float32)))


def test_host_and_device_operands_name_the_op():
    with standin_as_gpu():
        device = tinyai.Variable(tinyai.to_gpu(np.ones(3)))
        host = tinyai.Variable(np.ones(3))
        with pytest.raises(DeviceMismatchError, match=r"Mul: .*input 0 on gpu:0; input 1 on cpu"):
            F.mul(device, host)
        assert isinstance(DeviceMismatchError("x"), TypeError)   # still the TypeError it was


def test_an_array_and_a_number_meet_on_the_arrays_device():
    with standin_as_gpu():
        x = tinyai.to_gpu(np.array([1.0, 2.0, 3.0]))
        np.testing.assert_array_equal(tinyai.to_cpu(F.pow(x, 3).data), [1.0, 8.0, 27.0])
        np.testing.assert_array_equal(tinyai.to_cpu(F.sub(x, 1.0).data), [0.0, 1.0, 2.0])


def test_an_optimizer_follows_its_model_to_the_device_and_back():
    with standin_as_gpu():
        tinyai.seed(0)
        model = nn.Linear(3, 2)
        optimizer = optim.Adam(model, lr=0.1)
        for move in ("gpu", "cpu"):
            model.to(move)
            x = model.device.put(np.ones((4, 3), np.float32))
            model.clear_grads()
            F.sum(model(x)).backward()
            optimizer.update()
            states = [v for slots in optimizer.state.values() for v in slots.values()]
            assert all(device_of(v) == move for v in states), move
