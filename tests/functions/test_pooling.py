"""max_pool2d and avg_pool2d against nested-loop references, with gradcheck.

Max-pooling inputs are permutations (all values distinct and at least 0.1
apart), so no window has a tie and a finite-difference step cannot change
which element wins.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinyai as ta
import tinyai.functions as F
from tinyai.testing import gradcheck, gradgradcheck


def host(v):
    return ta.to_cpu(v.data)


@st.composite
def geometries(draw, max_size=5, max_kernel=3, max_stride=3):
    """(shape, kernel, stride or None, pad) for a pooling that fits."""
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel)))
    stride = draw(st.none() | st.tuples(st.integers(1, max_stride), st.integers(1, max_stride)))
    pad = (draw(st.integers(0, kernel[0] - 1)), draw(st.integers(0, kernel[1] - 1)))
    h = draw(st.integers(max(1, kernel[0] - 2 * pad[0]), max_size))
    w = draw(st.integers(max(1, kernel[1] - 2 * pad[1]), max_size))
    return (n, c, h, w), kernel, stride, pad


def distinct(shape, seed):
    """All-different values 0.1 apart, in random order: no ties anywhere."""
    size = int(np.prod(shape))
    return (np.random.default_rng(seed).permutation(size) - size / 2).reshape(shape) * 0.1


def reference_pool(x, kernel, stride, pad, reduce, fill):
    stride = kernel if stride is None else stride
    xp_ = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])), constant_values=fill)
    n, c, h, w = xp_.shape
    oh, ow = (h - kernel[0]) // stride[0] + 1, (w - kernel[1]) // stride[1] + 1
    y = np.zeros((n, c, oh, ow))
    for i in range(n):
        for k in range(c):
            for r in range(oh):
                for s in range(ow):
                    y[i, k, r, s] = reduce(xp_[i, k, r * stride[0]:r * stride[0] + kernel[0],
                                               s * stride[1]:s * stride[1] + kernel[1]])
    return y


@given(g=geometries(), seed=st.integers(0, 1000))
def test_max_pool2d_matches_loops_and_gradcheck(xp, to_xp, g, seed):
    shape, kernel, stride, pad = g
    x = distinct(shape, seed)
    y = F.max_pool2d(to_xp(x), kernel, stride, pad)
    assert ta.get_array_module(y.data) is xp
    np.testing.assert_array_equal(host(y), reference_pool(x, kernel, stride, pad, np.max, -np.inf))
    gradcheck(lambda v: F.max_pool2d(v, kernel, stride, pad), to_xp(x))


@given(g=geometries(), seed=st.integers(0, 1000))
def test_avg_pool2d_matches_loops_and_gradcheck(xp, to_xp, g, seed):
    shape, kernel, stride, pad = g
    x = np.random.default_rng(seed).standard_normal(shape)
    y = F.avg_pool2d(to_xp(x), kernel, stride, pad)
    # Padding zeros count: every window divides by kh * kw.
    np.testing.assert_allclose(host(y), reference_pool(x, kernel, stride, pad, np.mean, 0.0), rtol=1e-12)
    gradcheck(lambda v: F.avg_pool2d(v, kernel, stride, pad), to_xp(x))


def test_max_pool2d_gradient_goes_to_the_argmax(xp, to_xp):
    x = np.array([[1.0, 5.0, 2.0, 0.0],
                  [3.0, 4.0, 7.0, 6.0],
                  [9.0, 8.0, -1.0, -2.0],
                  [0.5, 0.2, -3.0, -0.5]]).reshape(1, 1, 4, 4)
    v = ta.Variable(to_xp(x))
    y = F.max_pool2d(v, 2)  # stride defaults to the kernel size
    np.testing.assert_array_equal(host(y)[0, 0], [[5.0, 7.0], [9.0, -0.5]])
    y.backward(to_xp(np.array([[10.0, 20.0], [30.0, 40.0]]).reshape(1, 1, 2, 2)))
    expected = np.zeros((4, 4))
    expected[0, 1], expected[1, 2], expected[2, 0], expected[3, 3] = 10.0, 20.0, 30.0, 40.0
    np.testing.assert_array_equal(host(v.grad)[0, 0], expected)


def test_max_pool2d_overlapping_windows_add_their_gradients(xp, to_xp):
    # The 9 is the maximum of all four 2x2 windows (stride 1) that contain it.
    x = np.array([[1.0, 2.0, 3.0], [4.0, 9.0, 5.0], [6.0, 7.0, 8.0]]).reshape(1, 1, 3, 3)
    v = ta.Variable(to_xp(x))
    F.sum(F.max_pool2d(v, 2, stride=1) * to_xp(np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 2, 2))).backward()
    expected = np.zeros((3, 3))
    expected[1, 1] = 1.0 + 2.0 + 3.0 + 4.0
    np.testing.assert_array_equal(host(v.grad)[0, 0], expected)


def test_max_pool2d_padding_never_wins(xp, to_xp):
    x = -np.arange(1.0, 5.0).reshape(1, 1, 2, 2)  # all negative: zero padding would win
    np.testing.assert_array_equal(host(F.max_pool2d(to_xp(x), 2, stride=1, pad=1))[0, 0],
                                  [[-1.0, -1.0, -2.0], [-1.0, -1.0, -2.0], [-3.0, -3.0, -4.0]])


def test_avg_pool2d_spreads_the_gradient_evenly(xp, to_xp):
    v = ta.Variable(to_xp(np.zeros((1, 1, 3, 3))))
    F.avg_pool2d(v, 2, stride=1).backward(to_xp(np.ones((1, 1, 2, 2))))
    # Each pixel gets 1/4 from each window that covers it.
    np.testing.assert_allclose(host(v.grad)[0, 0], np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 4)


def test_pooling_second_derivatives(xp, to_xp):
    x = distinct((2, 2, 5, 4), 7)
    gradgradcheck(lambda v: F.max_pool2d(v, 3, stride=2, pad=1) ** 2, to_xp(x))
    gradgradcheck(lambda v: F.avg_pool2d(v, (3, 2), stride=(1, 2), pad=(1, 0)) ** 2, to_xp(x))


def test_pooling_keeps_float32():
    x = distinct((1, 1, 4, 4), 0).astype(np.float32)
    for pool in (F.max_pool2d, F.avg_pool2d):
        y = pool(x, 2)
        assert y.dtype == np.float32


@pytest.mark.parametrize("pool", [F.max_pool2d, F.avg_pool2d], ids=["max", "avg"])
def test_pooling_errors(pool):
    name = pool.__name__
    with pytest.raises(ValueError, match=rf"{name}: pad \(2, 2\) must be smaller than kernel_size \(2, 2\)"):
        pool(np.zeros((1, 1, 4, 4)), 2, pad=2)
    with pytest.raises(ValueError, match=rf"{name}: kernel 5x5 is larger than the padded input 4x4 "
                                         r"\(input shape \(1, 1, 4, 4\), pad \(0, 0\)\)"):
        pool(np.zeros((1, 1, 4, 4)), 5)
    with pytest.raises(ValueError, match=rf"{name}: input must be 4-D \(N, C, H, W\), got shape \(4, 4\)"):
        pool(np.zeros((4, 4)), 2)
    with pytest.raises(ValueError, match=rf"{name}: kernel_size must be a positive int or a pair of them, "
                                         r"got 0"):
        pool(np.zeros((1, 1, 4, 4)), 0)


def test_max_pool2d_needs_floats():
    with pytest.raises(TypeError, match=r"max_pool2d: input must be floating point, got dtype int64"):
        F.max_pool2d(np.zeros((1, 1, 4, 4), dtype=np.int64), 2)


@pytest.mark.parametrize("pool", [F.max_pool2d, F.avg_pool2d])
@pytest.mark.parametrize("kernel, stride", [(2, None), (3, 2)])
def test_pooling_on_channels_last_input_matches_and_keeps_the_layout(xp, to_xp, pool, kernel, stride):
    # conv2d hands its outputs on channels last; pooling must give the same numbers.
    x = np.random.default_rng(3).standard_normal((2, 4, 7, 6))
    gy_shape = pool(to_xp(x), kernel, stride).shape
    gy = np.random.default_rng(4).standard_normal(gy_shape)
    grads = []
    for layout in ("first", "last"):
        data = to_xp(x) if layout == "first" else \
            to_xp(np.ascontiguousarray(x.transpose(0, 2, 3, 1))).transpose(0, 3, 1, 2)
        v = ta.Variable(data)
        y = pool(v, kernel, stride)
        reduce, fill = (np.max, -np.inf) if pool is F.max_pool2d else (np.mean, 0.0)
        expected = reference_pool(x, (kernel, kernel), (stride or kernel,) * 2, (0, 0), reduce, fill)
        np.testing.assert_allclose(host(y), expected, rtol=1e-12)
        y.backward(to_xp(gy))
        if layout == "last":
            assert v.grad.data.strides[1] == v.grad.data.itemsize  # the gradient follows the input's layout
        grads.append(host(v.grad))
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-12)


@pytest.mark.parametrize("pool", [F.max_pool2d, F.avg_pool2d])
@pytest.mark.parametrize("shape, kernel, stride, pad", [
    ((2, 3, 8, 6), (2, 2), None, (0, 0)),      # windows tiling the image: one strided copy back
    ((2, 3, 7, 6), (3, 3), (2, 2), (1, 1)),    # overlapping, padded: slice additions
    ((1, 5, 5, 7), (2, 3), (1, 2), (1, 0)),    # non-square kernel, odd sizes
])
def test_pooling_channels_last_fast_paths_match_loops_and_gradcheck(xp, to_xp, pool, shape, kernel, stride, pad):
    # With the channels last, pixels are copied whole (tinyai.functions.pooling._copy_pixels).
    x = distinct(shape, 7)
    reduce, fill = (np.max, -np.inf) if pool is F.max_pool2d else (np.mean, 0.0)
    last = to_xp(np.ascontiguousarray(x.transpose(0, 2, 3, 1))).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(host(pool(last, kernel, stride, pad)),
                               reference_pool(x, kernel, stride, pad, reduce, fill), rtol=1e-12)
    gradcheck(lambda v: pool(v, kernel, stride, pad), last)


def test_max_pool2d_ties_on_channels_last_input_go_to_the_first_in_row_major_order(xp, to_xp):
    x = np.zeros((1, 3, 2, 2))
    x[:, 1] = [[1.0, 2.0], [2.0, 2.0]]
    v = ta.Variable(to_xp(np.ascontiguousarray(x.transpose(0, 2, 3, 1))).transpose(0, 3, 1, 2))
    F.max_pool2d(v, 2).backward(to_xp(np.array([1.0, 2.0, 3.0]).reshape(1, 3, 1, 1)))
    np.testing.assert_array_equal(host(v.grad)[0], [[[1.0, 0.0], [0.0, 0.0]], [[0.0, 2.0], [0.0, 0.0]],
                                                     [[3.0, 0.0], [0.0, 0.0]]])


def test_max_pool2d_tie_goes_to_the_first_in_row_major_order(xp, to_xp):
    v = ta.Variable(to_xp(np.full((1, 1, 2, 4), 3.0)))
    F.max_pool2d(v, 2).backward(to_xp(np.array([[[[1.0, 2.0]]]])))
    np.testing.assert_array_equal(host(v.grad)[0, 0], [[1.0, 0.0, 2.0, 0.0], [0.0, 0.0, 0.0, 0.0]])


@pytest.mark.parametrize("pool", [F.max_pool2d, F.avg_pool2d])
@pytest.mark.parametrize("x_last, gy_last", [(True, False), (False, True)])
def test_pooling_gradient_is_the_same_whichever_layouts_input_and_gradient_have(pool, x_last, gy_last):
    # A gradient arriving channels first at a channels-last pooling (after a
    # reshape from a linear layer) is brought to the pooling's layout first.
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 4, 6))
    gy = rng.standard_normal((2, 3, 2, 3))

    def laid_out(a, channels_last):
        return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2) if channels_last else a.copy()

    expected = []
    for layout in ((False, False), (x_last, gy_last)):
        v = ta.Variable(laid_out(x, layout[0]))
        pool(v, 2).backward(laid_out(gy, layout[1]))
        expected.append(v.grad.data)
    # Independent of both: every input element gets the gradient of its window,
    # times 1/4 (average) or times whether it is the window's maximum.
    windows = x.reshape(2, 3, 2, 2, 3, 2).transpose(0, 1, 2, 4, 3, 5)
    spread = np.repeat(np.repeat(gy, 2, axis=2), 2, axis=3)
    if pool is F.avg_pool2d:
        reference = spread / 4
    else:
        is_max = windows == windows.max(axis=(4, 5), keepdims=True)
        reference = spread * is_max.transpose(0, 1, 2, 4, 3, 5).reshape(2, 3, 4, 6)
    for got in expected:
        np.testing.assert_allclose(got, reference, rtol=1e-12)
