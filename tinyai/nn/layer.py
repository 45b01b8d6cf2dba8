"""The Layer: a differentiable computation that owns its Parameters (TinyAI's Layer).

A Layer registers every Parameter assigned to one of its attributes, in the
order of assignment, and gives them back through ``named_params()``. That
order is part of the contract: optimizers, checkpoints and the data-parallel
all-reduce walk parameters by it, so it must be the same in every process
and every run (a ``set`` would not be).

Besides Parameters a layer may hold *buffers*: arrays that are part of its
state but are not trained, such as batch normalisation's running mean. They
travel with ``state_dict()``, ``to_gpu()`` and pickling, but never reach an
optimizer.

Write a layer by subclassing and defining ``forward``:

>>> import numpy as np
>>> import tinyai.functions as F
>>> class Scale(Layer):
...     def __init__(self, n):
...         super().__init__()
...         self.s = Parameter(np.ones(n, dtype=np.float32))
...     def forward(self, x):
...         return x * self.s
>>> layer = Scale(3)
>>> [name for name, _ in layer.named_params()]
['s']
>>> layer(np.arange(3, dtype=np.float32)).shape
(3,)
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping

import numpy as np

from tinyai.autograd import Variable, as_variable
from tinyai.backend import get_array_module, is_array, to_cpu
from tinyai.backend.device import CPU, Device, as_device, device_of
from tinyai.backend.pytorch_names import attribute_error
from tinyai.backend.settings import bool_setting
from tinyai.nn.parameter import Parameter

_PARAM, _BUFFER, _LAYER = "param", "buffer", "layer"


class Layer:
    """Base class of every layer: owns Parameters and buffers, runs ``forward``.

    Args:
        name: the layer's name, used in error messages and in ``repr``. A
            Block that owns an unnamed layer gives it the attribute's name.

    Attributes:
        training: True in train mode (see ``train()`` / ``eval()``).
    """

    #: attributes that hold graph-bound values (a recurrent hidden state);
    #: they are dropped when the layer is pickled, as ``reset_state`` would.
    _transient: tuple[str, ...] = ()

    def __init__(self, name: str | None = None) -> None:
        # name -> kind, in order of first assignment: the one source of order.
        object.__setattr__(self, "_members", {})
        object.__setattr__(self, "_non_persistent", set())
        self.name = name
        self.training = True

    # -- registration ---------------------------------------------------------------
    def __setattr__(self, key: str, value: Any) -> None:
        if isinstance(value, Parameter):
            self._register(key, _PARAM)
            if value.name is None:
                value.name = key
        elif isinstance(value, Layer):
            raise TypeError(f"{self._label()}: a Layer cannot own the layer {key!r} "
                            f"({type(value).__name__}); make {type(self).__name__} a Block")
        object.__setattr__(self, key, value)

    def __delattr__(self, key: str) -> None:
        object.__delattr__(self, key)
        members = self.__dict__.get("_members", {})
        members.pop(key, None)
        self.__dict__.get("_non_persistent", set()).discard(key)

    def _register(self, key: str, kind: str) -> None:
        members = self.__dict__.get("_members")
        if members is None:
            raise RuntimeError(f"{type(self).__name__}: call super().__init__() before assigning "
                               f"parameters, buffers or layers (while setting {key!r})")
        known = members.get(key)
        if known is not None and known != kind:
            raise TypeError(f"{self._label()}: {key!r} is already a {known}; cannot make it a {kind}")
        members[key] = kind

    def register_buffer(self, name: str, array: Any, persistent: bool = True) -> None:
        """Keep ``array`` as state that is saved and moved but not trained.

        Args:
            name: attribute name; ``self.<name>`` reads the array afterwards.
            array: a NumPy/CuPy array.
            persistent: whether ``state_dict()`` includes it (a table that is
                recomputed from the constructor's arguments need not be saved).
        """
        if not is_array(array):
            raise TypeError(f"{self._label()}: buffer {name!r} must be an array, got {type(array).__name__}")
        if "." in name or not name:
            raise ValueError(f"{self._label()}: buffer name {name!r} must be non-empty and contain no '.'")
        self._register(name, _BUFFER)
        if not persistent:
            self._non_persistent.add(name)
        object.__setattr__(self, name, array)

    # -- calling ------------------------------------------------------------------------
    def forward(self, *xs: Any) -> Any:
        """The layer's computation on Variables; subclasses define it."""
        raise TypeError(f"{type(self).__name__} must define forward(*xs)")

    def __call__(self, *xs: Any, **kwargs: Any) -> Any:
        # Raw arrays become Variables (without gradient) so forward may use .shape and operators.
        xs = tuple(as_variable(x) if is_array(x) else x for x in xs)
        return self.forward(*xs, **kwargs)

    # -- walking the tree ------------------------------------------------------------------
    def named_children(self) -> Iterator[tuple[str, "Layer"]]:
        """(name, layer) for each directly owned layer, in order of assignment."""
        for key, kind in self._members.items():
            if kind == _LAYER:
                yield key, getattr(self, key)

    def children(self) -> Iterator["Layer"]:
        for _, child in self.named_children():
            yield child

    def named_layers(self, prefix: str = "") -> Iterator[tuple[str, "Layer"]]:
        """(dotted name, layer) for this layer ("" for itself) and every layer below it."""
        yield prefix, self
        for key, child in self.named_children():
            yield from child.named_layers(prefix + key if not prefix else f"{prefix}.{key}")

    def named_params(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """(dotted name, Parameter) for every Parameter here and below, in a stable order.

        The order is that of assignment, depth first: ``fc1.W, fc1.b, fc2.W, ...``.
        Parameters that a lazy layer has not yet created are skipped.
        """
        for key, kind in self._members.items():
            full = f"{prefix}{key}"
            if kind == _PARAM:
                value = getattr(self, key)
                if value is not None:
                    yield full, value
            elif kind == _LAYER:
                yield from getattr(self, key).named_params(full + ".")

    def params(self) -> Iterator[Parameter]:
        """Every Parameter here and below, in the order of ``named_params()``."""
        for _, p in self.named_params():
            yield p

    def named_buffers(self, prefix: str = "", persistent_only: bool = False) -> Iterator[tuple[str, Any]]:
        """(dotted name, array) for every buffer here and below."""
        for key, kind in self._members.items():
            if kind == _BUFFER:
                if not (persistent_only and key in self._non_persistent):
                    yield f"{prefix}{key}", getattr(self, key)
            elif kind == _LAYER:
                yield from getattr(self, key).named_buffers(f"{prefix}{key}.", persistent_only)

    def num_params(self) -> int:
        """The number of trainable scalars (elements of all Parameters)."""
        return sum(int(p.size) for p in self.params())

    # -- gradients and modes ------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails: says tinyai's name for a PyTorch habit.
        if name.startswith("__"):
            raise AttributeError(name)
        raise attribute_error(self, "Layer", name)

    def clear_grads(self) -> None:
        """Forget every Parameter's gradient (call before each backward pass)."""
        for p in self.params():
            p.clear_grad()

    # PyTorch's names for the same methods (aliases: one implementation).
    parameters = params
    named_parameters = named_params
    zero_grad = clear_grads

    def train(self, mode: bool = True) -> "Layer":
        """Put this layer and all below it in train mode (or test mode with False); returns self."""
        mode = bool_setting(mode, f"{type(self).__name__}.train", "mode")  # train("no") is train mode to Python
        for _, layer in self.named_layers():
            object.__setattr__(layer, "training", mode)
        return self

    def eval(self) -> "Layer":
        """Test mode: dropout passes values through, batch norm uses running statistics."""
        return self.train(False)

    def reset_state(self) -> None:
        """Forget carried state (a recurrent hidden state). A no-op for stateless layers."""
        for child in self.children():
            child.reset_state()

    # -- devices ----------------------------------------------------------------------------
    def to_gpu(self, device_id: int | None = None) -> "Layer":
        """Move every Parameter (and its gradient) and buffer to GPU ``device_id`` (default 0), in place; returns self.

        Carried recurrent state is reset, since it lives on the old device.
        """
        try:
            return self.to(f"gpu:{0 if device_id is None else device_id}")
        except RuntimeError as error:
            raise RuntimeError(f"{self._label()}.to_gpu: {error}") from None

    def to_cpu(self) -> "Layer":
        """Move every Parameter and buffer to host memory, in place; returns self."""
        return self.to("cpu")

    def to(self, device: "str | Device") -> "Layer":
        """Move every Parameter, gradient and buffer to ``device`` ("cpu", "gpu", "gpu:N"); returns self.

        Raises RuntimeError naming the reason when the device cannot be used.
        """
        target = as_device(device)
        return self._move(target.put)

    @property
    def device(self) -> Device:
        """Where this layer's Parameters live (the CPU for a layer that has none yet)."""
        for p in self.params():
            return device_of(p.data)
        for _, buffer in self.named_buffers():
            return device_of(buffer)
        return CPU

    def _move(self, convert) -> "Layer":
        for _, layer in self.named_layers():
            for key, kind in layer._members.items():
                value = getattr(layer, key)
                if kind == _PARAM and value is not None:
                    value.data = convert(value.data)
                    if value.grad is not None:
                        value.grad.data = convert(value.grad.data)
                elif kind == _BUFFER:
                    object.__setattr__(layer, key, convert(value))
            layer._on_move(convert)
        self.reset_state()
        return self

    def _on_move(self, convert) -> None:
        """Hook for layers that cache other arrays (none by default)."""

    # -- saving and loading ------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """name -> array for every Parameter and persistent buffer (the arrays themselves, not copies)."""
        state = {name: p.data for name, p in self.named_params()}
        state.update(self.named_buffers(persistent_only=True))
        return state

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True, *,
                        allow_non_finite: bool = False) -> None:
        """Copy arrays from ``state`` into the Parameters and buffers of the same names.

        All or nothing: the whole of ``state`` is checked (names, shapes,
        dtypes, values) and converted before anything is changed, so a
        mismatch in the last array leaves the layer exactly as it was. Values
        are converted to each Parameter's dtype and device. Lazy layers that
        have not yet run create their Parameters from the shapes found.

        Refused (ValueError, naming every problem): missing, unexpected and
        mis-shaped names (with ``strict=False`` missing and unexpected names
        are allowed, but a wrong shape is always an error); values that are
        not real numbers (complex, strings, objects); floats that do not fit
        the parameter's dtype (1e300 into float32 would become inf); and NaN
        or infinite values, unless ``allow_non_finite`` (a diverged run's
        weights are not something to resume from by accident).
        """
        undo = self._materialize_all(state)
        try:
            plan = self._plan_load(state, strict, allow_non_finite)
        except BaseException:
            undo()
            raise
        for layer, key, kind, value in plan:
            if kind == _PARAM:
                getattr(layer, key).data = value
            else:
                object.__setattr__(layer, key, value)

    def check_state_dict(self, state: Mapping[str, Any], strict: bool = True, *,
                         allow_non_finite: bool = False) -> None:
        """Raise the error ``load_state_dict(state)`` would raise, changing nothing either way."""
        undo = self._materialize_all(state)
        try:
            self._plan_load(state, strict, allow_non_finite)
        finally:
            undo()

    def _materialize_all(self, state: Mapping[str, Any]):
        """Let lazy layers build their Parameters from ``state``; returns a function that undoes it."""
        saved = []
        for prefix, layer in self.named_layers():
            dotted = f"{prefix}." if prefix else ""
            local = {k[len(dotted):]: v for k, v in state.items()
                     if k.startswith(dotted) and "." not in k[len(dotted):]}
            if local and type(layer)._materialize is not Layer._materialize:
                saved.append((layer, dict(layer.__dict__), dict(layer._members)))
                layer._materialize(local)

        def undo() -> None:
            for layer, attributes, members in saved:
                layer.__dict__.clear()
                layer.__dict__.update(attributes)
                object.__setattr__(layer, "_members", members)
        return undo

    def _plan_load(self, state: Mapping[str, Any], strict: bool, allow_non_finite: bool) -> list:
        """[(layer, key, kind, converted value)] for every entry of ``state`` to load, or a ValueError."""
        targets: dict[str, tuple[Layer, str, str]] = {}
        for prefix, layer in self.named_layers():
            dotted = f"{prefix}." if prefix else ""
            for key, kind in layer._members.items():
                if kind == _PARAM and getattr(layer, key) is not None:
                    targets[dotted + key] = (layer, key, kind)
                elif kind == _BUFFER and key not in layer._non_persistent:
                    targets[dotted + key] = (layer, key, kind)

        expected = {k: tuple(getattr(layer, key).shape) for k, (layer, key, _) in targets.items()}
        problems = [describe_state_mismatch(expected, state, strict)]
        plan = []
        for k, (layer, key, kind) in targets.items():
            if k not in state or tuple(getattr(state[k], "shape", ())) != expected[k]:
                continue
            current = getattr(layer, key)
            target = current.data if kind == _PARAM else current
            value, problem = _convert_for_load(state[k], target, allow_non_finite)
            if problem:
                problems.append(f"{k} {problem}")
            else:
                plan.append((layer, key, kind, value))
        problems = [p for p in problems if p]
        if problems:
            raise ValueError(f"load_state_dict of {self._label()}: {'; '.join(problems)}")
        return plan

    def _materialize(self, state: Mapping[str, Any]) -> None:
        """Hook for lazy layers: create Parameters from the shapes in ``state`` (local names)."""

    # -- pickling ------------------------------------------------------------------------------
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for key in self._transient:
            if key in state:
                state[key] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    # -- description -------------------------------------------------------------------------
    def _label(self) -> str:
        """"Linear 'fc1'" or "Linear": how error messages name this layer."""
        name = self.__dict__.get("name")
        return f"{type(self).__name__} {name!r}" if name else type(self).__name__

    def extra_repr(self) -> str:
        """The constructor's key arguments, shown inside ``repr``'s parentheses."""
        return ""

    def _param_summary(self) -> str:
        shapes = [f"{key} {tuple(getattr(self, key).shape)}" for key, kind in self._members.items()
                  if kind == _PARAM and getattr(self, key) is not None]
        if not shapes:
            return ""
        count = sum(int(getattr(self, key).size) for key, kind in self._members.items()
                    if kind == _PARAM and getattr(self, key) is not None)
        return f"  [{', '.join(shapes)}]  {count:,} params"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()}){self._param_summary()}"


