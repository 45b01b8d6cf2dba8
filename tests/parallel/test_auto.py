"""auto: measure the candidates, keep the fastest, change nothing."""
import numpy as np

import tinyai as ta
from tinyai.parallel.auto import choose_backend

from tests.parallel.models import MeanSquared, TwoLayerNet


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
