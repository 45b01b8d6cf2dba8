"""The optimizer update rules of tinyai.optim.kernels against the formulas, element by element.

The fused CuPy kernels are compared with these same references in
tests/test_gpu.py (where a GPU exists); here the references and the dispatch
(NumPy and the CPU stand-in take the reference path) are checked against
scalar Python arithmetic, written independently from the array code.
"""
import math

import numpy as np
import pytest

from tinyai.backend import get_array_module
from tinyai.optim import kernels


def scalar_steps(rule, p, g_seq, hyper):
    """The update rule applied to one float at a time, in plain Python."""
    p = float(p)
    a = b = 0.0  # the state: velocity / m, v / mean_sq / sum_sq
    for t, g in enumerate(g_seq, start=1):
        g = float(g)
        if rule == "sgd":
            p -= hyper["lr"] * g
        elif rule == "momentum":
            a = hyper["momentum"] * a - hyper["lr"] * g
            p += hyper["momentum"] * a - hyper["lr"] * g if hyper["nesterov"] else a
        elif rule == "adam":
            p *= 1 - hyper["lr"] * hyper["decoupled_decay"]
            a = hyper["beta1"] * a + (1 - hyper["beta1"]) * g
            b = hyper["beta2"] * b + (1 - hyper["beta2"]) * g * g
            m_hat, v_hat = a / (1 - hyper["beta1"] ** t), b / (1 - hyper["beta2"] ** t)
            p -= hyper["lr"] * m_hat / (math.sqrt(v_hat) + hyper["eps"])
        elif rule == "rmsprop":
            a = hyper["decay"] * a + (1 - hyper["decay"]) * g * g
            p -= hyper["lr"] * g / (math.sqrt(a) + hyper["eps"])
        elif rule == "adagrad":
            a += g * g
            p -= hyper["lr"] * g / (math.sqrt(a) + hyper["eps"])
    return p


CASES = {
    "sgd": {"lr": 0.1},
    "momentum": {"lr": 0.05, "momentum": 0.9, "nesterov": False},
    "nesterov": {"lr": 0.05, "momentum": 0.8, "nesterov": True},
    "adam": {"lr": 0.01, "beta1": 0.9, "beta2": 0.99, "eps": 1e-8, "decoupled_decay": 0.0},
    "adamw": {"lr": 0.01, "beta1": 0.8, "beta2": 0.95, "eps": 1e-6, "decoupled_decay": 0.1},
    "rmsprop": {"lr": 0.01, "decay": 0.9, "eps": 1e-8},
    "adagrad": {"lr": 0.1, "eps": 1e-8},
}
RULE = {"nesterov": "momentum", "adamw": "adam"}


def run(function, rule, hyper, p0, grads, to_xp, xp):
    param = to_xp(p0.copy())
    state = [to_xp(np.zeros_like(p0)) for _ in range({"sgd": 0, "adam": 2}.get(rule, 1))]
    for t, g in enumerate(grads, start=1):
        g = to_xp(g)
        if rule == "sgd":
            function(param, g, hyper["lr"])
        elif rule == "momentum":
            function(param, g, state[0], hyper["lr"], hyper["momentum"], hyper["nesterov"])
        elif rule == "adam":
            function(param, g, state[0], state[1], hyper["lr"], hyper["beta1"], hyper["beta2"], hyper["eps"], t,
                     hyper["decoupled_decay"])
        elif rule == "rmsprop":
            function(param, g, state[0], hyper["lr"], hyper["decay"], hyper["eps"])
        else:
            function(param, g, state[0], hyper["lr"], hyper["eps"])
    assert get_array_module(param) is xp and all(get_array_module(a) is xp for a in state)   # stayed on xp
    return param.get() if hasattr(param, "get") else param


@pytest.mark.parametrize("case", list(CASES))
def test_reference_and_dispatch_follow_the_formula(case, xp, to_xp, rng):
    rule, hyper = RULE.get(case, case), CASES[case]
    fused, reference = kernels.UPDATES[rule]
    p0 = rng.standard_normal(7)
    grads = [rng.standard_normal(7) for _ in range(4)]
    expected = np.array([scalar_steps(rule, p0[i], [g[i] for g in grads], hyper) for i in range(7)])
    np.testing.assert_allclose(run(reference, rule, hyper, p0, grads, to_xp, xp), expected, rtol=1e-12, atol=1e-14)
    # Off CuPy the dispatching function is the reference itself: bit for bit.
    np.testing.assert_array_equal(run(fused, rule, hyper, p0, grads, to_xp, xp),
                                  run(reference, rule, hyper, p0, grads, to_xp, xp))


def test_float32_parameters_stay_float32(rng):
    p = rng.standard_normal(5).astype(np.float32)
    m, v = np.zeros_like(p), np.zeros_like(p)
    kernels.adam_update(p, rng.standard_normal(5).astype(np.float32), m, v, 0.01, 0.9, 0.999, 1e-8, 1, 0.01)
    assert p.dtype == m.dtype == v.dtype == np.float32
