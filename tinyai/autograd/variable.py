"""The Variable: an array together with its gradient and the Function that made it.

A Variable is a node of the computation graph. ``creator`` points back to the
Function that produced it, and that Function points to its inputs, so from any
result one can walk back to every value it was computed from. ``backward``
does exactly that walk, in reverse order of ``generation``, and leaves each
input's derivative in its ``grad``.

Arithmetic operators (``+``, ``*``, ``@``, indexing, ...) are attached by
``tinyai.functions`` — this layer knows what a graph is, not what an operation
computes.
"""
from __future__ import annotations

import heapq
import itertools
from typing import TYPE_CHECKING, Any

import numpy as np

from tinyai.backend import get_array_module, get_default_dtype, is_array, to_cpu, to_gpu
from tinyai.autograd.config import _grad_enabled

if TYPE_CHECKING:  # only for the annotation: function.py imports this module
    from tinyai.autograd.function import Function


#: The NumPy dtype kinds a Variable may hold: booleans, integers, floats, complex numbers.
_NUMERIC_KINDS = "biufc"


def _refuse_dtype(data: Any) -> TypeError:
    dtype = getattr(data, "dtype", None)
    what = (f"an array of dtype {dtype}" if dtype is not None else type(data).__name__)
    return TypeError(f"Variable: cannot hold {what}; a Variable holds numbers "
                     "(bool, int, float or complex arrays)")


def _to_array(data: Any) -> Any:
    """Turn Python scalars, lists and NumPy scalars into arrays.

    Python floats become the default float dtype (float32), as a user who
    writes ``Variable([1.0, 2.0])`` expects; NumPy scalars keep their dtype.
    Strings, bytes, dates and other objects are refused (TypeError), and so
    are numbers too large for the default dtype (ValueError), rather than
    being stored as ``inf``.
    """
    if isinstance(data, np.generic):
        return np.asarray(data)
    if isinstance(data, (str, bytes)) or data is None:
        raise _refuse_dtype(data)
    array = np.asarray(data)
    if array.dtype.kind not in _NUMERIC_KINDS:
        raise _refuse_dtype(array if isinstance(data, (list, tuple)) else data)
    if array.dtype.kind == "f" and array.dtype != get_default_dtype() and not isinstance(data, np.ndarray):
        with np.errstate(over="ignore"):  # reported below, with the value
            converted = array.astype(get_default_dtype())
        overflow = np.isinf(converted) & np.isfinite(array)
        if overflow.any():
            first = float(array[overflow].flat[0])
            raise ValueError(f"Variable: {first!r} does not fit in {converted.dtype} (largest "
                             f"{np.finfo(converted.dtype).max:.3g}); pass a float64 array or use "
                             "tinyai.backend.set_default_dtype(numpy.float64)")
        array = converted
    return array