def _convert_for_load(value: Any, target: Any, allow_non_finite: bool) -> tuple[Any, str]:
    """(``value`` as a new array of ``target``'s dtype and device, "") or (None, what is wrong).

    The checks run on a host copy (a weights file is read on the host anyway).
    """
    try:
        host = np.asarray(to_cpu(value))  # also a list or a number given by hand
    except (TypeError, ValueError):
        return None, f"is a {type(value).__name__}, not an array"
    kind, dtype = host.dtype.kind, target.dtype
    if kind not in "biuf":
        hint = " (its imaginary part would be lost)" if kind == "c" else ""
        return None, f"has dtype {host.dtype}{hint}; expected real numbers for {dtype}"
    if kind == "f" and dtype.kind in "iub":
        return None, f"has dtype {host.dtype}; the layer keeps it as {dtype} (integers)"
    with np.errstate(over="ignore", invalid="ignore"):
        converted = host.astype(dtype)  # a copy: the loaded model owns its arrays
    if kind == "f" and dtype.kind == "f":
        finite = np.isfinite(host)
        if np.any(np.isinf(converted) & finite):
            largest = float(np.abs(np.where(finite, host, 0)).max())
            return None, (f"holds {largest:.3g}, beyond the range of {dtype} "
                          f"(largest {float(np.finfo(dtype).max):.3g})")
        if not allow_non_finite and not finite.all():
            return None, (f"holds {int((~finite).sum())} NaN or infinite value(s) "
                          "(pass allow_non_finite=True to load them anyway)")
    with device_of(target).scope():  # onto the very GPU that holds the layer
        return get_array_module(target).asarray(converted), ""


