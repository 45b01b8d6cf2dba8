"""Saving and restoring optimizer state: the continued run must be exactly the uninterrupted one."""
import numpy as np
import pytest

import tinyai.functions as F
from tinyai.nn import Block, Linear, Parameter
from tinyai.optim import SGD, AdaGrad, Adam, AdamW, Momentum, RMSprop, clip_grad_norm

ALL = [SGD, Momentum, AdaGrad, RMSprop, Adam, AdamW]


class Net(Block):
    def __init__(self):
        super().__init__()
        self.fc1 = Linear(3, 5)
        self.fc2 = Linear(5, 2)

    def forward(self, x):
        return self.fc2(F.tanh(self.fc1(x)))


def make_net(seed=0):
    rng = np.random.default_rng(seed)
    net = Net()
    for _, p in net.named_params():
        p.data = rng.normal(size=p.shape).astype(np.float32)
    return net


def train(net, opt, batches):
    for x, y in batches:
        net.clear_grads()
        F.mean_squared_error(net(x), y).backward()
        opt.update()


def batches(seed, n):
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(8, 3)).astype(np.float32), rng.normal(size=(8, 2)).astype(np.float32))
            for _ in range(n)]


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_save_restore_through_npz_gives_the_identical_trajectory(cls, tmp_path):
    kwargs = dict(lr=0.05, weight_decay=0.01, max_grad_norm=0.5)
    if cls is Momentum:
        kwargs["nesterov"] = True
    data = batches(1, 6)

    straight = make_net()
    opt = cls(straight, **kwargs)
    train(straight, opt, data[:3])
    np.savez(tmp_path / "opt.npz", **opt.state_dict())
    weights = {k: v.copy() for k, v in straight.state_dict().items()}
    opt.lr = 0.03  # as a schedule would, before saving... then continue
    train(straight, opt, data[3:])

    resumed = make_net(seed=99)  # different weights: everything must come from the files
    resumed.load_state_dict(weights)
    opt2 = cls(resumed, lr=1.0)  # wrong hyperparameters on purpose: the file must restore them
    with np.load(tmp_path / "opt.npz", allow_pickle=False) as f:
        opt2.load_state_dict(f)
    assert opt2.iterations == 3 and opt2.weight_decay == 0.01 and opt2.max_grad_norm == 0.5
    if cls is Momentum:
        assert opt2.nesterov is True
    opt2.lr = 0.03
    train(resumed, opt2, data[3:])
    for (name, a), (_, b) in zip(straight.named_params(), resumed.named_params()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=name)


def test_state_dict_is_flat_arrays_and_numbers_with_hyperparameters():
    net = make_net()
    opt = Adam(net, lr=0.01, beta1=0.8)
    train(net, opt, batches(0, 2))
    state = opt.state_dict()
    assert state["iterations"] == 2 and state["hyper.lr"] == 0.01 and state["hyper.beta1"] == 0.8
    assert state["hyper.max_grad_norm"] == np.inf  # no clipping
    assert state["state.fc1.W.step"] == 2
    assert all(isinstance(v, (int, float, bool, np.ndarray)) for v in state.values())
    # Copies: stepping on does not change a saved dict.
    saved = state["state.fc1.W.m"].copy()
    train(net, opt, batches(1, 1))
    np.testing.assert_array_equal(state["state.fc1.W.m"], saved)


def test_load_state_dict_reports_missing_unexpected_and_misshaped():
    adam_state = Adam(make_net(), lr=0.1).state_dict()
    with pytest.raises(ValueError, match=r"SGD.load_state_dict.*unexpected keys: hyper.beta1"):
        SGD(make_net(), lr=0.1).load_state_dict(adam_state)
    broken = dict(adam_state)
    del broken["state.fc2.b.v"]
    broken["state.fc1.W.m"] = np.zeros((2, 2), np.float32)
    with pytest.raises(ValueError) as info:
        Adam(make_net(), lr=0.1).load_state_dict(broken)
    message = str(info.value)
    assert "missing keys: state.fc2.b.v" in message
    assert "state.fc1.W.m has shape (2, 2), parameter 'fc1.W' has shape (3, 5)" in message
    # Nothing changed by the failed load.
    opt = Adam(make_net(), lr=0.7)
    with pytest.raises(ValueError):
        opt.load_state_dict(broken)
    assert opt.lr == 0.7


def test_clip_grad_norm_scales_all_gradients_by_the_global_norm():
    p, q = Parameter(np.array([3.0])), Parameter(np.array([[4.0, 0.0]]))
    p.grad, q.grad = Parameter(np.array([3.0])), Parameter(np.array([[0.0, 4.0]]))
    norm = clip_grad_norm([p, q], max_norm=1.0)
    assert norm == pytest.approx(5.0)
    np.testing.assert_allclose(p.grad.data, [0.6], rtol=1e-5)
    np.testing.assert_allclose(q.grad.data, [[0.0, 0.8]], rtol=1e-5)
    # Below the limit: untouched.
    assert clip_grad_norm([p, q], max_norm=10.0) == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(p.grad.data, [0.6], rtol=1e-5)
    with pytest.raises(ValueError, match="clip_grad_norm: max_norm must be > 0"):
        clip_grad_norm([p], 0.0)


def test_clip_grad_norm_scales_each_gradient_once():
    # In p + q (+ r reshaped) backward passes one gradient on unchanged to every
    # parameter: p and q share it read-only and r gets a copy (a view would share
    # memory). Scaling in place where it may, each is still scaled exactly once.
    p, q = Parameter(np.array([3.0, 1.0])), Parameter(np.array([4.0, 1.0]))
    r = Parameter(np.array([[5.0, 1.0]]))
    w = Parameter(np.array([1.0, 1.0]))
    (p + q + F.reshape(r, (2,)) + w * 2.0).backward(np.array([2.0, 0.0]))
    assert not p.grad.data.flags.writeable and p.grad.data is q.grad.data
    own = [v.grad.data for v in (r, w)]
    assert all(a.flags.writeable for a in own)
    clip_grad_norm([p, q, r, w], max_norm=1.0)  # norm sqrt(4 + 4 + 4 + 16) = sqrt(28)
    for v in (p, q, r):
        np.testing.assert_allclose(v.grad.data.reshape(-1), [2.0 / np.sqrt(28), 0.0], rtol=1e-6)
    np.testing.assert_allclose(w.grad.data, [4.0 / np.sqrt(28), 0.0], rtol=1e-6)
    for v, array in zip((r, w), own):
        assert v.grad.data is array  # its own array: scaled in place
    assert p.grad.data is not q.grad.data  # the shared one: a new array each


def test_clip_grad_norm_leaves_non_finite_gradients_alone():
    p = Parameter(np.array([np.inf, 1.0]))
    p.grad = Parameter(np.array([np.inf, 1.0]))
    assert clip_grad_norm([p], 1.0) == np.inf
    np.testing.assert_array_equal(p.grad.data, [np.inf, 1.0])


def test_optimizer_option_clips_before_the_update():
    p = Parameter(np.array([0.0, 0.0]))
    p.grad = Parameter(np.array([30.0, 40.0]))
    SGD([p], lr=0.1, max_grad_norm=5.0).update()
    np.testing.assert_allclose(p.data, [-0.3, -0.4], rtol=1e-5)
