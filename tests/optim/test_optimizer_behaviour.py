"""What every optimizer does besides its update rule: finding parameters, state, skipping, devices."""
import pickle

import numpy as np
import pytest

import tinyai
import tinyai.functions as F
from tinyai.nn import Block, Linear, Parameter
from tinyai.optim import SGD, AdaGrad, Adam, AdamW, Momentum, RMSprop

ALL = [SGD, Momentum, AdaGrad, RMSprop, Adam, AdamW]


class TwoLayers(Block):
    def __init__(self, in_features=3):
        super().__init__()
        self.fc1 = Linear(in_features, 4)
        self.fc2 = Linear(4, 2)

    def forward(self, x):
        return self.fc2(F.tanh(self.fc1(x)))


def backward_once(model, rng, n=5, in_features=3):
    model.clear_grads()
    x = rng.normal(size=(n, in_features)).astype(np.float32)
    F.sum(model(x) ** 2).backward()


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_state_is_keyed_by_dotted_name_in_model_order_and_created_eagerly(cls):
    model = TwoLayers()
    opt = cls(model, lr=0.01)
    names = ["fc1.W", "fc1.b", "fc2.W", "fc2.b"]
    assert list(opt.state) == names
    for name, p in model.named_params():
        for slot in cls.slots:
            assert opt.state[name][slot].shape == p.shape
            assert not opt.state[name][slot].any()
    assert [k for k in opt.state_dict() if k.endswith(".step")] == [f"state.{n}.step" for n in names]


def test_accepts_model_pairs_or_bare_parameters():
    p, q = Parameter(np.ones(2)), Parameter(np.ones(3))
    assert [n for n, _ in SGD([("a", p), ("b", q)], lr=0.1).named_params()] == ["a", "b"]
    assert [n for n, _ in SGD([p, q], lr=0.1).named_params()] == ["0", "1"]
    assert [n for n, _ in SGD(iter([p, q]), lr=0.1).named_params()] == ["0", "1"]
    assert [n for n, _ in SGD(tinyai.Model("m", TwoLayers()), lr=0.1).named_params()][:2] == ["fc1.W", "fc1.b"]


def test_empty_and_bad_parameter_sources_are_refused():
    with pytest.raises(ValueError, match="Adam: got an empty parameter list"):
        Adam([], lr=0.1)

    class Empty(Block):
        def forward(self, x):
            return x

    with pytest.raises(ValueError, match="SGD: got an empty parameter list"):
        SGD(Empty(), lr=0.1)
    with pytest.raises(TypeError, match="SGD: parameter '0' is a ndarray"):
        SGD([np.ones(3)], lr=0.1)
    with pytest.raises(TypeError, match="expected a model"):
        SGD(3, lr=0.1)
    p = Parameter(np.ones(2))
    with pytest.raises(ValueError, match="share the name 'w'"):
        SGD([("w", p), ("w", Parameter(np.ones(2)))], lr=0.1)
    with pytest.raises(ValueError, match="lr must be >= 0, got -1"):
        SGD([p], lr=-1)
    with pytest.raises(ValueError, match="Momentum: momentum must lie in"):
        Momentum([p], lr=0.1, momentum=1.5)
    with pytest.raises(ValueError, match="Adam: beta2 must lie in"):
        Adam([p], lr=0.1, beta2=1.0)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_parameters_without_gradient_are_skipped(cls, rng):
    used, unused = Parameter(np.array([1.0, -1.0])), Parameter(np.array([2.0, 3.0]))
    opt = cls([("used", used), ("unused", unused)], lr=0.1)
    for _ in range(3):
        used.clear_grad()
        F.sum(used * used).backward()
        opt.update()
    np.testing.assert_array_equal(unused.data, [2.0, 3.0])
    assert opt.steps == {"used": 3, "unused": 0}
    assert all(not v.any() for v in opt.state["unused"].values())
    assert opt.iterations == 3


