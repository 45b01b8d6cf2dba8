"""im2col/col2im, conv2d and conv_transpose2d.

Forward values are compared with direct nested-loop computations written
here; gradients with gradcheck over hypothesis-drawn geometries (stride and
pad drawn per axis). Every check runs on NumPy and the CPU stand-in for CuPy.
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
    """(n, c, o, h, w, (kh, kw), (sh, sw), (ph, pw)) with a kernel that fits the padded input."""
    n, c, o = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel)))
    stride = (draw(st.integers(1, max_stride)), draw(st.integers(1, max_stride)))
    pad = (draw(st.integers(0, kernel[0] - 1)), draw(st.integers(0, kernel[1] - 1)))
    h = draw(st.integers(max(1, kernel[0] - 2 * pad[0]), max_size))
    w = draw(st.integers(max(1, kernel[1] - 2 * pad[1]), max_size))
    return n, c, o, h, w, kernel, stride, pad


# -- plain NumPy references ----------------------------------------------------------
def padded(x, pad):
    return np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))


def reference_conv2d(x, W, b, stride, pad):
    xp_ = padded(x, pad)
    n, _, h, w = xp_.shape
    o, _, kh, kw = W.shape
    oh, ow = (h - kh) // stride[0] + 1, (w - kw) // stride[1] + 1
    y = np.zeros((n, o, oh, ow))
    for i in range(n):
        for k in range(o):
            for r in range(oh):
                for s in range(ow):
                    window = xp_[i, :, r * stride[0]:r * stride[0] + kh, s * stride[1]:s * stride[1] + kw]
                    y[i, k, r, s] = np.sum(window * W[k]) + (0.0 if b is None else b[k])
    return y


def reference_conv_transpose2d(x, W, b, stride, pad, out_size):
    """Each input pixel stamps x * W[c] onto the (padded) output canvas; then crop the pad."""
    n, c, h, w = x.shape
    _, o, kh, kw = W.shape
    canvas = np.zeros((n, o, out_size[0] + 2 * pad[0] + kh, out_size[1] + 2 * pad[1] + kw))
    for i in range(n):
        for ch in range(c):
            for r in range(h):
                for s in range(w):
                    canvas[i, :, r * stride[0]:r * stride[0] + kh, s * stride[1]:s * stride[1] + kw] += \
                        x[i, ch, r, s] * W[ch]
    y = canvas[:, :, pad[0]:pad[0] + out_size[0], pad[1]:pad[1] + out_size[1]]
    return y if b is None else y + b.reshape(1, -1, 1, 1)


# -- im2col / col2im -----------------------------------------------------------------------
@given(g=geometries())
def test_im2col_holds_every_window(xp, to_xp, g):
    n, c, _, h, w, kernel, stride, pad = g
    x = np.random.default_rng(0).standard_normal((n, c, h, w))
    col = host(F.im2col(to_xp(x), kernel, stride, pad))
    xpad = padded(x, pad)
    oh, ow = col.shape[4:]
    assert oh == (h + 2 * pad[0] - kernel[0]) // stride[0] + 1
    assert ow == (w + 2 * pad[1] - kernel[1]) // stride[1] + 1
    for r in range(oh):
        for s in range(ow):
            window = xpad[:, :, r * stride[0]:r * stride[0] + kernel[0], s * stride[1]:s * stride[1] + kernel[1]]
            np.testing.assert_array_equal(col[:, :, :, :, r, s], window)
    gradcheck(lambda v: F.im2col(v, kernel, stride, pad), to_xp(x))


def test_col2im_adds_overlapping_windows(xp, to_xp):
    # 3x3 windows, stride 1, on a 4x4 image: the pixel (i, j) lies in as many
    # windows as there are window corners within reach, min(i,1)+... counted here by hand.
    ones = np.ones((1, 1, 3, 3, 2, 2))
    img = host(F.col2im(to_xp(ones), (1, 1, 4, 4), 3))
    per_axis = np.array([1, 2, 2, 1])  # windows covering rows 0..3 (window starts 0 and 1)
    np.testing.assert_array_equal(img[0, 0], np.outer(per_axis, per_axis))


def test_col2im_is_the_adjoint_of_im2col(xp, to_xp, rng):
    # <im2col(x), c> == <x, col2im(c)> for every x and c: the defining property of the adjoint.
    x = rng.standard_normal((2, 2, 5, 4))
    col = F.im2col(to_xp(x), (3, 2), (2, 1), (1, 1))
    c = rng.standard_normal(col.shape)
    back = host(F.col2im(to_xp(c), x.shape, (3, 2), (2, 1), (1, 1)))
    assert np.sum(host(col) * c) == pytest.approx(np.sum(x * back), rel=1e-12)
    gradcheck(lambda v: F.col2im(v, x.shape, (3, 2), (2, 1), (1, 1)), to_xp(c))


def test_col2im_rejects_a_col_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"col2im: col has shape \(1, 1, 3, 3, 1, 1\), but image shape "
                                         r"\(1, 1, 4, 4\) .* needs \(1, 1, 3, 3, 2, 2\)"):
        F.col2im(np.ones((1, 1, 3, 3, 1, 1)), (1, 1, 4, 4), 3)


# -- conv2d ----------------------------------------------------------------------------------------
@given(g=geometries(), with_bias=st.booleans())
def test_conv2d_matches_loops_and_gradcheck(xp, to_xp, g, with_bias):
    n, c, o, h, w, kernel, stride, pad = g
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, c, h, w))
    W = rng.standard_normal((o, c) + kernel)
    b = rng.standard_normal(o) if with_bias else None
    y = F.conv2d(to_xp(x), to_xp(W), to_xp(b), stride=stride, pad=pad)
    assert ta.get_array_module(y.data) is xp
    np.testing.assert_allclose(host(y), reference_conv2d(x, W, b, stride, pad), rtol=1e-10, atol=1e-12)
    if with_bias:
        gradcheck(lambda *v: F.conv2d(*v, stride=stride, pad=pad), *to_xp((x, W, b)))
    else:
        gradcheck(lambda *v: F.conv2d(*v, stride=stride, pad=pad), *to_xp((x, W)))


def test_conv2d_int_stride_and_pad_mean_both_axes(rng):
    x, W = rng.standard_normal((1, 2, 6, 5)), rng.standard_normal((3, 2, 3, 3))
    np.testing.assert_allclose(host(F.conv2d(x, W, stride=2, pad=1)),
                               reference_conv2d(x, W, None, (2, 2), (1, 1)), rtol=1e-10)


def test_conv2d_keeps_float32(rng):
    x = rng.standard_normal((1, 2, 4, 4)).astype(np.float32)
    W = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    b = np.zeros(3, np.float32)
    y = F.conv2d(x, W, b, pad=1)
    assert y.dtype == np.float32
    y.backward(np.ones(y.shape, np.float32))


def test_conv2d_second_derivatives(xp, to_xp, rng):
    x, W, b = rng.standard_normal((2, 2, 5, 4)), rng.standard_normal((3, 2, 3, 2)), rng.standard_normal(3)
    gradgradcheck(lambda *v: F.conv2d(*v, stride=(2, 1), pad=(1, 0)), *to_xp((x, W, b)))


# -- conv_transpose2d ----------------------------------------------------------------------------
@given(g=geometries(), extra=st.data(), with_bias=st.booleans())
def test_conv_transpose2d_matches_loops_and_gradcheck(xp, to_xp, g, extra, with_bias):
    n, c, o, h, w, kernel, stride, pad = g
    # The input of the transposed convolution is the *output* of the forward one.
    ih = (h + 2 * pad[0] - kernel[0]) // stride[0] + 1
    iw = (w + 2 * pad[1] - kernel[1]) // stride[1] + 1
    base = (stride[0] * (ih - 1) + kernel[0] - 2 * pad[0], stride[1] * (iw - 1) + kernel[1] - 2 * pad[1])
    # Any size the forward convolution maps to (ih, iw) is a valid out_size.
    out_size = (extra.draw(st.integers(max(1, base[0]), base[0] + stride[0] - 1)),
                extra.draw(st.integers(max(1, base[1]), base[1] + stride[1] - 1)))
    rng = np.random.default_rng(2)
    x = rng.standard_normal((n, c, ih, iw))
    W = rng.standard_normal((c, o) + kernel)
    b = rng.standard_normal(o) if with_bias else None
    y = F.conv_transpose2d(to_xp(x), to_xp(W), to_xp(b), stride=stride, pad=pad, out_size=out_size)
    assert y.shape == (n, o) + out_size
    np.testing.assert_allclose(host(y), reference_conv_transpose2d(x, W, b, stride, pad, out_size),
                               rtol=1e-10, atol=1e-12)
    args = (x, W, b) if with_bias else (x, W)
    gradcheck(lambda *v: F.conv_transpose2d(*v, stride=stride, pad=pad, out_size=out_size), *to_xp(args))


def test_conv_transpose2d_default_size_and_upsampling(rng):
    x, W = rng.standard_normal((1, 4, 3, 3)), rng.standard_normal((4, 2, 4, 4))
    y = F.conv_transpose2d(x, W, stride=2, pad=1)
    assert y.shape == (1, 2, 6, 6)  # 2 * (3 - 1) + 4 - 2 * 1
    np.testing.assert_allclose(host(y), reference_conv_transpose2d(x, W, None, (2, 2), (1, 1), (6, 6)),
                               rtol=1e-10)


def test_conv_transpose2d_is_the_adjoint_of_conv2d(xp, to_xp, rng):
    # <conv2d(x, W), v> == <x, conv_transpose2d(v, W)>, with the same W array.
    x, W = rng.standard_normal((2, 3, 7, 6)), rng.standard_normal((4, 3, 3, 2))
    y = host(F.conv2d(to_xp(x), to_xp(W), stride=(2, 3), pad=(1, 1)))
    v = rng.standard_normal(y.shape)
    back = host(F.conv_transpose2d(to_xp(v), to_xp(W), stride=(2, 3), pad=(1, 1), out_size=(7, 6)))
    assert np.sum(y * v) == pytest.approx(np.sum(x * back), rel=1e-12)


def test_conv_transpose2d_second_derivatives(xp, to_xp, rng):
    x, W, b = rng.standard_normal((2, 3, 3, 2)), rng.standard_normal((3, 2, 3, 2)), rng.standard_normal(2)
    gradgradcheck(lambda *v: F.conv_transpose2d(*v, stride=2, pad=(1, 0), out_size=(6, 4)), *to_xp((x, W, b)))


# -- errors ------------------------------------------------------------------------------------------
def test_conv2d_channel_mismatch_message():
    with pytest.raises(ValueError, match=r"^conv2d: input has 3 channels but W expects 1 "
                                         r"\(W shape \(8, 1, 3, 3\)\)$"):
        F.conv2d(np.zeros((2, 3, 5, 5)), np.zeros((8, 1, 3, 3)))


def test_conv2d_kernel_larger_than_padded_input():
    with pytest.raises(ValueError, match=r"conv2d: kernel 5x5 is larger than the padded input 4x4 "
                                         r"\(input shape \(1, 1, 2, 2\), pad \(1, 1\)\)"):
        F.conv2d(np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 5, 5)), pad=1)


@pytest.mark.parametrize("kwargs, message", [
    ({"stride": 0}, r"conv2d: stride must be a positive int or a pair of them, got 0"),
    ({"stride": (1, 2, 3)}, r"conv2d: stride must be a positive int or a pair of them, got \(1, 2, 3\)"),
    ({"pad": -1}, r"conv2d: pad must be a non-negative int or a pair of them, got -1"),
    ({"pad": 1.5}, r"conv2d: pad must be a non-negative int or a pair of them, got 1.5"),
    ({"stride": True}, r"conv2d: stride must be a positive int or a pair of them, got True"),
])
def test_conv2d_bad_stride_or_pad(kwargs, message):
    with pytest.raises(ValueError, match=message):
        F.conv2d(np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 3, 3)), **kwargs)


def test_conv2d_shape_errors():
    with pytest.raises(ValueError, match=r"conv2d: input must be 4-D \(N, C, H, W\), got shape \(3, 4, 4\)"):
        F.conv2d(np.zeros((3, 4, 4)), np.zeros((1, 3, 3, 3)))
    with pytest.raises(ValueError, match=r"conv2d: W must be 4-D \(out_channels, in_channels, kh, kw\), "
                                         r"got shape \(3, 3\)"):
        F.conv2d(np.zeros((1, 3, 4, 4)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"conv2d: bias has shape \(3,\), expected \(2,\) "
                                         r"for W of shape \(2, 1, 3, 3\)"):
        F.conv2d(np.zeros((1, 1, 4, 4)), np.zeros((2, 1, 3, 3)), np.zeros(3))


def test_conv_transpose2d_errors():
    with pytest.raises(ValueError, match=r"conv_transpose2d: input has 3 channels but W expects 2 "
                                         r"\(W shape \(2, 4, 3, 3\)\)"):
        F.conv_transpose2d(np.zeros((1, 3, 4, 4)), np.zeros((2, 4, 3, 3)))
    with pytest.raises(ValueError, match=r"conv_transpose2d: out_size \(9, 6\) cannot come from input shape "
                                         r"\(1, 2, 3, 3\) .* along axis 2 the size must be between 6 and 7"):
        F.conv_transpose2d(np.zeros((1, 2, 3, 3)), np.zeros((2, 1, 4, 4)), stride=2, pad=1, out_size=(9, 6))
    with pytest.raises(ValueError, match=r"conv_transpose2d: bias has shape \(2,\), expected \(4,\)"):
        F.conv_transpose2d(np.zeros((1, 2, 3, 3)), np.zeros((2, 4, 3, 3)), np.zeros(2))


# -- the fast layout against the plain im2col -------------------------------------------------
@given(g=geometries(max_size=6), c=st.sampled_from([1, 2, 5, 8]))
def test_window_rows_equal_the_plain_im2col(xp, to_xp, g, c):
    # Few channels take the column-first construction, more the channels-last rows.
    from tinyai.functions.im2col import im2col_array, window_rows

    n, _, _, h, w, kernel, stride, pad = g
    x = to_xp(np.random.default_rng(h * 7 + w).standard_normal((n, c, h, w)))
    col = ta.to_cpu(im2col_array(x, kernel, stride, pad))  # (N, C, kh, kw, OH, OW)
    rows = ta.to_cpu(window_rows(x, kernel, stride, pad))
    expected = col.transpose(0, 4, 5, 2, 3, 1).reshape(rows.shape)  # rows (n, y, x), columns (i, j, c)
    np.testing.assert_array_equal(rows, expected)


@given(g=geometries(max_size=6))
def test_blocks_to_image_equals_the_plain_col2im(xp, to_xp, g):
    from tinyai.functions.im2col import blocks_to_image, col2im_array, conv_output_size

    n, c, _, h, w, kernel, stride, pad = g
    oh, ow = conv_output_size(h, kernel[0], stride[0], pad[0]), conv_output_size(w, kernel[1], stride[1], pad[1])
    col = np.random.default_rng(oh * 5 + ow).standard_normal((n, c) + kernel + (oh, ow))
    blocks = col.transpose(2, 3, 0, 4, 5, 1).reshape(kernel[0] * kernel[1], n * oh * ow, c)
    got = ta.to_cpu(blocks_to_image(to_xp(blocks), (n, c, h, w), kernel, stride, pad))
    np.testing.assert_allclose(got, ta.to_cpu(col2im_array(to_xp(col), (n, c, h, w), kernel, stride, pad)),
                               rtol=1e-12, atol=1e-12)


def test_conv2d_gives_channels_last_memory_and_takes_either_layout(xp, to_xp, rng):
    x = rng.standard_normal((2, 3, 6, 5))
    W = rng.standard_normal((4, 3, 3, 2))
    y = F.conv2d(to_xp(x), to_xp(W), stride=(2, 1), pad=(1, 0))
    # (N, O, OH, OW) in shape, (N, OH, OW, O) in memory: the channel axis has the smallest stride.
    assert y.data.strides[1] == y.data.itemsize
    x_last = to_xp(np.ascontiguousarray(x.transpose(0, 2, 3, 1))).transpose(0, 3, 1, 2)
    y_last = F.conv2d(x_last, to_xp(W), stride=(2, 1), pad=(1, 0))
    np.testing.assert_allclose(host(y_last), host(y), rtol=1e-12)
    np.testing.assert_allclose(host(y), reference_conv2d(x, W, None, (2, 1), (1, 0)), rtol=1e-10)


def test_a_small_cnn_chain_gradchecks_through_every_fast_path(xp, to_xp, rng):
    # conv (non-square, stride 2, pad) -> relu -> max-pool (tiling) -> conv -> avg-pool (overlapping)
    x = rng.standard_normal((2, 2, 9, 12))
    W1, b1 = rng.standard_normal((3, 2, 3, 2)) * 0.5, rng.standard_normal(3)
    W2 = rng.standard_normal((2, 3, 2, 2)) * 0.5

    def net(v, w1, c1, w2):
        h = F.max_pool2d(F.relu(F.conv2d(v, w1, c1, stride=(1, 2), pad=1)), 2)
        return F.avg_pool2d(F.conv2d(h, w2, pad=(1, 0)), 2, stride=1)

    assert gradcheck(net, *map(to_xp, (x, W1, b1, W2)))


def test_convolutions_in_groups_of_images_equal_the_whole_batch(xp, to_xp, rng, monkeypatch):
    # The fast paths go through the batch in groups of images (GROUP_BYTES);
    # with a group size of one image every group boundary is crossed.
    import importlib

    conv_module = importlib.import_module("tinyai.functions.conv")
    x = rng.standard_normal((5, 3, 7, 6))
    W, b = rng.standard_normal((4, 3, 3, 2)), rng.standard_normal(4)
    assert len(conv_module.image_groups(xp, 5, 8 * 3 * 2 * 3 * 7 * 6)) == 1
    monkeypatch.setattr(conv_module, "GROUP_BYTES", 1)
    if xp.__name__ != "cupy":
        assert conv_module.image_groups(xp, 5, 100) == [slice(i, i + 1) for i in range(5)]
    y = F.conv2d(to_xp(x), to_xp(W), to_xp(b), stride=(2, 1), pad=(1, 1))
    np.testing.assert_allclose(host(y), reference_conv2d(x, W, b, (2, 1), (1, 1)), rtol=1e-10, atol=1e-12)
    v = rng.standard_normal(y.shape)
    back = F.conv_transpose2d(to_xp(v), to_xp(W), stride=(2, 1), pad=(1, 1), out_size=(7, 6))
    np.testing.assert_allclose(host(back), reference_conv_transpose2d(v, W, None, (2, 1), (1, 1), (7, 6)),
                               rtol=1e-10, atol=1e-12)
    gradcheck(lambda *a: F.conv2d(*a, stride=(2, 1), pad=(1, 1)), *to_xp((x[:3], W, b)))
    gradcheck(lambda *a: F.conv_transpose2d(*a, stride=(2, 1), pad=(1, 1), out_size=(7, 6)),
              *to_xp((v[:3], W)))


def test_conv2d_gradients_are_the_same_whichever_layout_gy_has(xp, to_xp, rng):
    # Conv2d.backward lays gy out channels last once (ChannelsLast) for its three products.
    from tinyai.functions.conv import ChannelsLast

    x, W, b = rng.standard_normal((2, 3, 6, 5)), rng.standard_normal((4, 3, 3, 2)), rng.standard_normal(4)
    gy = rng.standard_normal((2, 4, 6, 4))
    grads = []
    for gy_data in (to_xp(gy), to_xp(np.ascontiguousarray(gy.transpose(0, 2, 3, 1))).transpose(0, 3, 1, 2)):
        vs = [ta.Variable(to_xp(a)) for a in (x, W, b)]
        F.conv2d(*vs, pad=(1, 0)).backward(gy_data)
        grads.append([host(v.grad) for v in vs])
    for first, last in zip(*grads):
        np.testing.assert_allclose(first, last, rtol=1e-12)
    laid_out = ChannelsLast()(to_xp(gy)).data
    assert laid_out.strides[1] == laid_out.itemsize
    np.testing.assert_array_equal(ta.to_cpu(laid_out), gy)
