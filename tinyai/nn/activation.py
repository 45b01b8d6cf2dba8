"""Activation layers: elementwise nonlinearities as Layers, and the name lookup blocks use.

Each layer wraps the function of the same name in ``tinyai.functions``; they
have no Parameters. ``get_activation("relu")`` turns the names accepted by the
ready blocks (``MlpBlock("mlp", 64, "relu", ...)``) into layers.
"""
from __future__ import annotations

from typing import Any, Callable

from tinyai import functions as F
from tinyai.autograd import Variable
from tinyai.backend.settings import is_number
from tinyai.nn.layer import Layer


class ReLU(Layer):
    """y = max(0, x), elementwise."""

    def forward(self, x: Any) -> Variable:
        return F.relu(x)


class LeakyReLU(Layer):
    """y = x for x > 0, slope * x otherwise."""

    def __init__(self, slope: float = 0.01, name: str | None = None) -> None:
        super().__init__(name)
        if not is_number(slope):  # float("0.1") would take a string without a word
            raise ValueError(f"LeakyReLU: slope must be a finite number, got {slope!r}")
        self.slope = float(slope)

    def forward(self, x: Any) -> Variable:
        return F.leaky_relu(x, self.slope)

    def extra_repr(self) -> str:
        return f"slope={self.slope}"


class Sigmoid(Layer):
    """y = 1 / (1 + exp(-x)), elementwise."""

    def forward(self, x: Any) -> Variable:
        return F.sigmoid(x)


class Tanh(Layer):
    """y = tanh(x), elementwise."""

    def forward(self, x: Any) -> Variable:
        return F.tanh(x)


class GELU(Layer):
    """y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), the tanh form of x Phi(x)."""

    def forward(self, x: Any) -> Variable:
        return F.gelu(x)


class Softmax(Layer):
    """y = exp(x) / sum(exp(x)) along ``axis`` (the last by default)."""

    def __init__(self, axis: int = -1, name: str | None = None) -> None:
        super().__init__(name)
        self.axis = int(axis)

    def forward(self, x: Any) -> Variable:
        return F.softmax(x, axis=self.axis)

    def extra_repr(self) -> str:
        return f"axis={self.axis}"


class Activation(Layer):
    """Any function of one Variable as a layer, e.g. ``Activation(F.softplus)``.

    The function must be importable by name (a module-level function), not a
    lambda: layers are pickled for data-parallel replicas and checkpoints.
    """

    def __init__(self, function: Callable[[Any], Variable], name: str | None = None) -> None:
        super().__init__(name)
        if not callable(function):
            raise TypeError(f"Activation: expected a callable, got {type(function).__name__}")
        if getattr(function, "__name__", "") == "<lambda>":
            raise TypeError("Activation: a lambda cannot be pickled; pass a module-level function "
                            "such as tinyai.functions.softplus")
        self.function = function

    def forward(self, x: Any) -> Variable:
        return self.function(x)

    def extra_repr(self) -> str:
        return getattr(self.function, "__name__", type(self.function).__name__)


_BY_NAME: dict[str, type[Layer]] = {
    "relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh, "gelu": GELU, "softmax": Softmax, "leaky_relu": LeakyReLU,
}


def get_activation(activation: str | Layer | Callable[[Any], Variable], where: str = "get_activation") -> Layer:
    """A fresh activation layer for a name ("relu", "sigmoid", "tanh", "gelu", ...), a Layer, or a function.

    A Layer instance is returned as it is; a function is wrapped in ``Activation``.
    """
    if isinstance(activation, str):
        cls = _BY_NAME.get(activation.lower())
        if cls is None:
            raise ValueError(f"{where}: unknown activation {activation!r}; "
                             f"choose one of {', '.join(sorted(_BY_NAME))}, or pass a Layer or a function")
        return cls()
    if isinstance(activation, Layer):
        return activation
    if callable(activation):
        return Activation(activation)
    raise TypeError(f"{where}: activation must be a name, a Layer or a function, got {type(activation).__name__}")


def activation_init(activation: str | Layer | Callable[[Any], Variable]) -> str:
    """"he" for the ReLU family (which zeroes half its input), "xavier" for everything else."""
    relu_like = (ReLU, LeakyReLU, GELU)
    if isinstance(activation, str):
        return "he" if activation.lower() in ("relu", "leaky_relu", "gelu") else "xavier"
    if isinstance(activation, relu_like) or activation in (F.relu, F.leaky_relu, F.gelu):
        return "he"
    return "xavier"
