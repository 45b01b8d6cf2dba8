"""MaxPool2d and AvgPool2d against NumPy window loops; gradients; errors."""
import numpy as np
import pytest

from tinyai.nn import AvgPool2d, MaxPool2d


def numpy_pool(x, k, s, reduce):
    n, c, h, w = x.shape
    oh, ow = (h - k) // s + 1, (w - k) // s + 1
    y = np.zeros((n, c, oh, ow))
    for r in range(oh):
        for q in range(ow):
            y[:, :, r, q] = reduce(x[:, :, r * s:r * s + k, q * s:q * s + k], axis=(2, 3))
    return y


@pytest.mark.parametrize("cls, reduce", [(MaxPool2d, np.max), (AvgPool2d, np.mean)])
@pytest.mark.parametrize("k, s", [(2, None), (3, 1), (3, 2)])
def test_matches_numpy(cls, reduce, k, s, rng):
    x = rng.standard_normal((2, 3, 7, 6))
    np.testing.assert_allclose(cls(k, s)(x).data, numpy_pool(x, k, s or k, reduce), rtol=1e-12)


@pytest.mark.parametrize("cls", [MaxPool2d, AvgPool2d])
def test_gradients(cls, rng, layer_gradcheck):
    x = rng.permutation(2 * 2 * 5 * 5).reshape(2, 2, 5, 5) * 0.1  # distinct values: no ties in max
    layer_gradcheck(cls(2, 1), x)


def test_max_pool_padding_never_wins():
    x = -np.ones((1, 1, 2, 2))
    np.testing.assert_array_equal(MaxPool2d(2, 2, pad=1)(x).data, -np.ones((1, 1, 2, 2)))


def test_errors():
    with pytest.raises(ValueError, match=r"MaxPool2d 'pool': expected an image batch of shape \(N, C, H, W\)"):
        MaxPool2d(2, name="pool")(np.zeros((4, 4)))
    with pytest.raises(ValueError, match=r"the 3x3 kernel does not fit the input of shape \(1, 1, 2, 2\)"):
        AvgPool2d(3)(np.zeros((1, 1, 2, 2)))
