"""The strategies keep their promises: margins, valid geometries, broadcastable shapes."""
import numpy as np
from hypothesis import given

from tinyai.testing import strategies as tst


@given(tst.float_arrays())
def test_float_arrays_are_float64_and_moderate(x):
    assert x.dtype == np.float64
    assert np.all(np.isfinite(x)) and np.all(np.abs(x) <= tst.MAGNITUDE)


@given(tst.float_arrays(dtype=np.float32, shape=(2, 3)))
def test_float_arrays_keep_dtype_and_fixed_shape(x):
    assert x.dtype == np.float32 and x.shape == (2, 3)


@given(tst.broadcastable_shapes())
def test_broadcastable_shapes_broadcast(pair):
    a, b = pair
    result = np.broadcast_shapes(a, b)  # raises if they do not broadcast
    assert len(result) == max(len(a), len(b))


@given(tst.nonzero_arrays(margin=0.2))
def test_nonzero_arrays_keep_the_margin(x):
    assert np.all(np.abs(x) >= 0.2)


@given(tst.positive_arrays(margin=0.1))
def test_positive_arrays_keep_the_margin(x):
    assert np.all(x >= 0.1)


@given(tst.distinct_arrays(margin=0.1))
def test_distinct_arrays_have_no_near_ties(x):
    values = np.sort(x.ravel())
    assert np.all(np.diff(values) >= 0.1 - 1e-12)


def test_nudge_away_moves_values_to_the_side_they_were_on():
    x = np.array([0.49, 0.5, 0.55, -0.96, 2.0])
    np.testing.assert_allclose(tst.nudge_away(x, [0.5, -1.0], 0.1), [0.4, 0.6, 0.6, -0.9, 2.0])


@given(tst.conv_geometries())
def test_conv_geometries_give_a_valid_output(g):
    for size, kernel, out in ((g.height, g.kernel_h, g.out_h), (g.width, g.kernel_w, g.out_w)):
        assert g.pad < kernel
        assert out == (size + 2 * g.pad - kernel) // g.stride + 1 >= 1
        # the last window starts inside the padded input
        assert (out - 1) * g.stride + kernel <= size + 2 * g.pad


@given(tst.pool_geometries())
def test_pool_geometries_limit_padding(g):
    assert g.pad <= min(g.kernel_h, g.kernel_w) // 2
    assert g.out_h >= 1 and g.out_w >= 1
