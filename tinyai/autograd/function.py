"""The Function: one differentiable operation, and the graph edge it leaves behind.

A subclass writes two methods:

* ``forward(*xs)`` computes on raw arrays (NumPy or CuPy) and returns an array
  or a tuple of arrays;
* ``backward(*gys)`` receives the gradients of the outputs and returns those
  of the inputs (or None where an input gets no gradient). Writing it with
  tinyai's own functions is what makes second derivatives work: under
  ``backward(create_graph=True)`` these calls record a graph of their own.

One formula, two speeds. Most backward passes are never differentiated
again: a training step only wants the numbers. Recording them anyway costs a
Function call (a few microseconds) for every ``*`` in a backward, several
times the arithmetic on a small array. So a backward written only with what
raw arrays and Variables *both* understand (``+ - * / ** @``, unary ``-``,
``.T``, ``.reshape``, ``.sum(axis=..., keepdims=...)``, and small helpers
such as ``sum_to_either`` that return an array for an array and a Variable
for a Variable) can run on either, and its class says so with
``backward_on_arrays = True``. Then ``Variable.backward`` hands it raw arrays
when nothing is recorded (``create_graph=False``), and Variables when the
gradient must itself be differentiable. The backward fetches what it saved in
the matching form with ``self.saved_inputs(gy)`` and ``self.saved_output(gy)``.
Functions that leave the flag False always receive Variables.

Calling the Function wraps the outputs in Variables and, when gradients are
being recorded, links them to it. The outputs are held by weak reference: the
graph hangs from its results, and when the last result goes, the whole graph
is freed by reference counting alone, without waiting for the garbage
collector.
"""
from __future__ import annotations

import weakref
from typing import Any, Sequence

from tinyai.autograd.config import _grad_enabled
from tinyai.backend.device import check_same_device
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

    The same operation, declared safe to differentiate on raw arrays (its
    backward uses only ``*``, which arrays and Variables share):

    >>> class FastSquare(Function):
    ...     backward_on_arrays = True
    ...     def forward(self, x):
    ...         return x * x
    ...     def backward(self, gy):
    ...         x, = self.saved_inputs(gy)  # arrays or Variables, like gy
    ...         return 2 * x * gy
    >>> x = Variable(np.array(3.0))
    >>> FastSquare()(x).backward()
    >>> float(x.grad.data)
    6.0
    """

    #: True when ``backward`` works on raw arrays as well as on Variables (see
    #: the module docstring); ``Variable.backward`` then passes arrays whenever
    #: the backward pass is not recorded.
    backward_on_arrays = False
    generation = 0
    inputs: tuple[Variable, ...] = ()
    outputs: tuple = ()

    def __call__(self, *inputs: Any) -> Any:
        # This runs for every operation, forward and backward, so it is written
        # for speed: plain loops instead of generator expressions, one pass
        # over the inputs for the graph decision and the generation, and a
        # short path for the usual single output.
        for x in inputs:
            if not isinstance(x, Variable):
                inputs = tuple(as_variable(x) for x in inputs)
                break
        try:
            ys = self.forward(*[x.data for x in inputs])
        except (TypeError, ValueError) as error:
            # A host array meeting a device array fails inside the array
            # library with a message that names neither the operation nor the
            # devices; checking only after a failure keeps the usual path free.
            check_same_device(type(self).__name__, [x.data for x in inputs], error)
            raise

        record = False
        generation = 0
        if _grad_enabled.get():
            for x in inputs:
                if x.requires_grad:
                    record = True
                if x.generation > generation:
                    generation = x.generation
        if not record:
            if isinstance(ys, tuple):
                return tuple([Variable(y, requires_grad=False) for y in ys])
            return Variable(ys, requires_grad=False)

        self.generation = generation
        self.inputs = inputs
        if not isinstance(ys, tuple):
            y = Variable(ys)
            y.creator = self
            y.generation = generation + 1
            self.outputs = (weakref.ref(y),)
            return y
        outputs = tuple([Variable(y) for y in ys])
        for y in outputs:
            y.creator = self
            y.generation = generation + 1
        self.outputs = tuple([weakref.ref(y) for y in outputs])
        return outputs

    def forward(self, *xs: Any) -> Any:
        raise TypeError(f"{type(self).__name__} must define forward(*xs)")

    def backward(self, *gys: Variable) -> Any:
        raise TypeError(f"{type(self).__name__} is not differentiable: it defines no backward(*gys)")

    def saved_inputs(self, gy: Any) -> Sequence[Any]:
        """The inputs in the form of ``gy``: the Variables when ``gy`` is a
        Variable, their raw arrays when ``gy`` is a raw array."""
        if isinstance(gy, Variable):
            return self.inputs
        return [x.data for x in self.inputs]  # a list: unpacked at once, tuple() would only cost time

    def saved_output(self, gy: Any, index: int = 0) -> Any:
        """Output ``index`` in the form of ``gy`` (a Variable, or its raw array)."""
        y = self.outputs[index]()
        return y if isinstance(gy, Variable) else y.data

    @property
    def needs_input_grad(self) -> tuple[bool, ...]:
        """Which inputs want a gradient: backward may skip work for the others."""
        return tuple(x.requires_grad for x in self.inputs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(generation={self.generation})"
