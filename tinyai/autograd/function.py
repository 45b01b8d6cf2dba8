"""The Function: one differentiable operation, and the graph edge it leaves behind.

A subclass writes two methods:

* ``forward(*xs)`` computes on raw arrays (NumPy or CuPy) and returns an array
  or a tuple of arrays;
* ``backward(*gys)`` receives the gradients of the outputs and returns those
  of the inputs (or None where an input gets no gradient).

Inside ``backward`` there is one way to reach what the forward pass saw:
``self.saved_inputs()`` and ``self.saved_outputs()``. Anything else backward
needs that is a constant rather than a value to differentiate (a mask, the
labels, the position of a maximum) is kept by ``forward`` as an attribute.
Write the formula with operators (``+ - * / ** @``, ``.T``, ``.reshape``,
``.sum(...)``) and tinyai's functions (``F.tanh``, ``F.sum_to``, ...):

    def backward(self, gy):
        x, = self.saved_inputs()
        return gy * 3 * x ** 2

One formula, two speeds. Most backward passes are never differentiated
again: a training step only wants the numbers. Recording them would cost a
Function call (a few microseconds) for every ``*`` in a backward, several
times the arithmetic on a small array. So a plain ``y.backward()`` hands
every backward raw arrays (``gy``, and the saved values), and inside it
tinyai's functions called on raw arrays only return raw arrays, computed
directly by NumPy or CuPy with no Variable and no graph. Under
``y.backward(create_graph=True)`` the same formula receives Variables and
records a graph of its own, which is what makes second derivatives work.
The author of a Function writes the formula once and never sees the
difference.

Calling the Function wraps the outputs in Variables and, when gradients are
being recorded, links them to it. The outputs are held by weak reference: the
graph hangs from its results, and when the last result goes, the whole graph
is freed by reference counting alone, without waiting for the garbage
collector.
"""
from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from tinyai.autograd.config import _backward_on_arrays, _grad_enabled
from tinyai.backend import is_array
from tinyai.backend.device import check_same_device
from tinyai.autograd.variable import Variable, _fresh_variable, as_variable


class Function:
    """Base class of every differentiable operation.

    >>> import numpy as np
    >>> class Square(Function):
    ...     def forward(self, x):
    ...         return x * x
    ...     def backward(self, gy):
    ...         x, = self.saved_inputs()  # an array, or a Variable under create_graph
    ...         return 2 * x * gy
    >>> x = Variable(np.array(3.0))
    >>> Square()(x).backward()
    >>> float(x.grad.data)
    6.0
    """

    generation = 0
    #: The input Variables: the graph's edges back to where the inputs came from.
    inputs: tuple[Variable, ...] = ()
    #: Weak references to the output Variables.
    outputs: tuple = ()

    def __call__(self, *inputs: Any) -> Any:
        # This runs for every operation, forward and backward, so it is written
        # for speed: plain loops instead of generator expressions, one pass
        # over the inputs for the graph decision and the generation, and a
        # short path for the usual single output.
        for x in inputs:
            if not isinstance(x, Variable):
                if _backward_on_arrays.get() and _all_arrays(inputs):
                    # Inside a plain backward pass, on raw arrays only: nothing
                    # will be recorded, so compute and hand back raw arrays.
                    return self.forward(*inputs)
                inputs = tuple([as_variable(x) for x in inputs])
                break
        try:
            n = len(inputs)
            if n == 2:  # the usual binary and unary operations, without a list
                ys = self.forward(inputs[0].data, inputs[1].data)
            elif n == 1:
                ys = self.forward(inputs[0].data)
            else:
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
            if type(ys) is np.ndarray and ys.dtype.kind in "fc":  # the usual result: nothing to check
                y = _fresh_variable(ys, requires_grad=True)
            else:
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

    def backward(self, *gys: Any) -> Any:
        raise TypeError(f"{type(self).__name__} is not differentiable: it defines no backward(*gys)")

    # -- what backward reads ------------------------------------------------------------
    def saved_inputs(self) -> list[Any]:
        """The inputs of the forward pass, in the form the backward pass computes in.

        Raw arrays during a plain ``backward()``, the input Variables when the
        backward pass is recorded (``create_graph=True``) or called by hand.
        """
        inputs = self.inputs
        if not _backward_on_arrays.get():
            return list(inputs)
        # Every backward asks for this: one and two inputs, the usual cases,
        # skip the loop of a list comprehension.
        n = len(inputs)
        if n == 1:
            return [inputs[0].data]
        if n == 2:
            return [inputs[0].data, inputs[1].data]
        if n == 3:
            return [inputs[0].data, inputs[1].data, inputs[2].data]
        return [x.data for x in inputs]

    def saved_outputs(self) -> list[Any]:
        """The outputs of the forward pass, in the same form as ``saved_inputs()``.

        An output that no longer exists (nothing used it) is None.
        """
        outputs = [ref() for ref in self.outputs]
        if _backward_on_arrays.get():
            return [None if y is None else y.data for y in outputs]
        return outputs

    @property
    def needs_input_grad(self) -> tuple[bool, ...]:
        """Which inputs want a gradient: backward skips the work for the others
        (the gradient of ``x @ W`` with respect to a data batch ``x``, say)."""
        inputs = self.inputs
        n = len(inputs)
        if n == 2:  # the usual cases, without a loop
            return (inputs[0].requires_grad, inputs[1].requires_grad)
        if n == 3:
            return (inputs[0].requires_grad, inputs[1].requires_grad, inputs[2].requires_grad)
        return tuple([x.requires_grad for x in inputs])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(generation={self.generation})"


def _all_arrays(values: tuple) -> bool:
    """True when every value is a raw NumPy/CuPy array (no Variable, no Python number)."""
    for value in values:
        if type(value) is not np.ndarray and not is_array(value):  # NumPy's, the usual case, first
            return False
    return True