def _check_variable(layer: Layer, x: Any, what: str = "input") -> Variable:
    """``x`` as a Variable, or a TypeError naming the layer."""
    if isinstance(x, Variable):
        return x
    if is_array(x):
        return as_variable(x)
    raise TypeError(f"{layer._label()}: {what} must be a Variable or an array, got {type(x).__name__}")


def describe_state_mismatch(expected: Mapping[str, tuple], state: Mapping[str, Any], strict: bool = True) -> str:
    """What keeps ``state`` from loading into a layer whose state has the ``expected`` shapes.

    Lists names with the wrong shape, then (when ``strict``) names missing
    from ``state`` and names it has that the layer does not, each with its
    shape; returns "" when everything fits. Shared by ``Layer.load_state_dict``
    and ``Model.load_weights`` so that both report a mismatch the same way.

    >>> import numpy as np
    >>> describe_state_mismatch({"W": (2, 3), "b": (3,)}, {"W": np.zeros((3, 2))})
    'wrong shape: W (expected (2, 3), got (3, 2)); missing: b (3,)'
    """
    def shape(value: Any) -> tuple:
        return tuple(getattr(value, "shape", ()))

    misshaped = [f"{k} (expected {expected[k]}, got {shape(v)})"
                 for k, v in state.items() if k in expected and shape(v) != tuple(expected[k])]
    missing = [f"{k} {tuple(s)}" for k, s in expected.items() if k not in state]
    unexpected = [f"{k} {shape(v)}" for k, v in state.items() if k not in expected]
    problems = []
    if misshaped:
        problems.append("wrong shape: " + ", ".join(misshaped))
    if strict and missing:
        problems.append("missing: " + ", ".join(missing))
    if strict and unexpected:
        problems.append("unexpected: " + ", ".join(unexpected))
    return "; ".join(problems)