def test_adam_bias_correction_counts_each_parameters_own_steps():
    # A parameter that first gets a gradient at the third update still takes
    # a first step of size lr (t = 1 for it), not a damped one.
    late = Parameter(np.array([1.0]))
    early = Parameter(np.array([1.0]))
    opt = Adam([("early", early), ("late", late)], lr=0.01)
    for _ in range(2):
        early.grad = Parameter(np.array([1.0]))
        opt.update()
    late.grad = Parameter(np.array([5.0]))
    opt.update()
    np.testing.assert_allclose(late.data, [1.0 - 0.01], rtol=1e-6)


def test_lazy_parameters_get_state_when_they_appear(rng):
    class Lazy(Block):
        def __init__(self):
            super().__init__()
            self.fc = Linear(None, 2)

        def forward(self, x):
            return self.fc(x)

    model = Lazy()
    opt = Adam(model, lr=0.01)  # no parameters yet, but the model is lazy: allowed
    assert opt.state == {}
    with pytest.raises(ValueError, match="still has no parameters"):
        opt.update()
    backward_once(model, rng, in_features=3)
    before = model.fc.W.data.copy()
    opt.update()
    assert list(opt.state) == ["fc.W", "fc.b"]
    assert opt.state["fc.W"]["m"].shape == (3, 2)
    assert not np.array_equal(before, model.fc.W.data)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_update_is_in_place_without_graph_and_keeps_float32(cls, rng):
    model = TwoLayers()
    opt = cls(model, lr=0.01)
    w = model.fc1.W
    array, view = w.data, w.data[0]
    backward_once(model, rng)
    old_row = view.copy()
    opt.update()
    assert w.data is array, "the parameter's array must be updated in place"
    assert not np.array_equal(view, old_row), "a view of the parameter must see the update"
    assert w.creator is None and w.data.dtype == np.float32
    assert all(v.dtype == np.float32 for v in opt.state["fc1.W"].values())


def test_weight_decay_does_not_touch_the_stored_gradient():
    p = Parameter(np.array([2.0]))
    p.grad = Parameter(np.array([1.0]))
    SGD([p], lr=0.1, weight_decay=0.5).update()
    np.testing.assert_allclose(p.data, [2.0 - 0.1 * (1.0 + 0.5 * 2.0)])
    np.testing.assert_array_equal(p.grad.data, [1.0])


def test_gradient_shape_mismatch_names_the_parameter():
    p = Parameter(np.ones((2, 3)))
    p.grad = Parameter(np.ones(3))
    with pytest.raises(ValueError, match=r"gradient of parameter 'w' has shape \(3,\).*\(2, 3\)"):
        SGD([("w", p)], lr=0.1).update()


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_same_result_on_every_backend(cls, xp, to_xp):
    """The stand-in refuses NumPy calls on device arrays: the update must use xp."""
    rng = np.random.default_rng(0)
    data = [rng.normal(size=(3, 2)).astype(np.float32), rng.normal(size=(2,)).astype(np.float32)]
    grads = [[rng.normal(size=d.shape).astype(np.float32) for d in data] for _ in range(3)]

    def trajectory(convert):
        ps = [Parameter(convert(d.copy())) for d in data]
        opt = cls(ps, lr=0.05, weight_decay=0.01, max_grad_norm=1.0)
        for step in grads:
            for p, g in zip(ps, step):
                p.grad = Parameter(convert(g.copy()))
            opt.update()
        return [tinyai.to_cpu(p.data) for p in ps], opt.state_dict()

    want, _ = trajectory(lambda a: a)
    got, state = trajectory(to_xp)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-6)
    assert all(isinstance(v, (int, float, bool, np.ndarray)) for v in state.values())


def test_optimizer_pickles_with_its_model(rng):
    model = TwoLayers()
    opt = Adam(model, lr=0.01)
    backward_once(model, rng)
    opt.update()
    model2, opt2 = pickle.loads(pickle.dumps((model, opt)))
    assert opt2.named_params()[0][1] is model2.fc1.W
    np.testing.assert_array_equal(opt2.state["fc1.W"]["v"], opt.state["fc1.W"]["v"])
