"""Conv2d and DepthwiseSeparableConv2d against direct NumPy loops; gradients; errors."""
import numpy as np
import pytest

from tinyai.nn import Conv2d, DepthwiseSeparableConv2d


def numpy_conv(x, W, b, stride, pad):
    """Direct definition: every output pixel is a window's dot product with the kernel."""
    n, c, h, w = x.shape
    o, _, kh, kw = W.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - kh) // stride + 1, (w + 2 * pad - kw) // stride + 1
    y = np.zeros((n, o, oh, ow))
    for r in range(oh):
        for s in range(ow):
            window = xp[:, :, r * stride:r * stride + kh, s * stride:s * stride + kw]
            y[:, :, r, s] = np.einsum("nchw,ochw->no", window, W)
    return y + (0 if b is None else b[None, :, None, None])


@pytest.mark.parametrize("stride, pad", [(1, 0), (2, 1), (1, 1)])
def test_conv_matches_numpy(stride, pad, rng, float64):
    layer = Conv2d(3, 4, 3, stride=stride, pad=pad)
    layer.b.data = rng.standard_normal(4)
    x = rng.standard_normal((2, 3, 6, 5))
    np.testing.assert_allclose(layer(x).data, numpy_conv(x, layer.W.data, layer.b.data, stride, pad),
                               rtol=1e-10, atol=1e-12)


def test_conv_gradients(rng, float64, layer_gradcheck):
    layer = Conv2d(2, 3, (3, 2), stride=(2, 1), pad=1)
    layer.b.data = rng.standard_normal(3)
    layer_gradcheck(layer, rng.standard_normal((2, 2, 5, 4)))


def test_conv_lazy_and_init(rng):
    layer = Conv2d(None, 8, 3)
    layer(rng.standard_normal((1, 5, 7, 7)).astype(np.float32))
    assert layer.W.shape == (8, 5, 3, 3) and layer.b.shape == (8,)
    big = Conv2d(64, 64, 3)
    assert big.W.data.var() == pytest.approx(2 / (64 * 9), rel=0.05)  # He: 2 / fan_in


def test_depthwise_separable_matches_numpy(rng, float64):
    layer = DepthwiseSeparableConv2d(3, 5, 3, pad=1)
    layer.b.data = rng.standard_normal(5)
    x = rng.standard_normal((2, 3, 5, 5))
    depth = np.concatenate([numpy_conv(x[:, c:c + 1], layer.W_depth.data[c:c + 1], None, 1, 1) for c in range(3)],
                           axis=1)
    expected = numpy_conv(depth, layer.W_point.data, layer.b.data, 1, 0)
    np.testing.assert_allclose(layer(x).data, expected, rtol=1e-10, atol=1e-12)
    assert [(n, p.shape) for n, p in layer.named_params()] == [
        ("W_depth", (3, 1, 3, 3)), ("W_point", (5, 3, 1, 1)), ("b", (5,))]


def test_depthwise_separable_gradients(rng, float64, layer_gradcheck):
    layer = DepthwiseSeparableConv2d(2, 3, 3, stride=2, pad=1)
    layer_gradcheck(layer, rng.standard_normal((2, 2, 5, 5)))


def test_errors():
    layer = Conv2d(1, 8, 5, name="conv1")
    with pytest.raises(ValueError, match=r"Conv2d 'conv1': expected input of shape \(N, 1, H, W\) \(1 channels\), "
                                         r"got \(32, 3, 28, 28\)"):
        layer(np.zeros((32, 3, 28, 28), np.float32))
    with pytest.raises(ValueError, match=r"expected an image batch of shape \(N, C, H, W\), got \(32, 784\)"):
        layer(np.zeros((32, 784), np.float32))
    with pytest.raises(ValueError, match=r"the 5x5 kernel does not fit the input of shape \(1, 1, 4, 4\)"):
        layer(np.zeros((1, 1, 4, 4), np.float32))
    with pytest.raises(ValueError, match="kernel_size must be an int >= 1 or a pair of them, got 0"):
        Conv2d(1, 2, 0)
    with pytest.raises(ValueError, match="stride must be an int >= 1"):
        Conv2d(1, 2, 3, stride=(1, 0))
    with pytest.raises(ValueError, match=r"DepthwiseSeparableConv2d: expected input of shape \(N, 3, H, W\)"):
        DepthwiseSeparableConv2d(3, 4, 3)(np.zeros((1, 2, 5, 5), np.float32))
