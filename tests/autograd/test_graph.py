"""Graph semantics of backward: reuse, diamonds, depth, freeing, thread isolation."""
import gc
import threading
import weakref

import numpy as np
import pytest

import tinyai as ta
import tinyai.functions as F


def test_value_used_twice_accumulates():
    # y = x * x: both operands are x, so dy/dx = 2x (TinyAI's Java version got x).
    x = ta.Variable(np.array(3.0))
    (x * x).backward()
    assert x.grad.item() == pytest.approx(6.0)


def test_value_used_twice_through_add():
    x = ta.Variable(np.array(3.0))
    y = x + x
    y.backward()
    assert x.grad.item() == pytest.approx(2.0)


def test_diamond_visits_each_function_once():
    # a = x^2, then y = exp(a) + sin(a): the path splits and joins again.
    x = ta.Variable(np.array(0.7))
    a = x ** 2
    y = F.exp(a) + F.sin(a)
    y.backward()
    expected = (np.exp(0.49) + np.cos(0.49)) * 2 * 0.7
    assert x.grad.item() == pytest.approx(expected, rel=1e-12)


def test_diamond_counts_calls():
    calls = []

    class Traced(ta.Function):
        def forward(self, x):
            return x * 1.0

        def backward(self, gy):
            calls.append(1)
            return gy

    x = ta.Variable(np.array(1.5))
    a = Traced()(x)
    y = a * a + a
    y.backward()
    assert len(calls) == 1
    assert x.grad.item() == pytest.approx(2 * 1.5 + 1)


def test_deep_chain_has_no_recursion_limit():
    x = ta.Variable(np.array(1.0))
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.backward()
    assert x.grad.item() == pytest.approx(1.0001 ** 10_000, rel=1e-9)


def test_gradients_accumulate_until_cleared():
    x = ta.Variable(np.array(2.0))
    (x * 3).backward()
    (x * 3).backward()
    assert x.grad.item() == pytest.approx(6.0)
    x.clear_grad()
    (x * 3).backward()
    assert x.grad.item() == pytest.approx(3.0)


def test_intermediate_gradients_are_freed_unless_retained():
    x = ta.Variable(np.array(2.0))
    a = x * 3
    y = a * a
    y.backward()
    assert a.grad is None
    b = x * 3
    z = b * b
    z.backward(retain_grad=True)
    assert b.grad.item() == pytest.approx(2 * 6.0)


def test_non_scalar_backward_needs_explicit_grad():
    x = ta.Variable(np.ones((2, 3)))
    y = x * 2
    with pytest.raises(RuntimeError, match=r"backward: output has shape \(2, 3\)"):
        y.backward()
    gy = np.arange(6.0).reshape(2, 3)
    y.backward(gy)
    np.testing.assert_allclose(x.grad.data, 2 * gy)


def test_backward_rejects_grad_of_wrong_shape():
    y = ta.Variable(np.ones((2, 3))) * 2
    with pytest.raises(ValueError, match=r"grad has shape \(3,\)"):
        y.backward(np.ones(3))


def test_graph_freed_without_garbage_collector():
    gc.disable()
    try:
        x = ta.Variable(np.ones(4))
        y = F.tanh(x * 2.0)
        z = F.sum(y)
        creator_ref = weakref.ref(z.creator)
        inner_ref = weakref.ref(y.creator)
        del y, z
        assert creator_ref() is None
        assert inner_ref() is None
    finally:
        gc.enable()


def test_training_loop_does_not_grow_memory():
    import tracemalloc

    rng = np.random.default_rng(0)
    W = ta.Variable(rng.standard_normal((8, 4)))
    x = ta.Variable(rng.standard_normal((16, 8)), requires_grad=False)

    def step():
        loss = F.mean(F.tanh(F.matmul(x, W)) ** 2)
        W.clear_grad()
        loss.backward()
        W.data -= 0.01 * W.grad.data

    for _ in range(200):
        step()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(10_000):
        step()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert after - before < 200_000


def test_no_grad_records_nothing():
    x = ta.Variable(np.ones(3))
    with ta.no_grad():
        y = x * 2
    assert y.creator is None
    assert not y.requires_grad
    z = x * 2
    assert z.creator is not None


