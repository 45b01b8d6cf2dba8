"""Learning-rate schedules: their formulas, how they drive optimizer.lr, composition and resume."""
import math

import numpy as np
import pytest

from tinyai.nn import Parameter
from tinyai.optim import SGD, CosineAnnealing, LinearWarmup, StepLR, warmup_cosine


def make_opt(lr=1.0):
    return SGD([Parameter(np.zeros(2))], lr=lr)


def lrs_over(schedule, steps):
    """optimizer.lr as seen by each of ``steps`` updates (step() after each)."""
    seen = []
    for _ in range(steps):
        seen.append(schedule.optimizer.lr)
        schedule.step()
    return seen


def test_step_lr_multiplies_by_gamma_every_step_size():
    schedule = StepLR(make_opt(0.5), step_size=3, gamma=0.1)
    np.testing.assert_allclose(lrs_over(schedule, 8), [0.5] * 3 + [0.05] * 3 + [0.005] * 2)


def test_cosine_annealing_endpoints_midpoint_and_shape():
    schedule = CosineAnnealing(make_opt(1.0), total_steps=10, min_lr=0.1)
    seen = lrs_over(schedule, 12)
    assert seen[0] == pytest.approx(1.0)
    assert seen[5] == pytest.approx(0.55)  # halfway: the mean of base and min
    assert seen[10] == pytest.approx(0.1) and seen[11] == pytest.approx(0.1)
    assert all(a > b for a, b in zip(seen[:10], seen[1:11]))
    # The formula, at an arbitrary point: 0.1 + 0.9 * (1 + cos(pi * 3 / 10)) / 2
    assert seen[3] == pytest.approx(0.1 + 0.45 * (1 + math.cos(0.3 * math.pi)))


def test_linear_warmup_alone_ramps_then_holds():
    schedule = LinearWarmup(make_opt(0.4), warmup_steps=4)
    np.testing.assert_allclose(lrs_over(schedule, 6), [0.1, 0.2, 0.3, 0.4, 0.4, 0.4])


def test_warmup_then_cosine_is_continuous_and_ends_at_min():
    opt = make_opt(2.0)
    schedule = warmup_cosine(opt, warmup_steps=5, total_steps=25, min_lr=0.0)
    seen = lrs_over(schedule, 27)
    np.testing.assert_allclose(seen[:5], [0.4, 0.8, 1.2, 1.6, 2.0])
    # The cosine's clock starts when warmup ends: its t = 0 (the peak) is update 6.
    assert seen[5] == pytest.approx(2.0)
    assert seen[6] == pytest.approx(2.0 * 0.5 * (1 + math.cos(math.pi / 20)))
    assert seen[15] == pytest.approx(1.0)  # halfway through the 20 cosine steps
    assert seen[25] == pytest.approx(0.0) and seen[26] == pytest.approx(0.0)
    assert max(seen) == pytest.approx(2.0)
    assert schedule.then.last_step == 27 - 5
    with pytest.raises(ValueError, match="total_steps .* must exceed warmup_steps"):
        warmup_cosine(make_opt(), 10, 10)


def test_composition_by_hand_with_step_lr():
    opt = make_opt(1.0)
    schedule = LinearWarmup(opt, warmup_steps=2, then=StepLR(opt, step_size=2, gamma=0.5))
    np.testing.assert_allclose(lrs_over(schedule, 7), [0.5, 1.0, 1.0, 1.0, 0.5, 0.5, 0.25])


def test_schedule_state_round_trip_resumes_the_same_rates():
    first = warmup_cosine(make_opt(1.0), warmup_steps=3, total_steps=10)
    lrs_over(first, 6)
    state = first.state_dict()
    rest = lrs_over(first, 5)
    opt = make_opt(123.0)
    second = warmup_cosine(opt, warmup_steps=3, total_steps=10)
    second.load_state_dict(state)
    assert opt.lr == pytest.approx(rest[0])
    np.testing.assert_allclose(lrs_over(second, 5), rest)


def test_bad_schedule_arguments_are_refused():
    with pytest.raises(ValueError, match="StepLR: step_size must be a positive integer"):
        StepLR(make_opt(), step_size=0)
    with pytest.raises(ValueError, match="CosineAnnealing: total_steps"):
        CosineAnnealing(make_opt(), total_steps=0)
    with pytest.raises(TypeError, match="LinearWarmup: expected an optimizer with an lr"):
        LinearWarmup(object(), warmup_steps=3)
    with pytest.raises(ValueError, match="different optimizer"):
        LinearWarmup(make_opt(), 2, then=StepLR(make_opt(), 2))
