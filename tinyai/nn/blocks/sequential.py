"""SequentialBlock (TinyAI's SequentialBlock): layers applied one after the other."""
from __future__ import annotations

from typing import Any

from tinyai.nn.block import Block
from tinyai.nn.layer import Layer


class SequentialBlock(Block):
    """y = layer_n(... layer_2(layer_1(x))).

    Layers are given to the constructor or appended with ``add_layer(layer)``
    (TinyAI's ``addLayer``) or ``add(name, layer)``; each is named by its own
    name, or by its type and position (``linear0``, ``relu1``, ...).

    >>> from tinyai.nn import Linear, ReLU
    >>> net = SequentialBlock(Linear(4, 8), ReLU(), Linear(8, 2), name="net")
    >>> [n for n, _ in net.named_params()]
    ['linear0.W', 'linear0.b', 'linear2.W', 'linear2.b']
    """

    def __init__(self, *layers: Layer, name: str | None = None) -> None:
        super().__init__(name)
        for layer in layers:
            if not isinstance(layer, Layer):
                raise TypeError(f"{self._label()}: expected Layers, got {type(layer).__name__}")
            self.add_layer(layer)

    def forward(self, x: Any) -> Any:
        if not self._members:
            raise ValueError(f"{self._label()}: has no layers; add some with add_layer()")
        for layer in self.children():
            x = layer(x)
        return x

    def __len__(self) -> int:
        return sum(1 for _ in self.children())

    def __getitem__(self, index: int) -> Layer:
        return list(self.children())[index]
