"""Data-parallel training checks the combined gradient in the master before the update."""
import warnings

import numpy as np
import pytest

import tinyai as ta
from tinyai import optim
from tinyai.training import NonFiniteGradientError, Trainer

from tests.parallel.models import MeanSquared, TwoLayerNet
from tests.training.nan_helpers import Whole, poisoned_arrays

pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")


def _trainer(on_nan, **kwargs):
    ta.seed(5)
    model = TwoLayerNet()
    trainer = Trainer(1, progress=None, on_nan=on_nan, enable_parallel=True, thread_count=2,
                      parallel_backend="thread", **kwargs)
    trainer.init(Whole(*poisoned_arrays()), model, MeanSquared(), optim.SGD(model, lr=0.1))
    assert trainer.get_parallel_thread_count() == 2
    return trainer, model


@pytest.mark.parametrize("exchange", [{}, {"compression": "int8"}, {"allreduce_algorithm": "ring"}],
                         ids=["allreduce", "int8 compression", "ring"])
def test_thread_backend_raises_at_the_batch_with_the_bad_input(exchange):
    trainer, model = _trainer("raise", **exchange)
    with trainer, pytest.raises(NonFiniteGradientError) as info:
        trainer.train(shuffle=False)
    message = str(info.value)
    assert "batch 3/4" in message and "fc1.W" in message and "input x holds 1 inf" in message
    assert all(np.isfinite(p.data).all() for p in model.params())


def test_thread_backend_skip_keeps_the_master_finite():
    trainer, model = _trainer("warn")
    with trainer, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = trainer.train(shuffle=False)
    assert [str(w.message) for w in caught if "batch 3/4" in str(w.message)]
    assert trainer.optimizer.iterations == 3
    assert all(np.isfinite(p.data).all() for p in model.params())
    assert np.isfinite(history["loss"][0])


def test_a_skipped_step_does_not_poison_error_feedback_residuals():
    # Top-k with error feedback keeps, on every worker, what it did not send. A NaN kept
    # there would make every later step non-finite: training would silently stop.
    trainer, model = _trainer("skip", compression="topk")
    trainer.max_epoch = 2
    with trainer:
        history = trainer.train(shuffle=False)
    assert trainer.optimizer.iterations == 2 * 3          # only the poisoned batch of each epoch is skipped
    assert all(np.isfinite(history["loss"]))
    assert all(np.isfinite(p.data).all() for p in model.params())
