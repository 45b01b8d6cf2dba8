"""Trainer.init refuses an optimizer that does not hold the model's parameters."""
import logging

import numpy as np
import pytest

import tinyai as ta
from tinyai import nn, optim
from tinyai.training import Trainer

from tests.parallel.models import MeanSquared, TwoLayerNet
from tests.training.nan_helpers import Whole


def _data():
    rng = np.random.default_rng(1)
    return Whole(rng.standard_normal((10, 6)).astype(np.float32), rng.standard_normal((10, 3)).astype(np.float32))


def test_an_optimizer_on_another_model_is_refused():
    ta.seed(0)
    model, other = TwoLayerNet(), TwoLayerNet()
    with pytest.raises(ValueError, match=r"Trainer.init: the optimizer holds none of the model's parameters "
                                         r"\(it holds fc1.W, fc1.b, fc2.W, fc2.b\)"):
        Trainer(1, progress=None).init(_data(), model, MeanSquared(), optim.SGD(other, lr=0.1))


def test_an_optimizer_on_part_of_the_model_trains_that_part():
    ta.seed(0)
    model = TwoLayerNet()
    frozen = model.fc1.W.data.copy()
    trainer = Trainer(1, progress=None).init(_data(), model, MeanSquared(), optim.SGD(model.fc2, lr=0.1))
    before = model.fc2.W.data.copy()
    trainer.train()
    np.testing.assert_array_equal(model.fc1.W.data, frozen)
    assert not np.array_equal(model.fc2.W.data, before)


def test_foreign_parameters_beside_the_models_are_logged(caplog):
    ta.seed(0)
    model = TwoLayerNet()
    extra = nn.Parameter(np.zeros(2, np.float32))
    with caplog.at_level(logging.WARNING, logger="tinyai.training.setup_checks"):
        Trainer(1, progress=None).init(_data(), model, MeanSquared(),
                                       optim.SGD([*model.params(), extra], lr=0.1))
    assert "1 parameter(s) that are not the model's: 4" in caplog.text
