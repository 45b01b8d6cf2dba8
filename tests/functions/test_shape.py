"""Shape operations: reshape, transpose, swapaxes, broadcast_to/sum_to, get_item,
concat, stack, split, expand_dims, squeeze, flatten."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinyai as ta
import tinyai.functions as F
from tinyai.testing import gradcheck, gradgradcheck
from tinyai.testing import strategies as tst


def host(v):
    return ta.to_cpu(v.data)


def var(to_xp, a):
    return ta.Variable(to_xp(np.asarray(a)))


@given(x=tst.float_arrays(min_dims=1), data=st.data())
def test_reshape_to_any_factorisation(xp, to_xp, x, data):
    target = data.draw(st.permutations(list(x.shape))).copy()
    if len(target) > 1 and data.draw(st.booleans()):
        target[0] = -1
    y = F.reshape(var(to_xp, x), tuple(target))
    np.testing.assert_array_equal(host(y), x.reshape(target))
    gradcheck(lambda v: F.reshape(v, tuple(target)), to_xp(x))


def test_reshape_accepts_separate_sizes_and_the_method(xp, to_xp):
    x = var(to_xp, np.arange(6.0))
    assert F.reshape(x, 2, 3).shape == (2, 3)
    assert x.reshape(3, 2).shape == (3, 2)
    assert x.reshape((1, 6)).shape == (1, 6)


def test_reshape_error_names_the_shapes(xp, to_xp):
    with pytest.raises(ValueError, match=r"reshape: cannot reshape an array of shape \(2, 3\) into \(4, 2\)"):
        F.reshape(var(to_xp, np.ones((2, 3))), (4, 2))


@given(x=tst.float_arrays(min_dims=0, max_dims=4), data=st.data())
def test_transpose_any_permutation(xp, to_xp, x, data):
    axes = data.draw(st.one_of(st.none(), st.permutations(range(x.ndim)).map(tuple)))
    if axes is not None and data.draw(st.booleans()):
        axes = tuple(a - x.ndim for a in axes)  # negative axes mean the same
    y = F.transpose(var(to_xp, x), axes)
    np.testing.assert_array_equal(host(y), np.transpose(x, axes))
    gradcheck(lambda v: F.transpose(v, axes), to_xp(x))


def test_transpose_method_and_T(xp, to_xp, rng):
    a = rng.standard_normal((2, 3, 4))
    x = var(to_xp, a)
    np.testing.assert_array_equal(host(x.T), a.T)
    np.testing.assert_array_equal(host(x.transpose(1, 0, 2)), a.transpose(1, 0, 2))
    np.testing.assert_array_equal(host(x.transpose((2, 0, 1))), a.transpose(2, 0, 1))


def test_transpose_rejects_axes_that_are_not_a_permutation(xp, to_xp):
    with pytest.raises(ValueError, match=r"transpose: axes \(0, 0\) are not a permutation for shape \(2, 3\)"):
        F.transpose(var(to_xp, np.ones((2, 3))), (0, 0))


def test_swapaxes(xp, to_xp, rng):
    a = rng.standard_normal((2, 3, 4))
    np.testing.assert_array_equal(host(F.swapaxes(var(to_xp, a), 0, 2)), np.swapaxes(a, 0, 2))
    gradcheck(lambda v: F.swapaxes(v, -1, 0), to_xp(a))


@pytest.mark.parametrize("f", [
    lambda v: F.reshape(v * v, (4, 3)),
    lambda v: F.transpose(v * v),
    lambda v: F.transpose(v * v, (1, 0, 2)),
    lambda v: F.sum_to(v * v, (3, 1)),
    lambda v: F.broadcast_to(v * v, (2, 2, 3, 2)),
], ids=["reshape", "transpose", "transpose_axes", "sum_to", "broadcast_to"])
def test_second_derivatives_of_shape_operations(xp, to_xp, rng, f):
    # A shape operation alone has a constant first derivative; after a square
    # its backward formula enters the second derivative.
    gradgradcheck(f, to_xp(rng.standard_normal((2, 3, 2))))


@given(shapes=tst.broadcastable_shapes(), data=st.data())
def test_broadcast_to_and_sum_to_are_adjoint(xp, to_xp, shapes, data):
    small = shapes[0]
    big = np.broadcast_shapes(*shapes)
    x = data.draw(tst.float_arrays(small))
    y = F.broadcast_to(var(to_xp, x), big)
    np.testing.assert_array_equal(host(y), np.broadcast_to(x, big))
    gradcheck(lambda v: F.broadcast_to(v, big), to_xp(x))
    gradgradcheck(lambda v: F.broadcast_to(v, big), to_xp(x))
    # sum_to undoes broadcasting: sum over the added and the stretched axes.
    g = data.draw(tst.float_arrays(big))
    lead = len(big) - len(small)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(small) if n == 1 and big[lead + i] != 1)
    expected = g.sum(axis=axes, keepdims=True).reshape(small) if g.ndim else g
    np.testing.assert_allclose(host(F.sum_to(var(to_xp, g), small)), expected, rtol=1e-12)
    gradcheck(lambda v: F.sum_to(v, small), to_xp(g))


def test_sum_to_and_broadcast_to_take_numpy_ints_and_lists_as_shapes(xp, to_xp):
    g = np.arange(6.0).reshape(2, 3)
    for shape in [(np.int64(1), 3), [1, np.int32(3)]]:
        y = F.sum_to(var(to_xp, g), shape)
        assert y.shape == (1, 3) and all(type(n) is int for n in y.shape)
        np.testing.assert_allclose(host(y), [[3.0, 5.0, 7.0]])
        assert F.broadcast_to(y, [2, np.int64(3)]).shape == (2, 3)


def test_broadcast_to_error(xp, to_xp):
    with pytest.raises(ValueError, match=r"broadcast_to: cannot broadcast shape \(2,\) to \(3,\)"):
        F.broadcast_to(var(to_xp, np.ones(2)), (3,))


KEYS = [
    1, -1, slice(1, None), (slice(None), 0), (Ellipsis, slice(None, None, 2)), (None, 0),
    (0, slice(1, 3)),
]


@pytest.mark.parametrize("key", KEYS, ids=[repr(k) for k in KEYS])
def test_get_item_basic_indexing(xp, to_xp, rng, key):
    a = rng.standard_normal((3, 4))
    y = F.get_item(var(to_xp, a), key)
    np.testing.assert_array_equal(host(y), a[key])
    gradcheck(lambda v: F.get_item(v, key), to_xp(a))
    gradgradcheck(lambda v: v[key], to_xp(a))


def test_get_item_repeated_integer_indices_add_up(xp, to_xp):
    # x[[0, 0, 2]] reads row 0 twice: its gradient is the sum of both output rows' gradients.
    a = np.arange(6.0).reshape(3, 2)
    index = to_xp(np.array([0, 0, 2]))
    x = var(to_xp, a)
    y = x[index]
    np.testing.assert_array_equal(host(y), a[[0, 0, 2]])
    gy = np.array([[1.0, 2.0], [10.0, 20.0], [100.0, 200.0]])
    y.backward(to_xp(gy))
    np.testing.assert_array_equal(host(x.grad), [[11.0, 22.0], [0.0, 0.0], [100.0, 200.0]])
    gradcheck(lambda v: F.get_item(v, index), to_xp(a))
    gradgradcheck(lambda v: F.get_item(v, index), to_xp(a))


def test_get_item_with_index_pairs_and_a_variable_key(xp, to_xp, rng):
    a = rng.standard_normal((3, 4))
    rows, cols = np.array([0, 2, 0]), np.array([1, 3, 1])
    key = (ta.Variable(to_xp(rows)), to_xp(cols))
    np.testing.assert_array_equal(host(F.get_item(var(to_xp, a), key)), a[rows, cols])
    gradcheck(lambda v: F.get_item(v, key), to_xp(a))


def test_get_item_out_of_range_names_the_shape(xp, to_xp):
    with pytest.raises(IndexError, match=r"get_item: .*\(array of shape \(2, 3\)\)"):
        F.get_item(var(to_xp, np.ones((2, 3))), 5)


@given(pieces=st.lists(st.integers(1, 3), min_size=1, max_size=3), rest=tst.shapes(max_dims=2),
       axis=st.integers(0, 2), data=st.data())
def test_concat_and_stack(xp, to_xp, pieces, rest, axis, data):
    axis = min(axis, len(rest))
    arrays = [data.draw(tst.float_arrays(rest[:axis] + (n,) + rest[axis:])) for n in pieces]
    y = F.concat([var(to_xp, a) for a in arrays], axis=axis)
    np.testing.assert_array_equal(host(y), np.concatenate(arrays, axis=axis))
    gradcheck(lambda *vs: F.concat(vs, axis=axis), *to_xp(arrays))
    same = [data.draw(tst.float_arrays(rest)) for _ in pieces]
    z = F.stack([var(to_xp, a) for a in same], axis=axis)
    np.testing.assert_array_equal(host(z), np.stack(same, axis=axis))
    gradcheck(lambda *vs: F.stack(vs, axis=axis), *to_xp(same))


def test_concat_and_stack_errors(xp, to_xp):
    with pytest.raises(ValueError, match=r"concat: shapes \(2, 3\), \(2, 4\) do not match outside axis 0"):
        F.concat([var(to_xp, np.ones((2, 3))), var(to_xp, np.ones((2, 4)))], axis=0)
    with pytest.raises(ValueError, match=r"stack: all inputs need the same shape, got \[\(2,\), \(3,\)\]"):
        F.stack([var(to_xp, np.ones(2)), var(to_xp, np.ones(3))])
    with pytest.raises(ValueError, match="concat: needs at least one input"):
        F.concat([])
    with pytest.raises(ValueError, match="stack: needs at least one input"):
        F.stack([])


@pytest.mark.parametrize("sections, axis", [(3, 1), ([1, 4], 1), (2, 0), ([1], 0)])
def test_split(xp, to_xp, rng, sections, axis):
    a = rng.standard_normal((2, 6))
    parts = F.split(var(to_xp, a), sections, axis=axis)
    expected = np.split(a, sections, axis=axis)
    assert isinstance(parts, tuple) and len(parts) == len(expected)
    for p, e in zip(parts, expected):
        np.testing.assert_array_equal(host(p), e)
    gradcheck(lambda v: F.split(v, sections, axis=axis), to_xp(a))


def test_split_with_unused_pieces(xp, to_xp, rng):
    # Only the middle piece reaches the loss: the others' positions get exactly 0.
    a = rng.standard_normal((2, 6))
    x = var(to_xp, a)
    _, middle, _ = F.split(x, [1, 4], axis=1)
    gy = rng.standard_normal((2, 3))
    middle.backward(to_xp(gy))
    expected = np.zeros((2, 6))
    expected[:, 1:4] = gy
    np.testing.assert_array_equal(host(x.grad), expected)
    gradcheck(lambda v: F.split(v, [1, 4], axis=1)[1], to_xp(a))
    gradcheck(lambda v: F.split(v, 3, axis=1)[2] * 2.0, to_xp(a))


def test_split_error(xp, to_xp):
    with pytest.raises(ValueError, match=r"split: cannot split shape \(2, 5\) into 2 along axis 1"):
        F.split(var(to_xp, np.ones((2, 5))), 2, axis=1)


def test_expand_dims_squeeze_flatten(xp, to_xp, rng):
    a = rng.standard_normal((2, 1, 3))
    x = var(to_xp, a)
    np.testing.assert_array_equal(host(F.expand_dims(x, 0)), np.expand_dims(a, 0))
    np.testing.assert_array_equal(host(F.expand_dims(x, -1)), np.expand_dims(a, -1))
    np.testing.assert_array_equal(host(F.squeeze(x)), np.squeeze(a))
    np.testing.assert_array_equal(host(F.squeeze(x, 1)), np.squeeze(a, 1))
    np.testing.assert_array_equal(host(F.flatten(x)), a.reshape(2, 3))
    for f in (lambda v: F.expand_dims(v, 1), F.squeeze, F.flatten):
        gradcheck(f, to_xp(a))


def test_squeeze_error(xp, to_xp):
    with pytest.raises(ValueError, match=r"squeeze: axis 0 of shape \(2, 1\) has size 2, not 1"):
        F.squeeze(var(to_xp, np.ones((2, 1))), 0)


@pytest.mark.parametrize("f", [
    lambda v, idx: F.reshape(v, (3, 2)), lambda v, idx: F.transpose(v), lambda v, idx: v[0],
    lambda v, idx: v[idx], lambda v, idx: F.concat([v, v], axis=0), lambda v, idx: F.stack([v, v]),
    lambda v, idx: F.split(v, 3, axis=1)[0], lambda v, idx: F.broadcast_to(v, (4, 2, 3)),
    lambda v, idx: F.sum_to(v, (1, 3)), lambda v, idx: F.flatten(v),
])
def test_float32_stays_float32(xp, to_xp, f):
    x = ta.Variable(to_xp(np.ones((2, 3), dtype=np.float32)))
    y = f(x, to_xp(np.array([1, 1, 0])))
    assert y.dtype == np.float32
    y.backward(to_xp(np.ones(y.shape, dtype=np.float32)))
    assert x.grad.dtype == np.float32