class Variable:
    """A node of the computation graph: ``data`` (an array) and ``grad`` (a Variable or None).

    Args:
        data: a NumPy/CuPy array, or a Python scalar or list (converted).
        name: optional label, shown in ``repr`` and graph pictures.
        requires_grad: whether ``backward`` should compute this value's
            gradient. Integer and boolean data never require one.

    >>> x = Variable(np.array(3.0))
    >>> y = x * x
    >>> y.backward()
    >>> float(x.grad.data)
    6.0
    """

    __slots__ = ("data", "name", "grad", "creator", "generation", "requires_grad", "__weakref__")
    # Make ``ndarray + Variable`` call Variable.__radd__ instead of NumPy looping over it.
    __array_ufunc__ = None

    def __init__(self, data: Any, name: str | None = None, requires_grad: bool = True) -> None:
        # Every operation creates Variables, almost always around a NumPy array:
        # that case skips the checks (a cheap type test, not a chain of isinstance).
        if type(data) is not np.ndarray:
            if isinstance(data, Variable):
                raise TypeError("Variable: data is already a Variable; use it directly or pass .data")
            if not is_array(data):
                data = _to_array(data)
        self.data = data
        self.name = name
        self.grad: Variable | None = None
        self.creator = None
        self.generation = 0
        kind = data.dtype.kind
        if kind not in _NUMERIC_KINDS:  # str, bytes, dates, objects: not something to differentiate
            raise _refuse_dtype(data)
        self.requires_grad = requires_grad and kind in "fc"

    # -- array-like properties -------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def dtype(self) -> Any:
        return self.data.dtype

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        if self.data is None:
            return "Variable(None)"
        body = str(to_cpu(self.data)).replace("\n", "\n" + " " * 9)
        extras = [f"shape={self.shape}", f"dtype={self.dtype}"]
        if self.name is not None:
            extras.insert(0, f"name={self.name!r}")
        if self.creator is not None:
            extras.append(f"creator={type(self.creator).__name__}")
        return f"Variable({body}, {', '.join(extras)})"

    def item(self) -> Any:
        """The value of a one-element Variable as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item: only one-element Variables convert to a number, got shape {self.shape}")
        return self.data.item()

    def numpy(self) -> np.ndarray:
        """The data as a NumPy array on the host (copied from the GPU if needed)."""
        return to_cpu(self.data)

    # -- graph bookkeeping ------------------------------------------------------
    def set_creator(self, function: Function) -> None:
        """Record ``function`` as this value's producer, one generation after it."""
        self.creator = function
        self.generation = function.generation + 1

    def clear_grad(self) -> None:
        """Forget the accumulated gradient (before the next backward pass)."""
        self.grad = None

    def detach(self) -> "Variable":
        """A new Variable sharing this data but with no history behind it."""
        return Variable(self.data, name=self.name, requires_grad=False)

    def unchain(self) -> None:
        """Cut the link to the creator: this Variable becomes a leaf."""
        self.creator = None

    def unchain_backward(self) -> None:
        """Cut every link behind this Variable (TinyAI's unChainBackward).

        Called after each training step so the graph of that step is freed at
        once, and so a recurrent state carried to the next step does not drag
        the whole history along.
        """
        if self.creator is None:
            return
        stack = [self.creator]
        seen = {id(self.creator)}
        self.creator = None
        while stack:
            function = stack.pop()
            for x in function.inputs:
                creator = x.creator
                if creator is not None:
                    x.creator = None
                    if id(creator) not in seen:
                        seen.add(id(creator))
                        stack.append(creator)

    # -- backpropagation ---------------------------------------------------------
    def backward(self, grad: Any = None, retain_grad: bool = False, create_graph: bool = False) -> None:
        """Compute the gradient of this value with respect to everything it depends on.

        The result lands in ``x.grad`` of each leaf ``x`` that requires a
        gradient, added to what was there already (so clear it between
        steps). Intermediate gradients are dropped as soon as they have been
        used unless ``retain_grad`` is set.

        Args:
            grad: the gradient of the final objective with respect to this
                value. May be left out only for a one-element value (then 1).
            retain_grad: keep ``grad`` on intermediate Variables too.
            create_graph: record the backward computation itself, so that the
                gradients are Variables with a history and can be
                differentiated again (second and higher derivatives).

        Functions are visited from the latest generation to the earliest, each
        exactly once: a Function runs only after every consumer of its outputs
        has passed its gradient on, which is what makes values used more than
        once (and diamond-shaped graphs) come out right. The walk uses a heap,
        not recursion, so a 10,000-step chain is fine.

        One formula, two speeds. Each Function has one backward formula. When
        ``create_graph`` is set, it runs on Variables and records a graph, so
        the gradients can be differentiated again. Otherwise nobody will
        differentiate them, and recording would only cost time: Functions
        marked ``backward_on_arrays`` then get the output gradients as raw
        arrays and return raw arrays (the same formula, computed by NumPy or
        CuPy directly), gradients are added up as arrays, and each stored
        ``grad`` is a Variable around its array that needs no gradient (a
        gradient passed on unchanged keeps the Variable it came in). Other
        Functions still receive Variables, evaluated with recording off.
        """
        xp = get_array_module(self.data)
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward: output has shape {self.shape}; pass grad= of that shape "
                    "(only a one-element output has an implicit gradient of 1)")
            grad = Variable(xp.ones_like(self.data), requires_grad=False)
        elif not isinstance(grad, Variable):
            grad = Variable(grad if is_array(grad) else xp.asarray(grad, dtype=self.dtype),
                            requires_grad=False)
        if grad.shape != self.shape:
            raise ValueError(f"backward: grad has shape {grad.shape} but the output has shape {self.shape}")
        self.grad = grad if self.grad is None else self.grad + grad
        if self.creator is None:
            return

        # The heap holds (-generation, order of arrival, function): the latest
        # generation comes out first, ties in arrival order. ``seen`` holds
        # the ids of functions already pushed, so each runs exactly once.
        order = itertools.count()
        heap: list = [(-self.creator.generation, next(order), self.creator)]
        seen: set[int] = {id(self.creator)}
        pop, push = heapq.heappop, heapq.heappush  # looked up once, not once per Function
        token = _grad_enabled.set(create_graph)
        try:
            while heap:
                function = pop(heap)[2]
                outputs = function.outputs
                on_arrays = not create_graph and function.backward_on_arrays
                if len(outputs) == 1:  # the common case, without a list
                    y = outputs[0]()
                    gy_variable = gy = None if y is None else y.grad
                    if on_arrays and gy is not None:
                        gy = gy.data
                    gxs = function.backward(gy)
                else:
                    gys = [None if (y := ref()) is None else y.grad for ref in outputs]
                    if on_arrays:
                        gys = [None if gy is None else gy.data for gy in gys]
                    gxs = function.backward(*gys)
                    gy_variable = gy = None
                inputs = function.inputs
                if not isinstance(gxs, tuple):
                    gxs = (gxs,)
                if len(gxs) != len(inputs):
                    raise RuntimeError(
                        f"{type(function).__name__}.backward returned {len(gxs)} gradients "
                        f"for {len(inputs)} inputs")
                for x, gx in zip(inputs, gxs):
                    if gx is None or not x.requires_grad:
                        continue
                    if create_graph:
                        x.grad = gx if x.grad is None else x.grad + gx
                    elif gx is gy and x.grad is None:
                        # Passed on unchanged (add, a reshape to the same shape):
                        # share the output's gradient Variable instead of a new one.
                        x.grad = gy_variable
                    else:  # plain numbers: add arrays, no graph to record
                        if isinstance(gx, Variable):
                            gx = gx.data
                        x.grad = Variable(gx if x.grad is None else x.grad.data + gx, requires_grad=False)
                    creator = x.creator
                    if creator is not None and id(creator) not in seen:
                        seen.add(id(creator))
                        push(heap, (-creator.generation, next(order), creator))
                if not retain_grad:
                    for ref in outputs:
                        y = ref()
                        if y is not None:
                            y.grad = None
        finally:
            _grad_enabled.reset(token)

    # -- devices -------------------------------------------------------------------
    def to_gpu(self, device_id: int | None = None) -> "Variable":
        """Move the data (and gradient) to GPU ``device_id`` (default 0) in place; returns self."""
        self.data = to_gpu(self.data, device_id)
        if self.grad is not None:
            self.grad.to_gpu(device_id)
        return self

    def to_cpu(self) -> "Variable":
        """Move the data (and gradient) to host memory in place; returns self."""
        self.data = to_cpu(self.data)
        if self.grad is not None:
            self.grad.to_cpu()
        return self


def as_variable(x: Any) -> Variable:
    """``x`` itself if it is a Variable, else a new Variable that needs no gradient."""
    if isinstance(x, Variable):
        return x
    return Variable(x, requires_grad=False)
