"""matmul (2-D, batched, 1-D conventions) and linear (x W + b)."""
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


@st.composite
def matmul_operands(draw):
    """Two arrays that np.matmul accepts: 1-D or N-D, with broadcast batch axes."""
    n, k, m = (draw(st.integers(1, 4)) for _ in range(3))
    batch_a, batch_b = draw(tst.broadcastable_shapes(max_dims=2, max_side=3))
    a_shape = draw(st.sampled_from([(k,), batch_a + (n, k)]))
    b_shape = draw(st.sampled_from([(k,), batch_b + (k, m)]))
    return draw(tst.float_arrays(a_shape)), draw(tst.float_arrays(b_shape))


@given(pair=matmul_operands())
def test_matmul_matches_numpy_and_gradcheck(xp, to_xp, pair):
    a, b = pair
    y = F.matmul(ta.Variable(to_xp(a)), ta.Variable(to_xp(b)))
    expected = np.matmul(a, b)
    assert y.shape == expected.shape
    np.testing.assert_allclose(host(y), expected, rtol=1e-12, atol=1e-12)
    gradcheck(F.matmul, *to_xp(pair))


def test_matmul_gradients_by_hand(xp, to_xp, rng):
    # For Y = A B: gA = gY B^T and gB = A^T gY.
    a, b, gy = rng.standard_normal((3, 4)), rng.standard_normal((4, 2)), rng.standard_normal((3, 2))
    va, vb = ta.Variable(to_xp(a)), ta.Variable(to_xp(b))
    (va @ vb).backward(to_xp(gy))
    np.testing.assert_allclose(host(va.grad), gy @ b.T, rtol=1e-12)
    np.testing.assert_allclose(host(vb.grad), a.T @ gy, rtol=1e-12)


def test_matmul_second_derivative(xp, to_xp, rng):
    gradgradcheck(F.matmul, to_xp(rng.standard_normal((2, 3))), to_xp(rng.standard_normal((3, 2))))


def test_batched_matmul_gradients_are_summed_over_the_broadcast_batch(xp, to_xp, rng):
    # A (2, 3, 4) @ B (4, 2): B is shared by both batch entries, so gB = sum_n A_n^T gY_n.
    a, b, gy = rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 2)), rng.standard_normal((2, 3, 2))
    va, vb = ta.Variable(to_xp(a)), ta.Variable(to_xp(b))
    (va @ vb).backward(to_xp(gy))
    np.testing.assert_allclose(host(va.grad), gy @ b.T, rtol=1e-12)
    np.testing.assert_allclose(host(vb.grad), np.einsum("nij,nik->jk", a, gy), rtol=1e-12)
    gradgradcheck(F.matmul, to_xp(a), to_xp(b))


def test_matmul_not_aligned(xp, to_xp):
    with pytest.raises(ValueError, match=r"^matmul: shapes \(3, 4\) and \(5, 2\) are not aligned \(4 != 5\)$"):
        F.matmul(ta.Variable(to_xp(np.ones((3, 4)))), ta.Variable(to_xp(np.ones((5, 2)))))


def test_matmul_batch_shapes_that_do_not_broadcast(xp, to_xp):
    with pytest.raises(ValueError, match=r"matmul: batch shapes of \(2, 3, 4\) and \(3, 4, 2\) cannot be broadcast"):
        F.matmul(ta.Variable(to_xp(np.ones((2, 3, 4)))), ta.Variable(to_xp(np.ones((3, 4, 2)))))


def test_matmul_refuses_scalars(xp, to_xp):
    with pytest.raises(ValueError, match=r"matmul: scalars have no matrix product \(shapes \(\) and \(3,\)\)"):
        F.matmul(ta.Variable(to_xp(np.array(2.0))), ta.Variable(to_xp(np.ones(3))))


@given(batch=tst.shapes(min_dims=1, max_dims=2, max_side=3), n_in=st.integers(1, 4), n_out=st.integers(1, 4),
       bias=st.booleans(), data=st.data())
def test_linear_matches_x_w_plus_b(xp, to_xp, batch, n_in, n_out, bias, data):
    x = data.draw(tst.float_arrays(batch + (n_in,)))
    W = data.draw(tst.float_arrays((n_in, n_out)))
    b = data.draw(tst.float_arrays((n_out,)))
    args = (x, W, b) if bias else (x, W)
    y = F.linear(*[ta.Variable(to_xp(a)) for a in args])
    np.testing.assert_allclose(host(y), x @ W + (b if bias else 0.0), rtol=1e-12, atol=1e-12)
    gradcheck(F.linear, *to_xp(args))


def test_linear_second_derivative(xp, to_xp, rng):
    gradgradcheck(F.linear, *to_xp([rng.standard_normal((3, 2)), rng.standard_normal((2, 4)),
                                    rng.standard_normal(4)]))


@pytest.mark.parametrize("x_shape", [(2, 3, 2), (2,)], ids=["sequence", "single"])
def test_linear_on_sequences_and_single_vectors(xp, to_xp, rng, x_shape):
    # Leading axes of x are folded into one batch axis for gW; a 1-D x is one example.
    x, W, b = rng.standard_normal(x_shape), rng.standard_normal((2, 4)), rng.standard_normal(4)
    np.testing.assert_allclose(host(F.linear(*[ta.Variable(to_xp(a)) for a in (x, W, b)])), x @ W + b,
                               rtol=1e-12)
    gradcheck(F.linear, *to_xp([x, W, b]))
    gradgradcheck(F.linear, *to_xp([x, W, b]))


def test_linear_errors(xp, to_xp):
    x, W = ta.Variable(to_xp(np.ones((5, 3)))), ta.Variable(to_xp(np.ones((4, 2))))
    with pytest.raises(ValueError, match=r"linear: input has shape \(5, 3\) \(3 features\) but W has shape "
                                         r"\(4, 2\); expected x of shape \(\.\.\., 4\)"):
        F.linear(x, W)
    with pytest.raises(ValueError, match=r"linear: bias has shape \(3,\), expected \(2,\)"):
        F.linear(ta.Variable(to_xp(np.ones((5, 4)))), W, ta.Variable(to_xp(np.ones(3))))


def test_float32_stays_float32(xp, to_xp):
    x = ta.Variable(to_xp(np.ones((2, 3), dtype=np.float32)))
    W = ta.Variable(to_xp(np.ones((3, 4), dtype=np.float32)))
    b = ta.Variable(to_xp(np.ones(4, dtype=np.float32)))
    for y in (F.matmul(x, W), F.linear(x, W, b)):
        assert y.dtype == np.float32
        y.backward(to_xp(np.ones((2, 4), dtype=np.float32)))
        assert x.grad.dtype == W.grad.dtype == np.float32
