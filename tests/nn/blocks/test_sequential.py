"""SequentialBlock: order, naming, indexing, gradients, errors."""
import numpy as np
import pytest

from tinyai.nn import Linear, ReLU, SequentialBlock, Tanh


def test_applies_layers_in_order(rng, float64, layer_gradcheck):
    net = SequentialBlock(Linear(3, 4), Tanh(), Linear(4, 2), name="net")
    assert [n for n, _ in net.named_children()] == ["linear0", "tanh1", "linear2"]
    assert len(net) == 3 and isinstance(net[1], Tanh)
    x = rng.standard_normal((5, 3))
    expected = np.tanh(x @ net[0].W.data + net[0].b.data) @ net[2].W.data + net[2].b.data
    np.testing.assert_allclose(net(x).data, expected, rtol=1e-12)
    layer_gradcheck(net, x)


def test_add_layer_keeps_given_names():
    net = SequentialBlock()
    net.add_layer(Linear(2, 2, name="hidden"))
    net.add_layer(ReLU())
    assert [n for n, _ in net.named_children()] == ["hidden", "relu1"]


def test_errors():
    with pytest.raises(ValueError, match="SequentialBlock 'empty': has no layers"):
        SequentialBlock(name="empty")(np.zeros((1, 2)))
    with pytest.raises(TypeError, match="expected Layers, got builtin_function_or_method"):
        SequentialBlock(len)
