"""Block: owned layers, dotted names, nested state_dict, lazy layers, repr, train/eval recursion."""
import pickle

import numpy as np
import pytest

import tinyai as ta
import tinyai.functions as F
from tinyai.nn import Block, Linear, Parameter, ReLU


class Net(Block):
    def __init__(self, lazy=False):
        super().__init__("net")
        self.fc1 = Linear(None if lazy else 4, 8)
        self.act = ReLU()
        self.scale = Parameter(np.ones(1, np.float32))
        self.fc2 = Linear(8, 2)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x))) * self.scale


class Outer(Block):
    def __init__(self):
        super().__init__()
        self.inner = Net()
        self.head = Linear(2, 1)

    def forward(self, x):
        return self.head(self.inner(x))


def test_dotted_names_in_assignment_order():
    assert [n for n, _ in Outer().named_params()] == [
        "inner.fc1.W", "inner.fc1.b", "inner.scale", "inner.fc2.W", "inner.fc2.b", "head.W", "head.b"]
    assert [n for n, _ in Outer().named_layers()] == ["", "inner", "inner.fc1", "inner.act", "inner.fc2", "head"]


def test_children_get_their_attribute_names():
    net = Net()
    assert net.fc1.name == "fc1"
    with pytest.raises(ValueError, match=r"Linear 'fc1': expected input with 4 features, got shape \(3, 5\)"):
        net(np.zeros((3, 5), np.float32))


def test_same_seed_same_model():
    ta.seed(7)
    a = Outer().state_dict()
    ta.seed(7)
    b = Outer().state_dict()
    ta.seed(8)
    c = Outer().state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["inner.fc1.W"], c["inner.fc1.W"])


def test_state_dict_round_trip_and_pickle(rng):
    a, b = Outer(), Outer()
    x = rng.standard_normal((3, 4)).astype(np.float32)
    assert not np.allclose(a(x).data, b(x).data)
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a(x).data, b(x).data)
    c = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(a(x).data, c(x).data)


def test_lazy_layer_builds_on_first_call_and_from_a_state_dict(rng):
    net = Net(lazy=True)
    assert [n for n, _ in net.named_params()] == ["scale", "fc2.W", "fc2.b"]
    x = rng.standard_normal((2, 6)).astype(np.float32)
    y = net(x)
    assert [n for n, _ in net.named_params()] == ["fc1.W", "fc1.b", "scale", "fc2.W", "fc2.b"]
    assert net.fc1.W.shape == (6, 8)
    fresh = Net(lazy=True)
    fresh.load_state_dict(net.state_dict())  # creates fc1's parameters from the saved shapes
    np.testing.assert_array_equal(fresh(x).data, y.data)


def test_gradients_reach_every_parameter(rng):
    net = Outer()
    F.sum(net(rng.standard_normal((3, 4)).astype(np.float32))).backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in net.params())
    net.clear_grads()
    assert all(p.grad is None for p in net.params())


def test_train_eval_reach_every_layer():
    net = Outer().eval()
    assert not any(layer.training for _, layer in net.named_layers())
    net.train()
    assert all(layer.training for _, layer in net.named_layers())


def test_repr_shows_the_tree_with_shapes_and_counts():
    text = repr(Outer())
    lines = text.splitlines()
    assert lines[0] == "Outer  62 params"  # (4*8+8) + 1 + (8*2+2) + (2*1+1)
    assert "(inner): Net 'net'  59 params" in text
    assert "(fc1): Linear(4 -> 8)  [W (4, 8), b (8,)]  40 params" in text
    assert "(act): ReLU()" in text
    assert "own  [scale (1,)]  1 params" in text
    assert "(head): Linear(2 -> 1)  [W (2, 1), b (1,)]  3 params" in text


def test_add_and_errors():
    block = Block("b")
    block.add("first", Linear(2, 2))
    block.add_layer(ReLU())
    assert [n for n, _ in block.named_children()] == ["first", "relu1"]
    with pytest.raises(ValueError, match="the name 'first' is already taken"):
        block.add("first", Linear(2, 2))
    with pytest.raises(ValueError, match="must be a non-empty string without '.'"):
        block.add("a.b", Linear(2, 2))
    with pytest.raises(TypeError, match="'x' must be a Layer, got int"):
        block.add("x", 3)
    with pytest.raises(ValueError, match="cannot contain itself"):
        block.me = block
    with pytest.raises(TypeError, match="Block must define forward.*SequentialBlock"):
        block(np.zeros((1, 2), np.float32))
