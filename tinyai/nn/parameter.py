"""The Parameter: a Variable that a Layer owns and an optimizer updates.

A Parameter is an ordinary Variable in every computation; the type only marks
it, so that a Layer assigned ``self.W = Parameter(...)`` knows to register it,
and so that ``params()`` can find every trainable value of a model.
"""
from __future__ import annotations

from typing import Any

from tinyai.autograd import Variable
from tinyai.backend import to_cpu


class Parameter(Variable):
    """A trainable array: a leaf Variable that always requires a gradient.

    Args:
        data: a floating NumPy/CuPy array (integers cannot be trained).
        name: optional label; a Layer's ``named_params()`` gives the dotted
            name under which the Parameter is registered.

    >>> import numpy as np
    >>> p = Parameter(np.zeros((2, 3), dtype=np.float32), name="W")
    >>> p.shape, p.requires_grad
    ((2, 3), True)
    """

    __slots__ = ()

    def __init__(self, data: Any, name: str | None = None) -> None:
        super().__init__(data, name=name, requires_grad=True)
        if self.data.dtype.kind != "f":
            label = f"Parameter {name}" if name else "Parameter"
            raise TypeError(f"{label}: needs floating data, got dtype {self.data.dtype}")

    def __repr__(self) -> str:
        body = str(to_cpu(self.data)).replace("\n", "\n" + " " * 10)
        label = f"name={self.name!r}, " if self.name is not None else ""
        return f"Parameter({body}, {label}shape={self.shape}, dtype={self.dtype})"
