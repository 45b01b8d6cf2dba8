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
from tinyai.autograd.config import _backward_on_arrays, _grad_enabled
from tinyai.backend.pytorch_names import ATTRIBUTES, attribute_error
from tinyai.backend.settings import bool_setting

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

    # PyTorch's names for what a Variable has under another name (``x.grad_fn``,
    # ``x.view``) are class attributes that raise an AttributeError saying
    # tinyai's name: see _PyTorchName below the class.

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
        if requires_grad is not True and requires_grad is not False:  # two identity tests on the usual path
            # "no" is true to Python: it would switch the gradient on, the opposite of what was meant.
            requires_grad = bool_setting(requires_grad, "Variable", "requires_grad")
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
    def clear_grad(self) -> None:
        """Forget the accumulated gradient (before the next backward pass)."""
        self.grad = None

    def detach(self) -> "Variable":
        """A new Variable sharing this data but with no history behind it."""
        return Variable(self.data, name=self.name, requires_grad=False)

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
        differentiate them, and recording would only cost time: every
        Function then gets the output gradients and its saved values as raw
        arrays and returns raw arrays (the same formula, computed by NumPy or
        CuPy directly). The gradients travelling through the graph stay raw
        arrays, and only the leaves (and, with ``retain_grad``, the
        intermediate values) get a ``grad`` Variable, which needs no gradient.

        No leaf's gradient changes under it. A gradient passed on unchanged
        (by ``+``, or a reshape to the same shape) is not copied while it
        travels. When the walk hands one array to several inputs (both
        operands of ``a + b``, every parameter of a chain of additions), the
        array becomes read-only (NumPy; a CuPy array is copied instead): the
        parameters share it, and an in-place write (``p.grad.data *= 2``)
        raises instead of changing the others' gradients too. A leaf that
        would see another array's memory (a view of another gradient, a
        retained gradient) receives a copy. Every other leaf gradient is
        the parameter's own, writable array, and a gradient added to an
        existing one is a new array, so an optimizer may scale a writable
        ``p.grad.data`` in place (``clip_grad_norm`` does, and gives a
        read-only one a new, scaled array).
        """
        # create_graph="no" is true to Python, and would record a graph nobody asked for.
        retain_grad = bool_setting(retain_grad, "backward", "retain_grad")
        create_graph = bool_setting(create_graph, "backward", "create_graph")
        xp = get_array_module(self.data)
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward: output has shape {self.shape}; pass grad= of that shape "
                    "(only a one-element output has an implicit gradient of 1)")
            grad = Variable(xp.ones_like(self.data), requires_grad=False)
        else:
            if not isinstance(grad, Variable):
                grad = Variable(grad if is_array(grad) else xp.asarray(grad, dtype=self.dtype),
                                requires_grad=False)
            if grad.shape != self.shape:
                raise ValueError(f"backward: grad has shape {grad.shape} but the output has shape {self.shape}")
            if not create_graph:
                # The caller keeps its array; the graph gets a copy it may hand on to a leaf.
                grad = Variable(grad.data.copy(), requires_grad=False)
        self.grad = grad if self.grad is None else self.grad + grad
        if self.creator is None:
            return
        if create_graph:
            self._backward_recorded(retain_grad)
        else:
            self._backward_plain(retain_grad)

    # The two walks below visit the Functions in the same order. A heap holds
    # (-generation, order of arrival, function): the latest generation comes
    # out first, ties in arrival order. ``seen`` holds the ids of functions
    # already pushed, so each runs exactly once.
    def _backward_recorded(self, retain_grad: bool) -> None:
        """The walk of ``backward(create_graph=True)``: gradients are Variables,
        kept in ``grad``, and every backward formula is recorded."""
        order = itertools.count()
        heap: list = [(-self.creator.generation, next(order), self.creator)]
        seen: set[int] = {id(self.creator)}
        token = _grad_enabled.set(True)
        try:
            while heap:
                function = heapq.heappop(heap)[2]
                outputs = function.outputs
                gys = [None if (y := ref()) is None else y.grad for ref in outputs]
                gxs = function.backward(*gys)
                if not isinstance(gxs, tuple):
                    gxs = (gxs,)
                if len(gxs) != len(function.inputs):
                    raise RuntimeError(f"{type(function).__name__}.backward returned {len(gxs)} gradients "
                                       f"for {len(function.inputs)} inputs")
                for x, gx in zip(function.inputs, gxs):
                    if gx is None or not x.requires_grad:
                        continue
                    x.grad = gx if x.grad is None else x.grad + gx
                    creator = x.creator
                    if creator is not None and id(creator) not in seen:
                        seen.add(id(creator))
                        heapq.heappush(heap, (-creator.generation, next(order), creator))
                if not retain_grad:
                    for ref in outputs:
                        y = ref()
                        if y is not None:
                            y.grad = None
        finally:
            _grad_enabled.reset(token)

    def _backward_plain(self, retain_grad: bool) -> None:
        """The walk of a plain ``backward()``: every backward formula runs on raw
        arrays, and the gradients travel as arrays in ``travelling`` (keyed by
        the id of the Variable they belong to) until they reach a leaf.

        A creator joins the heap when the first gradient for its output
        arrives; only a creator of several outputs needs ``seen`` to join once.
        """
        order = itertools.count()
        heap: list = [(-self.creator.generation, next(order), self.creator)]
        seen: set[int] = {id(self.creator)}
        travelling: dict[int, Any] = {id(self): self.grad.data}
        shared = None  # the array last made safe to share (see _shared)
        pop, push = heapq.heappop, heapq.heappush  # looked up once, not once per Function
        grad_token = _grad_enabled.set(False)
        arrays_token = _backward_on_arrays.set(True)
        try:
            while heap:
                function = pop(heap)[2]
                outputs = function.outputs
                if len(outputs) == 1:  # the common case, without a list
                    y = outputs[0]()
                    gy = None if y is None else travelling.pop(id(y), None)
                    if retain_grad and y is not self:
                        _retain(y, gy)
                    gxs = function.backward(gy)
                else:
                    gys = []
                    for ref in outputs:
                        y = ref()
                        gy = None if y is None else travelling.pop(id(y), None)
                        if retain_grad and y is not self:
                            _retain(y, gy)
                        gys.append(gy)
                    gxs = function.backward(*gys)
                    gy = gys if retain_grad else None  # only for the check below
                inputs = function.inputs
                if type(gxs) is not tuple:
                    gxs = (gxs,)
                if len(gxs) != len(inputs):
                    raise RuntimeError(f"{type(function).__name__}.backward returned {len(gxs)} gradients "
                                       f"for {len(inputs)} inputs")
                first = None  # the array handed to the first input that takes a gradient
                for x, gx in zip(inputs, gxs):
                    if gx is None or not x.requires_grad:
                        continue
                    if type(gx) is Variable:
                        gx = gx.data
                    if first is None:
                        first = gx
                    elif gx is first or (len(gxs) > 2 and _handed_twice(gx, gxs)):
                        # The same array for two inputs (a + b). Along a chain of
                        # additions it is the same array again and again: made safe once.
                        if gx is not shared:
                            gx = shared = _shared(gx)
                    creator = x.creator
                    if creator is not None:  # on its way: add up, pass on later
                        key = id(x)
                        earlier = travelling.get(key)
                        if earlier is not None:
                            travelling[key] = earlier + gx
                        else:  # x's first gradient: its creator joins the heap
                            travelling[key] = gx
                            if len(creator.outputs) == 1:
                                push(heap, (-creator.generation, next(order), creator))
                            elif id(creator) not in seen:  # several outputs: it joins once
                                seen.add(id(creator))
                                push(heap, (-creator.generation, next(order), creator))
                    elif x.grad is None:  # a leaf: it must not see another array's memory (a view, a retained gradient)
                        if isinstance(gx, np.generic):  # NumPy's arithmetic on 0-d arrays gives scalars
                            gx = np.asarray(gx)
                        elif gx.base is not None or (retain_grad and _retained(gx, gy)):
                            gx = gx.copy(order="K")  # "K": keep its memory layout
                        x.grad = _fresh_variable(gx)
                    else:  # a leaf: it keeps the sum, in a new array
                        total = x.grad.data + gx
                        x.grad = _fresh_variable(np.asarray(total) if isinstance(total, np.generic) else total)
            if not retain_grad:
                self.grad = None
        finally:
            _backward_on_arrays.reset(arrays_token)
            _grad_enabled.reset(grad_token)

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


class _PyTorchName:
    """A PyTorch attribute that a Variable has under another name (``x.grad_fn``:
    ``x.creator``). Reading it raises the AttributeError that says tinyai's name.

    One such class attribute per name, rather than a ``__getattr__`` method:
    Python reads every attribute of a class that has ``__getattr__`` on a
    slower path (``x.data``, ``x.grad``, ``x.creator``, all of them), which
    made a chain of small operations about 10% slower.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:  # looked up on the class (help(), inspect): the attribute itself
            return self
        raise attribute_error(obj, "Variable", self.name)


