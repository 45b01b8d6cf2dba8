"""The Function: one differentiable operation, and the graph edge it leaves behind.

A subclass writes two methods:

* ``forward(*xs)`` computes on raw arrays (NumPy or CuPy) and returns an array
  or a tuple of arrays;
* ``backward(*gys)`` receives the gradients of the outputs as Variables and
  returns those of the inputs (a Variable, or None where an input gets no
  gradient). Writing it with tinyai's own functions is what makes second
  derivatives work: under ``backward(create_graph=True)`` these calls record a
  graph of their own.

Calling the Function wraps the outputs in Variables and, when gradients are
being recorded, links them to it. The outputs are held by weak reference: the
graph hangs from its results, and when the last result goes, the whole graph
is freed by reference counting alone, without waiting for the garbage
collector.
"""
from __future__ import annotations

import weakref
from typing import Any

from tinyai.autograd.config import _grad_enabled
from tinyai.autograd.variable import Variable, as_variable


class Function:
    """Base class of every differentiable operation.

    >>> import numpy as np
    >>> class Square(Function):
    ...     def forward(self, x):
    ...         return x * x
    ...     def backward(self, gy):
    ...         x, = self.inputs
    ...         return 2 * x * gy
    >>> y = Square()(Variable(np.array(3.0)))
    >>> y.backward()
    """

    generation = 0
    inputs: tuple[Variable, ...] = ()
    outputs: tuple = ()

    def __call__(self, *inputs: Any) -> Any:
        inputs = tuple(x if isinstance(x, Variable) else as_variable(x) for x in inputs)
        ys = self.forward(*[x.data for x in inputs])
        if isinstance(ys, tuple):
            outputs = tuple(Variable(y) for y in ys)
        else:
            outputs = (Variable(ys),)

        if _grad_enabled.get() and any(x.requires_grad for x in inputs):
            self.generation = max(x.generation for x in inputs)
            for y in outputs:
                y.creator = self
                y.generation = self.generation + 1
            self.inputs = inputs
            self.outputs = tuple(weakref.ref(y) for y in outputs)
        else:
            for y in outputs:
                y.requires_grad = False
        return outputs if len(outputs) > 1 or isinstance(ys, tuple) else outputs[0]

    def forward(self, *xs: Any) -> Any:
        raise TypeError(f"{type(self).__name__} must define forward(*xs)")

    def backward(self, *gys: Variable) -> Any:
        raise TypeError(f"{type(self).__name__} is not differentiable: it defines no backward(*gys)")

    @property
    def needs_input_grad(self) -> tuple[bool, ...]:
        """Which inputs want a gradient: backward may skip work for the others."""
        return tuple(x.requires_grad for x in self.inputs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(generation={self.generation})"
