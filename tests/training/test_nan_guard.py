"""Non-finite gradients from a finite loss are caught before the update (on_nan raise/warn/skip)."""
import logging
import warnings

import numpy as np
import pytest

import tinyai as ta
from tinyai import optim
from tinyai.training import NonFiniteGradientError, NonFiniteLossError, Trainer
from tinyai.training.nan_guard import check_step, non_finite_gradients

from tests.parallel.models import MeanSquared, TwoLayerNet
from tests.training.nan_helpers import Whole, poisoned_arrays

# NumPy's own note on the inf * 0 in the matmul is expected here.
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")


def make(on_nan, x=None, y=None, **kwargs):
    if x is None:
        x, y = poisoned_arrays()
    ta.seed(5)
    model = TwoLayerNet()
    trainer = Trainer(2, progress=None, on_nan=on_nan, **kwargs)
    trainer.init(Whole(x, y), model, MeanSquared(), optim.SGD(model, lr=0.1))
    return trainer, model


def test_raise_names_the_batch_the_parameter_and_the_input():
    trainer, model = make("raise")
    with pytest.raises(NonFiniteGradientError) as info:
        trainer.train(shuffle=False)
    message = str(info.value)
    assert "epoch 1/2, batch 3/4" in message           # the batch that produced it, not the next one
    assert "fc1.W" in message and "NaN" in message     # the parameter at fault
    assert "fc2" not in message                        # tanh saturates: fc2's gradient stays finite
    assert "input x holds 1 inf" in message and "(3, 2)" in message  # row 13 is row 3 of batch 3
    assert "loss is finite" in message
    assert isinstance(info.value, NonFiniteLossError)  # one except catches loss and gradient faults
    assert all(np.isfinite(p.data).all() for p in model.params())


@pytest.mark.parametrize("on_nan", ["warn", "skip"])
def test_warn_and_skip_leave_the_model_finite_and_skip_only_that_batch(on_nan):
    trainer, model = make(on_nan)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = trainer.train(shuffle=False)
    messages = [str(w.message) for w in caught if str(w.message).startswith("Trainer")]
    if on_nan == "warn":
        assert len(messages) == 2 and all("batch 3/4" in m and "skipping" in m for m in messages)
    else:
        assert messages == []
    assert all(np.isfinite(p.data).all() for p in model.params())
    assert all(np.isfinite(value) for value in history["loss"])
    assert trainer.optimizer.iterations == 2 * 3        # 4 batches per epoch, one skipped in each


def test_a_skipped_batch_changes_nothing_and_the_rest_train_as_without_it():
    # Training on data whose poisoned batch is skipped equals training on the other batches alone.
    trainer, model = make("skip")
    trainer.max_epoch = 1
    trainer.train(shuffle=False)
    x, y = poisoned_arrays()
    other, reference = make("raise", np.delete(x, np.s_[10:15], axis=0), np.delete(y, np.s_[10:15], axis=0))
    other.max_epoch = 1
    other.train(shuffle=False)
    for (name, p), (_, q) in zip(model.named_params(), reference.named_params()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)


def test_skip_with_gradient_accumulation_still_updates_the_group():
    trainer, model = make("skip", accumulate_steps=3)
    trainer.max_epoch = 1
    trainer.train(shuffle=False)   # groups: batches 1-3 (batch 3 skipped) and batch 4
    assert trainer.optimizer.iterations == 2
    assert all(np.isfinite(p.data).all() for p in model.params())


def test_divergence_without_bad_input_suggests_a_smaller_learning_rate():
    class P:
        def __init__(self, g):
            self.grad = ta.Variable(np.asarray(g))

    params = [("a", P([1.0, np.inf])), ("b", P([1.0, 2.0])), ("c", P([np.nan, np.nan, -np.inf]))]
    assert non_finite_gradients(params) == ["a (1 inf of 2 values)", "c (2 NaN, 1 inf of 3 values)"]
    with pytest.raises(NonFiniteGradientError, match=r"step 1: .*a \(1 inf.*smaller learning rate"):
        check_step("step 1", 0.5, params, np.zeros((2, 2)), "raise")
    # A sum that overflows although every element is finite is no fault.
    huge = [("h", P(np.full(4, 3e38, dtype=np.float32)))]
    assert non_finite_gradients(huge) == []
    assert check_step("step 2", 0.5, huge, np.zeros(2), "raise")


def test_a_non_finite_loss_names_a_non_finite_input():
    with pytest.raises(NonFiniteLossError, match=r"loss is nan; the input x holds 1 NaN of 4 values"):
        check_step("step", float("nan"), [], np.array([[1.0, np.nan], [0.0, 0.0]]), "raise")


def test_skip_is_logged_and_bad_modes_are_refused(caplog):
    with caplog.at_level(logging.INFO, logger="tinyai.training.nan_guard"):
        assert not check_step("step 9", float("inf"), [], np.zeros(1), "skip")
    assert "step 9: the loss is inf" in caplog.text
    with pytest.raises(ValueError, match="on_nan must be one of 'raise', 'warn', 'skip'"):
        Trainer(1, on_nan="ignore")


def test_a_non_finite_target_is_named_as_the_cause():
    # A NaN regression target makes the loss NaN with nothing else wrong: the message must not blame the
    # learning rate. (The data set refuses it unless built with allow_non_finite=True.)
    x, y = poisoned_arrays()
    x[13, 2] = 0.0
    y[7, 1] = np.nan
    trainer, _ = make("raise", x, y)
    with pytest.raises(NonFiniteLossError) as info:
        trainer.train(shuffle=False)
    message = str(info.value)
    assert "epoch 1/2, batch 2/4" in message and "the loss is nan" in message
    assert "target y holds 1 NaN of 15 values (first at index (2, 1))" in message
    assert "the fault is in the data" in message and "smaller learning rate" not in message