for _name in ATTRIBUTES["Variable"]:
    if not hasattr(Variable, _name):  # x.size is a PyTorch name too, with the same meaning
        setattr(Variable, _name, _PyTorchName(_name))
del _name


def _retain(y: Variable | None, gy: Any) -> None:
    """Keep the complete gradient of an intermediate value (``retain_grad``)."""
    if y is not None and gy is not None:
        y.grad = Variable(gy if y.grad is None else y.grad.data + gy, requires_grad=False)


def _retained(gx: Any, gy: Any) -> bool:
    """Whether ``gx`` is the output gradient ``gy`` (or one of the list ``gy``), which an output retains."""
    return gx is gy or (type(gy) is list and any(gx is g for g in gy))


def _handed_twice(gx: Any, gxs: tuple) -> bool:
    """Whether the array ``gx`` is returned for more than one input (by identity, not value)."""
    count = 0
    for other in gxs:
        if other is gx or (type(other) is Variable and other.data is gx):
            count += 1
    return count > 1


def _shared(gx: Any) -> Any:
    """The array ``gx``, which the walk hands to more than one input, made safe to share.

    A NumPy array becomes read-only, so that no holder can change it under
    the others: an in-place write (``p.grad.data *= 2``) raises instead of
    changing the gradients of other parameters too, and ``clip_grad_norm``
    scales such a gradient into a new array. A gradient handed unchanged
    along a chain of additions thus reaches every parameter without a copy
    each. An array without a read-only flag (CuPy's) is copied instead.
    """
    if type(gx) is np.ndarray:
        flags = gx.flags
        if flags.writeable:
            flags.writeable = False
        return gx
    return gx.copy()


def _fresh_variable(array: Any, requires_grad: bool = False) -> Variable:
    """``Variable(array, requires_grad=requires_grad)`` without the checks of ``__init__``.

    Only for a float array that tinyai itself computed: an operation's output,
    a gradient. Nothing about it needs checking, and these two kinds of
    Variable are created once per operation and once per parameter in every
    step, so the checks made up much of the cost of a chain of small operations.
    """
    v = _new_variable(Variable)
    v.data = array
    v.name = None
    v.grad = None
    v.creator = None
    v.generation = 0
    v.requires_grad = requires_grad
    return v


_new_variable = object.__new__


def as_variable(x: Any) -> Variable:
    """``x`` itself if it is a Variable, else a new Variable that needs no gradient."""
    if isinstance(x, Variable):
        return x
    return Variable(x, requires_grad=False)
