"""The fully connected layer (TinyAI's LinearLayer / AffineLayer): y = x W + b."""
from __future__ import annotations

from typing import Any, Mapping

from tinyai import functions as F
from tinyai.autograd import Variable
from tinyai.backend.settings import bool_setting, int_setting
from tinyai.nn.init import check_init, initialize
from tinyai.nn.layer import Layer, _check_variable
from tinyai.nn.parameter import Parameter


class Linear(Layer):
    """Affine map y = x W + b.

    Args:
        in_features: size of the last input axis, or None to infer it from
            the first input (the Parameters are then created on that call).
        out_features: size of the last output axis.
        bias: whether to add the bias b.
        init: "xavier" (default; tanh/sigmoid/linear nets) or "he" (ReLU nets).
        name: the layer's name, for error messages.

    Shapes: x (..., in_features) -> y (..., out_features); W (in, out), b (out,).
    b starts at zero.

    >>> import numpy as np
    >>> Linear(3, 2)(np.ones((4, 3), dtype=np.float32)).shape
    (4, 2)
    """

    def __init__(self, in_features: int | None, out_features: int, bias: bool = True,
                 init: str = "xavier", name: str | None = None) -> None:
        super().__init__(name)
        in_features = int_setting(in_features, self._label(), "in_features", none_ok=True)
        out_features = int_setting(out_features, self._label(), "out_features")
        self.in_features = in_features
        self.out_features = out_features
        self.use_bias = bool_setting(bias, self._label(), "bias")
        self.init = check_init(self._label(), init)
        self.W: Parameter | None = None
        self.b: Parameter | None = None
        if in_features is not None:
            self._build(in_features)

    def _build(self, in_features: int) -> None:
        self.in_features = in_features
        self.W = Parameter(initialize((in_features, self.out_features), in_features, self.out_features, self.init))
        if self.use_bias:
            self.b = Parameter(initialize((self.out_features,), in_features, self.out_features, "zeros"))

    def _materialize(self, state: Mapping[str, Any]) -> None:
        if self.W is None and "W" in state and len(getattr(state["W"], "shape", ())) == 2:
            self._build(int(state["W"].shape[0]))

    def forward(self, x: Any) -> Variable:
        x = _check_variable(self, x)
        if x.ndim == 0:
            raise ValueError(f"{self._label()}: expected input with features on the last axis, got a scalar")
        if self.W is None:
            self._build(int(x.shape[-1]))
        if x.shape[-1] != self.in_features:
            raise ValueError(f"{self._label()}: expected input with {self.in_features} features, "
                             f"got shape {tuple(x.shape)}")
        return F.linear(x, self.W, self.b)

    def extra_repr(self) -> str:
        return f"{self.in_features if self.in_features is not None else '?'} -> {self.out_features}" + (
            "" if self.use_bias else ", bias=False")