def test_no_grad_is_isolated_per_thread():
    inside = threading.Event()
    release = threading.Event()
    seen = {}

    def worker_without_grad():
        with ta.no_grad():
            inside.set()
            release.wait(5)

    def worker_with_grad():
        inside.wait(5)
        x = ta.Variable(np.ones(2))
        seen["creator"] = (x * 2).creator
        seen["enabled"] = ta.is_grad_enabled()
        release.set()

    threads = [threading.Thread(target=worker_without_grad), threading.Thread(target=worker_with_grad)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen["enabled"] is True
    assert seen["creator"] is not None
    assert ta.is_grad_enabled()


def test_test_mode_is_isolated_per_thread():
    results = []
    with ta.test_mode():
        t = threading.Thread(target=lambda: results.append(ta.is_train_mode()))
        t.start()
        t.join()
        assert not ta.is_train_mode()
    assert results == [True]
    assert ta.is_train_mode()


def test_unchain_backward_cuts_history():
    x = ta.Variable(np.array(1.0))
    a = x * 2
    y = a * 3
    y.unchain_backward()
    assert y.creator is None
    assert a.creator is None


def test_second_derivative_of_tanh():
    x = ta.Variable(np.array(0.3))
    y = F.tanh(x)
    y.backward(create_graph=True)
    gx = x.grad
    x.clear_grad()
    gx.backward()
    t = np.tanh(0.3)
    assert x.grad.item() == pytest.approx(-2 * t * (1 - t * t), rel=1e-12)


def test_newton_method_finds_minimum_of_quartic():
    # f(x) = x^4 - 2x^2 has minima at +-1; Newton from x = 2 converges to 1.
    x = ta.Variable(np.array(2.0))
    for _ in range(10):
        y = x ** 4 - 2 * x ** 2
        x.clear_grad()
        y.backward(create_graph=True)
        gx = x.grad
        x.clear_grad()
        gx.backward()
        x = ta.Variable(x.data - gx.data / x.grad.data)
    assert x.item() == pytest.approx(1.0, abs=1e-12)


def test_third_derivative_of_sin():
    x = ta.Variable(np.array(0.4))
    y = F.sin(x)
    y.backward(create_graph=True)
    for _ in range(2):
        gx = x.grad
        x.clear_grad()
        gx.backward(create_graph=True)
    assert x.grad.item() == pytest.approx(-np.cos(0.4), rel=1e-12)


# -- one formula, two speeds -------------------------------------------------------------
class _Cube(ta.Function):
    """x^3 written in the one idiom: saved values from saved_inputs(), nothing else."""

    seen: list = []

    def forward(self, x):
        return x * x * x

    def backward(self, gy):
        x, = self.saved_inputs()
        type(self).seen.append((type(gy), type(x)))
        return 3 * x * x * gy


def test_a_users_function_gets_arrays_unless_the_graph_is_recorded():
    _Cube.seen.clear()
    x = ta.Variable(np.array(2.0))
    _Cube()(x).backward()
    assert _Cube.seen == [(np.ndarray, np.ndarray)]  # no flag asked for it
    assert x.grad.item() == pytest.approx(12.0)
    x.clear_grad()
    _Cube()(x).backward(create_graph=True)
    assert _Cube.seen[1] == (ta.Variable, ta.Variable)
    assert x.grad.creator is not None  # recorded, so it can be differentiated: d2/dx2 x^3 = 6x
    gx = x.grad
    x.clear_grad()
    gx.backward()
    assert x.grad.item() == pytest.approx(12.0)


def test_saved_outputs_follow_the_same_form():
    seen = []

    class Exp2(ta.Function):
        def forward(self, x):
            return np.exp2(x)

        def backward(self, gy):
            y, = self.saved_outputs()
            seen.append(type(y))
            return gy * y * np.log(2.0)

    x = ta.Variable(np.array(1.5))
    Exp2()(x).backward()
    Exp2()(x).backward(create_graph=True)
    assert seen == [np.ndarray, ta.Variable]
    assert x.grad.item() == pytest.approx(2 * 2 ** 1.5 * np.log(2.0), rel=1e-12)


def test_tinyai_functions_on_arrays_give_arrays_inside_a_plain_backward_only():
    kinds = []

    class SinViaF(ta.Function):
        def forward(self, x):
            return np.sin(x)

        def backward(self, gy):
            x, = self.saved_inputs()
            g = gy * F.cos(x)
            kinds.append((type(F.cos(x)), type(F.sum_to(g, ())), type(F.broadcast_to(g, (2, 3)))))
            return g

    # Outside a backward pass an array in gives a Variable out, as always.
    assert type(F.cos(np.zeros(3))) is ta.Variable
    assert type(F.sum_to(np.zeros(3), (3,))) is ta.Variable
    x = ta.Variable(np.array([0.1, 0.2, 0.3]))
    SinViaF()(x).backward(np.array([1.0, -2.0, 0.5]))
    assert kinds == [(np.ndarray, np.ndarray, np.ndarray)]
    np.testing.assert_allclose(x.grad.data, np.cos(x.data) * [1.0, -2.0, 0.5], rtol=1e-12)
    SinViaF()(x).backward(np.ones(3), create_graph=True)
    assert kinds[1] == (ta.Variable, ta.Variable, ta.Variable)


def test_backward_written_with_the_input_variables_still_works():
    # DeZero's style, self.inputs inside backward: correct on both paths,
    # only without the array speed-up.
    class Square(ta.Function):
        def forward(self, x):
            return x * x

        def backward(self, gy):
            x, = self.inputs
            return 2 * x * gy

    x = ta.Variable(np.array(-1.5))
    Square()(x).backward()
    assert type(x.grad.data) is np.ndarray and x.grad.item() == pytest.approx(-3.0)


def test_needs_input_grad_lets_backward_skip_an_input():
    calls = []

    class Scale(ta.Function):
        def forward(self, x, s):
            return x * s

        def backward(self, gy):
            x, s = self.saved_inputs()
            calls.append(self.needs_input_grad)
            gs = (gy * x).sum() if self.needs_input_grad[1] else None
            return gy * s, gs

    x = ta.Variable(np.array([1.0, 2.0]))
    s = ta.Variable(np.array(3.0), requires_grad=False)
    Scale()(x, s).backward(np.array([1.0, 1.0]))
    assert calls == [(True, False)]
    assert s.grad is None and x.grad.data.tolist() == [3.0, 3.0]


# -- no leaf's gradient changes under it ---------------------------------------------------
def _writes_through(a, b):
    """Whether an in-place write to the array ``a`` can change the array ``b``."""
    return a.flags.writeable and np.shares_memory(a, b)


def test_no_leaf_can_change_another_leafs_gradient():
    a = ta.Variable(np.array([1.0, 2.0]))
    b = ta.Variable(np.array([3.0, 4.0]))
    c = ta.Variable(np.array([5.0, 6.0]))
    w = ta.Variable(np.ones((2, 2)))
    seed = np.array([0.5, -1.0])
    (a + b + c + F.sum(w, axis=0)).backward(seed)
    grads = [v.grad.data for v in (a, b, c, w)]
    for i, g in enumerate(grads):
        assert not np.shares_memory(g, seed)
        for h in grads[:i] + grads[i + 1:]:
            assert not _writes_through(g, h)
    # a, b and c received one gradient passed on unchanged: one read-only array,
    # so an in-place write fails loudly instead of changing b and c too.
    assert not a.grad.data.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        a.grad.data *= 10
    np.testing.assert_array_equal(b.grad.data, seed)
    np.testing.assert_array_equal(c.grad.data, seed)
    # w's gradient is a broadcast of it: copied, its own and writable.
    assert w.grad.data.flags.writeable
    w.grad.data *= 10
    np.testing.assert_array_equal(b.grad.data, seed)
    np.testing.assert_array_equal(seed, [0.5, -1.0])


def test_a_gradient_of_its_own_is_writable_and_accumulating_makes_a_new_array():
    x, w = ta.Variable(np.array([1.0, 2.0])), ta.Variable(np.array([3.0, 4.0]))
    (x * w).backward(np.array([1.0, 1.0]))
    assert x.grad.data.flags.writeable and w.grad.data.flags.writeable
    p, q = ta.Variable(np.array([1.0, 2.0])), ta.Variable(np.array([3.0, 4.0]))
    (p + q).backward(np.array([1.0, -1.0]))
    shared = q.grad.data
    (p * 2.0).backward(np.array([1.0, 1.0]))  # a second pass adds into p's gradient
    assert p.grad.data.flags.writeable and not np.shares_memory(p.grad.data, shared)
    p.grad.data *= 2
    np.testing.assert_array_equal(p.grad.data, [6.0, 2.0])
    np.testing.assert_array_equal(q.grad.data, [1.0, -1.0])


def test_a_gradient_passed_on_along_two_paths_reaches_two_leaves_safely():
    # z = (p + 1) + (q + 1): the gradient of z travels unchanged to both sums
    # and on to p and q.
    p, q = ta.Variable(np.array([1.0, 2.0])), ta.Variable(np.array([3.0, 4.0]))
    ((p + 1.0) + (q + 1.0)).backward(np.array([1.0, -1.0]))
    assert not _writes_through(p.grad.data, q.grad.data)
    with pytest.raises(ValueError, match="read-only"):
        p.grad.data *= 3
    np.testing.assert_array_equal(q.grad.data, [1.0, -1.0])


def test_a_device_gradient_handed_to_several_inputs_is_copied_for_each():
    # CuPy arrays have no read-only flag: on the device path (the stand-in)
    # the walk copies instead, and each parameter's array is its own.
    from tinyai.optim import clip_grad_norm
    from tinyai.testing.standin import standin_as_gpu
    with standin_as_gpu() as xp:
        p, q, r = (ta.Variable(xp.asarray(np.array(v))) for v in ([1.0, 2.0], [3.0, 4.0], [5.0, 6.0]))
        (p + q + r).backward(xp.asarray(np.array([3.0, 4.0])))
        arrays = [ta.to_cpu(v.grad.data) for v in (p, q, r)]
        for i, g in enumerate(arrays):
            for h in arrays[i + 1:]:
                assert not np.shares_memory(g, h)
        p.grad.data *= 2
        np.testing.assert_array_equal(ta.to_cpu(q.grad.data), [3.0, 4.0])
        clip_grad_norm([q, r], max_norm=1.0)  # norm 5 * sqrt(2)
        for v in (q, r):
            np.testing.assert_allclose(ta.to_cpu(v.grad.data), [0.6 / np.sqrt(2), 0.8 / np.sqrt(2)], rtol=1e-6)


def test_retained_gradient_is_not_shared_with_a_leaf():
    x = ta.Variable(np.array([1.0, 2.0]))
    y = x + 0.0
    z = y * 1.0
    F.sum(z + x).backward(retain_grad=True)
    assert not np.shares_memory(z.grad.data, x.grad.data)
    np.testing.assert_array_equal(x.grad.data, [2.0, 2.0])


def test_unrecorded_gradients_are_plain_variables_and_retain_grad_keeps_them():
    x = ta.Variable(np.array([0.5, -1.0], dtype=np.float32))
    w = ta.Variable(np.array([2.0, 3.0], dtype=np.float32))
    a = x * w
    y = F.sum(F.tanh(a) + a)
    y.backward(retain_grad=True)
    for v in (x, w, a):
        assert type(v.grad) is ta.Variable
        assert v.grad.creator is None and not v.grad.requires_grad
        assert v.grad.dtype == np.float32
    expected_a = 1 - np.tanh(x.data * w.data) ** 2 + 1
    np.testing.assert_allclose(a.grad.data, expected_a, rtol=1e-6)
    np.testing.assert_allclose(x.grad.data, expected_a * w.data, rtol=1e-6)


def test_both_paths_give_the_same_gradients(rng):
    # Many kinds of op (linear, relu, mul, div, pow, exp, sum_to via
    # broadcasting, softmax cross-entropy, sin, max, indexing): the array path
    # and the recorded path must agree to rounding.
    def loss(x, W, b, s):
        h = F.relu(F.linear(x, W, b)) * s + F.sin(x[:, :3]) / (1.5 + F.exp(-x[:, 1:4] ** 2))
        z = h - F.max(h, axis=1, keepdims=True) * 0.5
        return F.softmax_cross_entropy(z @ np.eye(3), np.array([0, 2, 1, 1])) + F.mean(F.tanh(z) ** 2)

    arrays = [rng.standard_normal((4, 5)), rng.standard_normal((5, 3)), rng.standard_normal(3),
              rng.standard_normal((1, 3))]
    grads = []
    for create_graph in (False, True):
        xs = [ta.Variable(a) for a in arrays]
        loss(*xs).backward(create_graph=create_graph)
        grads.append([x.grad.data for x in xs])
    for fast, recorded in zip(*grads):
        np.testing.assert_allclose(fast, recorded, rtol=1e-12, atol=1e-15)


def test_gradients_from_two_paths_accumulate_as_arrays():
    # The same leaf receives gradients from two ops (mul and sin); they are
    # added without recording anything.
    x = ta.Variable(np.array(0.3))
    y = x * x + F.sin(x)
    y.backward()
    assert x.grad.creator is None
    assert x.grad.item() == pytest.approx(2 * 0.3 + np.cos(0.3), rel=1e-12)
