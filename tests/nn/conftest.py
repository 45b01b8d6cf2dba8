"""Fixtures for the nn tests: gradient checks over a layer's Parameters and inputs."""
from __future__ import annotations

import numpy as np
import pytest

from tinyai.backend import default_dtype
from tinyai.testing import gradcheck


def _owner(layer, dotted):
    *path, leaf = dotted.split(".")
    for part in path:
        layer = getattr(layer, part)
    return layer, leaf


def check_layer_grads(layer, *inputs, seed=0, **kwargs):
    """gradcheck of ``layer(*inputs)`` with respect to the float inputs *and* every Parameter.

    gradcheck hands its function fresh float64 Variables; the ones standing
    for Parameters are put in the Parameters' places for the duration of the
    call (bypassing registration), so the gradients the layer's backward
    produces for its weights are compared with finite differences too.
    Recurrent layers are reset before each call, so every evaluation starts
    from the same state.
    """
    names = [name for name, _ in layer.named_params()]
    arrays = [np.asarray(p.data, dtype=np.float64) for _, p in layer.named_params()]
    n_in = len(inputs)

    def f(*vs):
        xs, ps = vs[:n_in], vs[n_in:]
        saved = []
        for name, v in zip(names, ps):
            owner, leaf = _owner(layer, name)
            saved.append((owner, leaf, getattr(owner, leaf)))
            object.__setattr__(owner, leaf, v)
        try:
            layer.reset_state()
            return layer(*xs, **kwargs)
        finally:
            for owner, leaf, original in saved:
                object.__setattr__(owner, leaf, original)

    return gradcheck(f, *inputs, *arrays, seed=seed)


@pytest.fixture
def layer_gradcheck():
    return check_layer_grads


@pytest.fixture
def float64():
    """Build layers with float64 Parameters inside the test."""
    with default_dtype(np.float64):
        yield
