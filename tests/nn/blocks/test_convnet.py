"""SimpleConvNet: shapes through the stack, equivalence to its layers, error messages."""
import numpy as np
import pytest

import tinyai.functions as F
from tinyai.nn import SimpleConvNet


def test_shapes_and_composition(rng):
    net = SimpleConvNet()
    assert [(n, p.shape) for n, p in net.named_params()] == [
        ("conv1.W", (16, 1, 3, 3)), ("conv1.b", (16,)), ("conv2.W", (32, 16, 3, 3)), ("conv2.b", (32,)),
        ("fc.W", (32 * 7 * 7, 10)), ("fc.b", (10,))]
    x = rng.standard_normal((2, 1, 28, 28)).astype(np.float32)
    y = net(x)
    assert y.shape == (2, 10)
    h = F.max_pool2d(F.relu(F.conv2d(x, net.conv1.W, net.conv1.b, pad=1)), 2)
    h = F.max_pool2d(F.relu(F.conv2d(h, net.conv2.W, net.conv2.b, pad=1)), 2)
    np.testing.assert_allclose(y.data, (h.data.reshape(2, -1) @ net.fc.W.data + net.fc.b.data), rtol=1e-4, atol=1e-5)


def test_gradients_reach_all_parameters(rng):
    net = SimpleConvNet(in_channels=3, image_size=8, num_classes=4, channels=(2, 3))
    loss = F.softmax_cross_entropy(net(rng.standard_normal((2, 3, 8, 8)).astype(np.float32)), np.array([0, 3]))
    loss.backward()
    assert all(p.grad is not None and np.any(p.grad.data != 0) for p in net.params())


def test_errors():
    net = SimpleConvNet()
    with pytest.raises(ValueError, match=r"SimpleConvNet 'convnet': expected images of shape \(N, 1, 28, 28\), "
                                         r"got \(4, 3, 28, 28\)"):
        net(np.zeros((4, 3, 28, 28), np.float32))
    with pytest.raises(ValueError, match=r"expected images of shape \(N, 1, 28, 28\), got \(4, 784\)"):
        net(np.zeros((4, 784), np.float32))
