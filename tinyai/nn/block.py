"""The Block: a Layer made of other layers (TinyAI's Block).

A Block owns every Layer (or Block) assigned to one of its attributes, or
added with ``add(name, layer)``, in the order they arrive. Names are dotted
down the tree, so a Block holding ``fc1`` and ``fc2`` has Parameters
``fc1.W, fc1.b, fc2.W, fc2.b``. Everything a Layer does with its own
Parameters (``params()``, ``state_dict()``, ``train()``, ``to_gpu()``, ...)
a Block does for the whole tree.

>>> import numpy as np
>>> from tinyai.nn.linear import Linear
>>> class TwoLayers(Block):
...     def __init__(self):
...         super().__init__()
...         self.fc1 = Linear(4, 8)
...         self.fc2 = Linear(8, 2)
...     def forward(self, x):
...         return self.fc2(self.fc1(x))
>>> [name for name, _ in TwoLayers().named_params()]
['fc1.W', 'fc1.b', 'fc2.W', 'fc2.b']
"""
from __future__ import annotations

from typing import Any

from tinyai.nn.layer import _LAYER, Layer


class Block(Layer):
    """A Layer that owns layers and blocks; subclasses define ``forward``.

    ``repr(block)`` draws the tree, each layer with its parameter shapes and
    counts, and the total at the top.
    """

    def __setattr__(self, key: str, value: Any) -> None:
        if isinstance(value, Layer):
            if value is self:
                raise ValueError(f"{self._label()}: a block cannot contain itself (as {key!r})")
            self._register(key, _LAYER)
            if value.__dict__.get("name") is None:
                value.name = key
            object.__setattr__(self, key, value)
            return
        super().__setattr__(key, value)

    def add(self, name: str, layer: Layer) -> Layer:
        """Add ``layer`` under ``name`` (the same as ``setattr(self, name, layer)``); returns the layer."""
        if not isinstance(layer, Layer):
            raise TypeError(f"{self._label()}.add: {name!r} must be a Layer, got {type(layer).__name__}")
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"{self._label()}.add: layer name {name!r} must be a non-empty string without '.'")
        if name in self._members:
            raise ValueError(f"{self._label()}.add: the name {name!r} is already taken")
        setattr(self, name, layer)
        return layer

    def add_layer(self, layer: Layer) -> Layer:
        """TinyAI's ``addLayer``: add under the layer's own name, or ``<type><index>`` if it has none."""
        name = layer.__dict__.get("name")
        if not name or name in self._members:
            name = f"{type(layer).__name__.lower()}{len(self._members)}"
        return self.add(name, layer)

    def forward(self, *xs: Any) -> Any:
        raise TypeError(f"{type(self).__name__} must define forward(*xs) "
                        "(for layers applied one after the other, use SequentialBlock)")

    def __repr__(self) -> str:
        extra = self.extra_repr()
        lines = [f"{self._label()}{f'({extra})' if extra else ''}  {self.num_params():,} params"]
        own = self._param_summary()
        if own:
            lines[0] += f"  own{own}"
        for key, child in self.named_children():
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({key}): {body}")
        return "\n".join(lines)
