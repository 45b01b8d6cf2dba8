"""MlpBlock: TinyAI's argument order, layer layout, initialisation by activation, gradients, errors."""
import numpy as np
import pytest

import tinyai as ta
import tinyai.functions as F
from tinyai.nn import GELU, MlpBlock, ReLU, Tanh


def test_layout_and_names():
    mlp = MlpBlock("mlp", 64, "relu", 784, 128, 64, 10)
    assert [n for n, _ in mlp.named_children()] == ["fc1", "act1", "fc2", "act2", "fc3"]
    assert [(n, p.shape) for n, p in mlp.named_params()][::2] == [
        ("fc1.W", (784, 128)), ("fc2.W", (128, 64)), ("fc3.W", (64, 10))]
    assert mlp.num_params() == 784 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10
    assert isinstance(mlp.act1, ReLU) and mlp.act1 is not mlp.act2
    assert repr(mlp).startswith("MlpBlock 'mlp'(784 -> 128 -> 64 -> 10)  109,386 params")


def test_forward_matches_numpy(rng, float64):
    mlp = MlpBlock("mlp", 8, "tanh", 3, 5, 2)
    x = rng.standard_normal((4, 3))
    p = {n: q.data for n, q in mlp.named_params()}
    expected = np.tanh(x @ p["fc1.W"] + p["fc1.b"]) @ p["fc2.W"] + p["fc2.b"]
    np.testing.assert_allclose(mlp(x).data, expected, rtol=1e-12)


def test_gradients(rng, float64, layer_gradcheck):
    mlp = MlpBlock("mlp", 8, "sigmoid", 3, 4, 2)
    for p in mlp.params():
        p.data = rng.standard_normal(p.shape)
    layer_gradcheck(mlp, rng.standard_normal((5, 3)))


def test_init_follows_the_activation():
    ta.seed(0)
    relu = MlpBlock("a", 1, "relu", 500, 500, 10)
    tanh = MlpBlock("b", 1, Tanh(), 500, 500, 10)
    assert relu.fc1.W.data.var() == pytest.approx(2 / 500, rel=0.05)      # He
    assert tanh.fc1.W.data.var() == pytest.approx(2 / 1000, rel=0.05)     # Xavier
    assert isinstance(MlpBlock("c", 1, GELU(), 2, 3, 1).act1, GELU)
    softplus = MlpBlock("d", 1, F.softplus, 2, 3, 1)
    np.testing.assert_allclose(softplus.act1(np.zeros(1)).data, np.log(2.0))


def test_same_seed_same_model():
    ta.seed(5)
    a = MlpBlock("m", 1, "relu", 4, 8, 2).state_dict()
    ta.seed(5)
    b = MlpBlock("m", 1, "relu", 4, 8, 2).state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_errors():
    mlp = MlpBlock("mlp", 64, "relu", 784, 128, 10)
    with pytest.raises(ValueError, match=r"Linear 'fc1': expected input with 784 features, got shape \(32, 1, 28, 28\)"):
        mlp(np.zeros((32, 1, 28, 28), np.float32))
    with pytest.raises(ValueError, match="MlpBlock 'x': needs at least two sizes"):
        MlpBlock("x", 64, "relu", 784)
    with pytest.raises(ValueError, match="MlpBlock 'x': unknown activation 'relu6'"):
        MlpBlock("x", 64, "relu6", 4, 2)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        MlpBlock("x", 0, "relu", 4, 2)
