"""auto: measure the candidates, keep the fastest, change nothing."""
import itertools

import numpy as np
import pytest

import tinyai as ta
from tinyai import optim
from tinyai.backend import default_dtype, get_rng
from tinyai.data import ArrayDataset
from tinyai.parallel import auto
from tinyai.parallel.auto import choose_backend
from tinyai.training import Trainer

from tests.parallel.models import ClassLoss, ConvBatchNormNet, DropoutNet, MeanSquared, TwoLayerNet


def test_choice_is_the_fastest_measured_and_leaves_parameters_alone():
    ta.seed(0)
    model = TwoLayerNet()
    before = {name: p.data.copy() for name, p in model.named_params()}
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 6)).astype(np.float32)
    y = rng.standard_normal((16, 3)).astype(np.float32)
    choice = choose_backend(model, MeanSquared(), x, y, workers=2, candidates=("single", "thread"), repeats=2)
    assert set(choice.timings) == {"single", "thread"}
    assert choice.timings[choice.backend] == min(choice.timings.values())
    for name, p in model.named_params():
        np.testing.assert_array_equal(p.data, before[name])
        assert p.grad is None


def test_a_backend_that_cannot_start_is_left_out():
    ta.seed(0)
    model = TwoLayerNet()
    model.unpicklable = lambda: None  # a lambda attribute: the model cannot be replicated
    x = np.ones((4, 6), dtype=np.float32)
    y = np.ones((4, 3), dtype=np.float32)
    choice = choose_backend(model, MeanSquared(), x, y, workers=2, candidates=("single", "thread"), repeats=1)
    assert choice.backend == "single"
    assert choice.timings == {}  # nothing to measure: only one candidate can run


def test_each_timed_step_follows_a_step_of_the_same_candidate(monkeypatch):
    # Training runs one backend step after step; a step right after another candidate's would pay
    # for its leftovers (OpenBLAS's spinning second thread), so untimed steps of the same candidate come first.
    from tinyai.parallel.engine import DataParallel

    calls = []
    real_single, real_parallel = auto._single_step, DataParallel.compute_gradients
    monkeypatch.setattr(auto, "_single_step", lambda *a: (calls.append("single"), real_single(*a)))
    monkeypatch.setattr(DataParallel, "compute_gradients",
                        lambda self, x, y: (calls.append(self.executor.kind), real_parallel(self, x, y)))
    ta.seed(0)
    x = np.ones((4, 6), dtype=np.float32)
    y = np.ones((4, 3), dtype=np.float32)
    choose_backend(TwoLayerNet(), MeanSquared(), x, y, workers=2, candidates=("single", "thread"), repeats=3)
    turns = [name for k, name in enumerate(calls) if k == 0 or calls[k - 1] != name]
    assert turns == ["single", "thread"] * 3
    runs = [len(list(group)) for _, group in itertools.groupby(calls)]
    assert min(runs) >= 2  # at least one untimed step before the timed one


# -- auto never changes the trained model ------------------------------------------------------------

def _state(model):
    return ([p.data.copy() for p in model.params()], [None if p.grad is None else p.grad.data.copy()
                                                      for p in model.params()],
            [a.copy() for _, a in model.named_buffers()], get_rng().bit_generator.state)


def test_probes_leave_the_masters_parameters_gradients_buffers_and_random_stream_alone():
    ta.seed(0)
    model = ConvBatchNormNet()
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((12, 1, 6, 6)).astype(np.float32), rng.integers(0, 4, 12)
    model.clear_grads()
    ClassLoss().loss(ta.Variable(y), model(ta.Variable(x))).backward()  # gradients present before
    before = _state(model)
    choose_backend(model, ClassLoss(), x, y, workers=2, repeats=1)
    after = _state(model)
    for a, b in zip(before[0] + before[1] + before[2], after[0] + after[1] + after[2]):
        np.testing.assert_array_equal(a, b)
    assert before[3] == after[3]


def _regression_or_class(model_cls):
    rng = np.random.default_rng(4)
    if model_cls is DropoutNet:
        return rng.standard_normal((30, 6)), rng.standard_normal((30, 3)), MeanSquared()
    return rng.standard_normal((30, 1, 6, 6)), rng.integers(0, 4, 30), ClassLoss()


def _trained(model_cls, **kwargs):
    x, y, loss = _regression_or_class(model_cls)
    with default_dtype(np.float64):
        ta.seed(11)
        model = model_cls()
    ta.seed(123)
    with Trainer(2, progress=None, **kwargs) as trainer:
        trainer.init(ArrayDataset(x, y, batch_size=8), model, loss, optim.SGD(model, lr=0.1))
        trainer.train()
        chosen = trainer._parallel.chosen_backend
    return model, chosen


@pytest.mark.parametrize("model_cls", [DropoutNet, ConvBatchNormNet])
@pytest.mark.parametrize("picked", ["single", "thread", "process"])
def test_auto_trains_the_model_single_thread_training_trains(monkeypatch, model_cls, picked):
    # Every candidate is probed; the pick is forced so that each backend auto can choose is checked.
    monkeypatch.setattr(auto, "fastest", lambda timings, order: picked)
    monkeypatch.setattr("tinyai.training.parallel_training.AUTO_REPEATS", 1)
    reference, _ = _trained(model_cls)
    model, chosen = _trained(model_cls, enable_parallel=True, thread_count=2, parallel_backend="auto")
    assert chosen == picked
    for (name, p), (_, q) in zip(model.named_params(), reference.named_params()):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-10, atol=1e-12, err_msg=name)
    for (name, a), (_, b) in zip(model.named_buffers(), reference.named_buffers()):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=name)
