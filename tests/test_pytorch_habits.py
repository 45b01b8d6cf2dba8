"""A PyTorch user's first guesses: aliases of tinyai's own names (the same
objects, not second implementations), and for other PyTorch names an
AttributeError that says what tinyai calls the thing."""
import numpy as np
import pytest

import tinyai as ta
import tinyai.functions as F
from tinyai import losses, nn, optim
from tinyai.data import ArrayDataset
from tinyai.nn.layer import Layer
from tinyai.optim.optimizer import Optimizer
from tinyai.training import Model


def test_aliases_are_the_tinyai_names_themselves():
    assert Layer.parameters is Layer.params and Layer.named_parameters is Layer.named_params
    assert Layer.zero_grad is Layer.clear_grads
    assert Model.parameters is Model.params and Model.zero_grad is Model.clear_grads
    assert Optimizer.zero_grad is Optimizer.clear_grads and Optimizer.step is Optimizer.update
    assert nn.Sequential is nn.SequentialBlock
    assert losses.CrossEntropyLoss is losses.SoftmaxCrossEntropy and losses.MSELoss is losses.MeanSquaredLoss
    assert ta.manual_seed is ta.seed


def test_a_pytorch_style_training_loop_runs_and_learns():
    ta.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 1, 6, 6)).astype(np.float32)
    y = (x[:, 0, :3].sum(axis=(1, 2)) > x[:, 0, 3:].sum(axis=(1, 2))).astype(np.int64)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(36, 2))
    criterion = losses.CrossEntropyLoss()
    optimizer = optim.Adam(model, lr=0.05)
    assert len(list(model.parameters())) == 4
    assert [name for name, _ in model.named_parameters()] == [name for name, _ in model.named_params()]
    first = last = None
    for epoch in range(15):
        for xb, yb in ArrayDataset(x, y, batch_size=16):       # batches unpack as (x, y)
            optimizer.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            optimizer.step()
            first = loss.item() if first is None else first
            last = loss.item()
    assert last < 0.5 * first
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_padding_is_pad():
    x = np.random.default_rng(1).standard_normal((2, 3, 5, 5)).astype(np.float32)
    ta.seed(3)
    by_pad = nn.Conv2d(3, 4, 3, pad=1)
    ta.seed(3)
    by_padding = nn.Conv2d(3, 4, 3, padding=1)
    assert by_padding.pad == (1, 1)
    np.testing.assert_array_equal(by_pad(x).data, by_padding(x).data)
    assert nn.MaxPool2d(2, padding=1).pad == (1, 1) and nn.AvgPool2d(3, padding=(1, 0)).pad == (1, 0)
    assert nn.DepthwiseSeparableConv2d(3, 4, 3, padding=1).pad == (1, 1)
    with pytest.raises(ValueError, match="pad=2 and padding=1"):
        nn.Conv2d(3, 4, 3, pad=2, padding=1)


@pytest.mark.parametrize("get, expected", [
    (lambda: nn.Linear(2, 3).weight, "in tinyai: W"),
    (lambda: nn.Linear(2, 3).cuda, "to_gpu()"),
    (lambda: Model("m", nn.Linear(2, 3)).modules, "named_layers()"),
    (lambda: ta.Variable([1.0]).grad_fn, "x.creator"),
    (lambda: ta.Variable([1.0]).view, "reshape"),
    (lambda: optim.SGD(nn.Linear(2, 3)).param_groups, "lr attribute"),
    (lambda: nn.Module, "Layer (holds Parameters) or Block"),
    (lambda: nn.CrossEntropyLoss, "tinyai.losses.SoftmaxCrossEntropy"),
    (lambda: F.cross_entropy, "softmax_cross_entropy"),
    (lambda: F.cat, "concat"),
    (lambda: ta.tensor, "ta.Variable(data)"),
    (lambda: optim.lr_scheduler, "StepLR"),
    (lambda: losses.NLLLoss, "SoftmaxCrossEntropy"),
])
def test_other_pytorch_names_say_what_tinyai_calls_them(get, expected):
    with pytest.raises(AttributeError) as info:
        get()
    assert "that is PyTorch's name; in tinyai: " in str(info.value) and expected in str(info.value)


def test_names_nobody_uses_stay_plain_attribute_errors():
    with pytest.raises(AttributeError, match=r"^'Linear' object has no attribute 'nonsense'$"):
        nn.Linear(2, 3).nonsense
    with pytest.raises(AttributeError, match=r"^module 'tinyai.nn' has no attribute 'Nonsense'$"):
        nn.Nonsense
    assert not hasattr(ta.Variable([1.0]), "grad_fn")
    # Submodules not imported yet still import as before.
    from tinyai import viz  # noqa: F401


def test_every_pytorch_name_of_a_variable_says_tinyais_name_also_on_a_parameter():
    from tinyai.backend.pytorch_names import ATTRIBUTES

    for value in (ta.Variable([1.0]), nn.Parameter(np.zeros(2, dtype=np.float32))):
        for name, hint in ATTRIBUTES["Variable"].items():
            if name in ("size",):  # a Variable's own attribute (the number of elements, as in NumPy)
                assert isinstance(getattr(value, name), int)
                continue
            with pytest.raises(AttributeError) as info:
                getattr(value, name)
            assert hint in str(info.value) and info.value.name == name and info.value.obj is value
    with pytest.raises(AttributeError, match=r"^'Variable' object has no attribute 'nonsense'$"):
        ta.Variable([1.0]).nonsense


def test_a_variable_has_no_getattr_hook():
    # The hints above are class attributes, not __getattr__: with that hook,
    # Python reads every attribute of a Variable (data, grad, creator) on its
    # slow path, and a chain of small operations ran about 10% slower.
    assert not any("__getattr__" in vars(cls) for cls in ta.Variable.__mro__)
    assert not any("__getattr__" in vars(cls) for cls in nn.Parameter.__mro__)
