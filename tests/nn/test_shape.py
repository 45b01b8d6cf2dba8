"""Flatten and Reshape: shapes, values, gradients, errors."""
import numpy as np
import pytest

from tinyai.nn import Flatten, Reshape


def test_flatten(rng, layer_gradcheck):
    x = rng.standard_normal((2, 3, 4, 5))
    y = Flatten()(x)
    np.testing.assert_array_equal(y.data, x.reshape(2, 60))
    layer_gradcheck(Flatten(), x)


def test_reshape(rng, layer_gradcheck):
    x = rng.standard_normal((2, 12))
    np.testing.assert_array_equal(Reshape((3, -1))(x).data, x.reshape(2, 3, 4))
    layer_gradcheck(Reshape((4, 3)), x)


def test_errors():
    with pytest.raises(ValueError, match=r"Reshape 'r': cannot reshape input of shape \(2, 12\) to \(N, 5, -1\)"):
        Reshape((5, -1), name="r")(np.zeros((2, 12)))
    with pytest.raises(ValueError, match="Flatten: expected an input with a batch axis"):
        Flatten()(np.zeros(()))
