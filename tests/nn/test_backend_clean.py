"""Every layer runs on the CuPy stand-in: no stray NumPy call on device arrays in tinyai.nn.

Each model is run twice, on NumPy and on the stand-in (which refuses to be
handled by NumPy, as CuPy arrays are), and both runs must agree, in the
forward values and in the gradients of every Parameter.
"""
import copy

import numpy as np
import pytest

import tinyai.functions as F
from tinyai import nn
from tinyai.testing.standin import StandInArray, to_standin


def _run(model, inputs, kwargs):
    model.clear_grads()
    model.reset_state()
    y = model(*inputs, **kwargs)
    F.sum(y * y).backward()
    host = lambda a: a.get() if isinstance(a, StandInArray) else a  # noqa: E731
    return host(y.data), {n: host(p.grad.data) for n, p in model.named_params()}


CASES = {
    "linear": (lambda: nn.Linear(3, 2), lambda r: [r.standard_normal((4, 3))], {}),
    "conv": (lambda: nn.Conv2d(2, 3, 3, stride=2, pad=1), lambda r: [r.standard_normal((2, 2, 5, 5))], {}),
    "depthwise": (lambda: nn.DepthwiseSeparableConv2d(2, 3, 3, pad=1), lambda r: [r.standard_normal((1, 2, 4, 4))], {}),
    "convnet": (lambda: nn.SimpleConvNet(image_size=8, channels=(2, 2)), lambda r: [r.standard_normal((2, 1, 8, 8))], {}),
    "batchnorm": (lambda: nn.SequentialBlock(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.AvgPool2d(2), nn.Flatten(),
                                             nn.BatchNorm1d(8)), lambda r: [r.standard_normal((3, 1, 6, 6))], {}),
    "mlp": (lambda: nn.MlpBlock("m", 4, "gelu", 3, 5, 2), lambda r: [r.standard_normal((4, 3))], {}),
    "lstm": (lambda: nn.LstmBlock("l", 3, 4, 2), lambda r: [r.standard_normal((2, 5, 3))], {}),
    "gru": (lambda: nn.GruBlock("g", 3, 4, 2), lambda r: [r.standard_normal((2, 5, 3))], {}),
    "rnn": (lambda: nn.SimpleRnnBlock("s", 3, 4, 2), lambda r: [r.standard_normal((2, 3))], {}),
    "attention": (lambda: nn.MultiHeadAttention(4, 2), lambda r: [r.standard_normal((2, 3, 4))],
                  {"causal": True, "padding_mask": np.array([[1, 1, 0], [1, 1, 1]])}),
    "transformer": (lambda: nn.Transformer(5, 6, d_model=4, num_heads=2, num_layers=1, d_ff=8, max_len=8),
                    lambda r: [r.integers(0, 5, (2, 4)), r.integers(0, 6, (2, 3))], {}),
    "seq2seq": (lambda: nn.Seq2Seq(5, 6, 3, 4, "lstm"), lambda r: [r.integers(0, 5, (2, 4)), r.integers(0, 6, (2, 3))],
                {}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_results_on_the_standin(case, rng, float64):
    make, inputs, kwargs = CASES[case]
    model = make()
    xs = inputs(rng)
    expected_y, expected_grads = _run(model, xs, kwargs)
    moved = copy.deepcopy(model)
    moved._move(to_standin)
    kwargs = {k: (to_standin(v) if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()}
    y, grads = _run(moved, [to_standin(x) for x in xs], kwargs)
    assert all(isinstance(p.data, StandInArray) for p in moved.params())
    np.testing.assert_allclose(y, expected_y, rtol=1e-10, atol=1e-12)
    for name in expected_grads:
        np.testing.assert_allclose(grads[name], expected_grads[name], rtol=1e-9, atol=1e-12, err_msg=name)
    moved.to_cpu()
    assert all(isinstance(p.data, np.ndarray) for p in moved.params())
    assert all(isinstance(b, np.ndarray) for _, b in moved.named_buffers())
