"""MlpBlock (TinyAI's MlpBlock): a stack of fully connected layers with an activation between them."""
from __future__ import annotations

from typing import Any, Callable

from tinyai.autograd import Variable
from tinyai.backend.settings import int_setting, is_int
from tinyai.nn.activation import activation_init, get_activation
from tinyai.nn.block import Block
from tinyai.nn.layer import Layer
from tinyai.nn.linear import Linear


class MlpBlock(Block):
    """Multi-layer perceptron: fc1 -> act1 -> fc2 -> act2 -> ... -> fc_last (no activation at the end).

    Args (TinyAI's order):
        name: the block's name.
        batch_size: the batch size it is meant for (recorded for ``summary()``;
            any batch size works).
        activation: "relu", "sigmoid", "tanh", "gelu", a Layer, or a
            module-level function. A Layer *class* instance is shared by all
            positions; it has no Parameters, so that is harmless.
        sizes: layer widths, input first: ``784, 128, 64, 10`` makes three
            Linear layers 784->128->64->10.

    Weights use He initialisation for the ReLU family, Xavier otherwise.

    >>> MlpBlock("mlp", 64, "relu", 784, 128, 64, 10).num_params()
    109386
    """

    def __init__(self, name: str, batch_size: int, activation: str | Layer | Callable, *sizes: int) -> None:
        super().__init__(name)
        if len(sizes) < 2:
            raise ValueError(f"{self._label()}: needs at least two sizes (input and output), got {list(sizes)}")
        if not all(is_int(s) and s > 0 for s in sizes):
            raise ValueError(f"{self._label()}: sizes must be positive ints, got {list(sizes)}")
        sizes = [int(s) for s in sizes]
        batch_size = int_setting(batch_size, self._label(), "batch_size")
        get_activation(activation, self._label())  # reject a bad name even when there is no hidden layer
        self.batch_size = batch_size
        self.sizes = tuple(sizes)
        init = activation_init(activation)
        n_layers = len(sizes) - 1
        for i in range(n_layers):
            self.add(f"fc{i + 1}", Linear(sizes[i], sizes[i + 1], init=init if i < n_layers - 1 else "xavier"))
            if i < n_layers - 1:
                self.add(f"act{i + 1}", get_activation(activation, self._label()))

    def forward(self, x: Any) -> Variable:
        for layer in self.children():
            x = layer(x)
        return x

    def extra_repr(self) -> str:
        return " -> ".join(map(str, self.sizes))
