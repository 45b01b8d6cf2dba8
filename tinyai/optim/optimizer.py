"""The Optimizer: turns each parameter's gradient into a change of its data.

TinyAI's ``Optimizer`` is built on a model and applied with ``update()``
after every ``backward``. Each subclass says how one parameter moves
(``_update_one``); the base class does the bookkeeping every optimizer needs:

* finding the parameters, in a deterministic order (the model's
  ``named_params()`` order, never a set: order must not change between runs,
  or a resumed run and an all-reduce would pair the wrong arrays);
* per-parameter state (momentum buffers, moment estimates) keyed by the
  parameter's dotted name, never by ``id()``, so it can be saved and loaded
  into a fresh process;
* weight decay, gradient clipping by global norm, skipping parameters that
  got no gradient this step;
* ``state_dict()`` / ``load_state_dict()``: a flat dict of arrays and numbers
  that fits in an ``.npz`` file next to the model weights.

Updates run under ``no_grad()`` on the raw arrays and change ``p.data`` in
place: anything else holding the same array (a view, a replica that shares
it) sees the new values, and no graph is built.
"""
from __future__ import annotations

import logging
import math
from typing import Any, Iterator

import numpy as np

from tinyai.autograd import Variable, no_grad
from tinyai.backend import device_of, get_array_module, is_array, to_cpu
from tinyai.backend.pytorch_names import attribute_error
from tinyai.backend.settings import is_number
from tinyai.nn import Layer

logger = logging.getLogger(__name__)

#: Prefix of the per-parameter entries in ``state_dict()``: ``state.<param name>.<slot>``.
STATE_PREFIX = "state."
#: Prefix of the hyperparameter entries in ``state_dict()``: ``hyper.<name>``.
HYPER_PREFIX = "hyper."


def named_parameters_of(source: Any, where: str) -> list[tuple[str, Variable]]:
    """The (name, parameter) pairs of ``source``, in its own order.

    ``source`` may be anything with ``named_params()`` (a Layer, Block or
    Model), an iterable of ``(name, parameter)`` pairs, or an iterable of
    parameters (then named ``"0"``, ``"1"``, ... by position). Duplicate names
    and non-Variables are refused, naming ``where`` (the caller).
    """
    if hasattr(source, "named_params"):
        pairs = list(source.named_params())
    elif isinstance(source, Variable):
        pairs = [("0", source)]
    else:
        try:
            items = list(source)
        except TypeError:
            raise TypeError(f"{where}: expected a model (anything with named_params()), an iterable of "
                            f"(name, Parameter) pairs or of Parameters, got {type(source).__name__}") from None
        pairs = []
        for i, item in enumerate(items):
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
                pairs.append(item)
            else:
                pairs.append((str(i), item))
    seen: set[str] = set()
    for name, p in pairs:
        if not isinstance(p, Variable):
            raise TypeError(f"{where}: parameter {name!r} is a {type(p).__name__}, not a Parameter/Variable")
        if name in seen:
            raise ValueError(f"{where}: two parameters share the name {name!r}; names must be unique")
        seen.add(name)
    return pairs


def check_eps(eps: Any, where: str) -> None:
    """Refuse an ``eps`` that is not a finite number > 0 (an infinite one would make every step 0)."""
    if not is_number(eps) or not eps > 0:
        raise ValueError(f"{where}: eps must be > 0, got {eps!r} (a finite number)")


def clip_grad_norm(params: Any, max_norm: float, eps: float = 1e-6) -> float:
    """Scale all gradients together so that their global L2 norm is at most ``max_norm``.

    The global norm is ``sqrt(sum over parameters of sum(grad**2))``. When it
    exceeds ``max_norm`` every gradient is multiplied by
    ``max_norm / (norm + eps)``; the direction of the whole update is kept,
    only its length shrinks (Pascanu et al., 2013), in place where the
    gradient array is the parameter's own. A plain ``backward()`` hands one
    gradient passed on unchanged to several parameters (``a + b``) as one
    read-only array; each of them gets a new, scaled array, so none is
    scaled twice.
    Parameters whose grad is None are ignored.

    Args:
        params: a model, an iterable of Parameters or of (name, Parameter).
        max_norm: the largest allowed global norm (> 0).
        eps: keeps the scale finite when the norm is tiny.

    Returns:
        The global norm *before* clipping, as a Python float (handy for
        logging). A non-finite norm (inf/nan gradients) is returned as it is
        and nothing is scaled: the caller should see the problem, not get
        gradients silently zeroed.
    """
    if not is_number(max_norm) or not max_norm > 0:
        raise ValueError(f"clip_grad_norm: max_norm must be > 0, got {max_norm!r} (a finite number)")
    with_grad = [p for _, p in named_parameters_of(params, "clip_grad_norm") if p.grad is not None]
    total_sq = 0.0
    for p in with_grad:
        g = p.grad.data
        total_sq += float((g * g).sum())
    norm = math.sqrt(total_sq)
    if not math.isfinite(norm):
        logger.warning("clip_grad_norm: the global gradient norm is %s; gradients left unchanged", norm)
        return norm
    if norm > max_norm:
        scale = max_norm / (norm + eps)
        for p in with_grad:
            g = p.grad.data
            if getattr(g.flags, "writeable", True):
                g *= scale  # in place: this parameter's own array
            else:  # read-only: backward handed one array to several parameters (a + b); each gets its own
                p.grad = Variable(g * scale, requires_grad=False)
    return norm


class Optimizer:
    """Base class: moves every parameter of a model against its gradient.

    Args:
        params: the model (anything with ``named_params()``), or an iterable
            of ``(name, Parameter)`` pairs, or of Parameters.
        lr: the learning rate; a schedule may change ``optimizer.lr`` between
            steps.
        weight_decay: L2 penalty coefficient ``wd``: the gradient becomes
            ``g + wd * p`` before the update (AdamW decouples it instead).
        max_grad_norm: if set, gradients are clipped to this global L2 norm
            (see ``clip_grad_norm``) before every update.

    Subclasses set ``slots`` (the names of their per-parameter state arrays),
    ``hyperparameter_names`` and implement ``_update_one``.

    When ``params`` is a model, its ``named_params()`` is asked again at every
    update, so parameters that a lazy layer creates on its first call are
    picked up (their state is created then).
    """

    #: Names of the per-parameter state arrays (e.g. ("m", "v") for Adam).
    slots: tuple[str, ...] = ()
    #: Names of the float attributes saved in state_dict() besides lr/weight_decay/max_grad_norm.
    hyperparameter_names: tuple[str, ...] = ()

    def __init__(self, params: Any, lr: float, weight_decay: float = 0.0,
                 max_grad_norm: float | None = None) -> None:
        name = type(self).__name__
        if not is_number(lr) or not lr >= 0:
            raise ValueError(f"{name}: lr must be >= 0, got {lr!r} (a finite number)")
        if not is_number(weight_decay) or not weight_decay >= 0:
            raise ValueError(f"{name}: weight_decay must be >= 0, got {weight_decay!r} (a finite number)")
        if max_grad_norm is not None and (not is_number(max_grad_norm) or not max_grad_norm > 0):
            raise ValueError(f"{name}: max_grad_norm must be > 0 or None, got {max_grad_norm!r} (a finite number)")
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.max_grad_norm = None if max_grad_norm is None else float(max_grad_norm)
        # A model is re-asked every step (lazy parameters); a plain list is fixed now.
        if hasattr(params, "named_params"):
            self._source: Any = params
            self._fixed: list[tuple[str, Variable]] | None = None
        else:
            self._source = None
            self._fixed = named_parameters_of(params, name)
        pairs = self.named_params()
        if not pairs and not (self._source is not None and _has_lazy_params(self._source)):
            raise ValueError(f"{name}: got an empty parameter list; nothing to optimise "
                             "(did the model register its Parameters?)")
        #: Number of update() calls so far.
        self.iterations = 0
        #: Per-parameter state: name -> {slot -> array}; created eagerly where data exists.
        self.state: dict[str, dict[str, Any]] = {}
        #: Per-parameter count of updates actually applied (a skipped grad does not count).
        self.steps: dict[str, int] = {}
        for pname, p in pairs:
            if p.data is not None:
                self._state_for(pname, p)

    # -- parameters and state -------------------------------------------------------
    def named_params(self) -> list[tuple[str, Variable]]:
        """The (name, parameter) pairs this optimizer updates, in a fixed order."""
        if self._fixed is not None:
            return self._fixed
        return named_parameters_of(self._source, type(self).__name__)

    def params(self) -> Iterator[Variable]:
        """The parameters this optimizer updates, in order."""
        for _, p in self.named_params():
            yield p

    def _init_slot(self, slot: str, data: Any) -> Any:
        """The initial value of one state array for a parameter (zeros unless overridden)."""
        return get_array_module(data).zeros_like(data)

    def _state_for(self, name: str, p: Variable) -> dict[str, Any]:
        """The state of parameter ``name``, created on first use and kept on p's device."""
        state = self.state.get(name)
        if state is None:
            state = {slot: self._init_slot(slot, p.data) for slot in self.slots}
            self.state[name] = state
            self.steps.setdefault(name, 0)
            return state
        xp = get_array_module(p.data)
        for slot, value in state.items():
            if value.shape != p.data.shape:
                raise ValueError(f"{type(self).__name__}: state {slot!r} of parameter {name!r} has shape "
                                 f"{tuple(value.shape)} but the parameter has shape {tuple(p.data.shape)}")
            if get_array_module(value) is not xp or (xp is not np and device_of(value) != device_of(p.data)):
                # The model moved to another device (to_gpu/to_cpu, or to another GPU): follow it.
                state[slot] = device_of(p.data).put(value)
        return state

    # -- the step ------------------------------------------------------------------------
    def update(self) -> None:
        """Apply one step to every parameter that has a gradient (TinyAI's ``update()``).

        Parameters whose ``grad`` is None (unused this step, or frozen) are
        skipped and their state is left untouched.
        """
        all_pairs = self.named_params()
        if not all_pairs:
            raise ValueError(f"{type(self).__name__}.update: the model still has no parameters "
                             "(a lazy layer creates them on its first forward call; run one before updating)")
        pairs = [(n, p) for n, p in all_pairs if p.grad is not None and p.data is not None]
        if self.max_grad_norm is not None and pairs:
            clip_grad_norm(pairs, self.max_grad_norm)
        with no_grad():
            for name, p in pairs:
                grad = p.grad.data
                if grad.shape != p.data.shape:
                    raise ValueError(f"{type(self).__name__}: gradient of parameter {name!r} has shape "
                                     f"{tuple(grad.shape)} but the parameter has shape {tuple(p.data.shape)}")
                grad = self._apply_weight_decay(p.data, grad)
                state = self._state_for(name, p)
                self.steps[name] = self.steps.get(name, 0) + 1
                self._update_one(p.data, grad, state, self.steps[name])
        self.iterations += 1

    # TinyAI spells it update(); PyTorch users reach for step().
    step = update

    def clear_grads(self) -> None:
        """Forget every parameter's gradient (call before the next backward)."""
        for p in self.params():
            p.grad = None

    # PyTorch's name for the same method.
    zero_grad = clear_grads

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails: says tinyai's name for a PyTorch habit.
        if name.startswith("__"):
            raise AttributeError(name)
        raise attribute_error(self, "Optimizer", name)

    def _apply_weight_decay(self, data: Any, grad: Any) -> Any:
        """L2 regularisation folded into the gradient: g + wd * p (a new array)."""
        if self.weight_decay:
            return grad + self.weight_decay * data
        return grad

    def _update_one(self, data: Any, grad: Any, state: dict[str, Any], step: int) -> None:
        """Change ``data`` in place from ``grad``; ``step`` counts this parameter's updates (1, 2, ...)."""
        raise TypeError(f"{type(self).__name__} is an Optimizer without an update rule; "
                        "subclasses implement _update_one")

    # -- saving and loading ------------------------------------------------------------
    def _hyperparameters(self) -> dict[str, float]:
        hyper = {"lr": self.lr, "weight_decay": self.weight_decay,
                 # inf = "no clipping": clipping at an infinite norm changes nothing, and
                 # an .npz cannot hold None.
                 "max_grad_norm": math.inf if self.max_grad_norm is None else self.max_grad_norm}
        for hname in self.hyperparameter_names:
            value = getattr(self, hname)
            hyper[hname] = float(value) if not isinstance(value, bool) else value
        return hyper

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where this optimizer is, as a flat dict.

        Keys: ``iterations``; ``hyper.<name>`` for the hyperparameters (lr,
        weight_decay, max_grad_norm with inf meaning none, and the optimizer's
        own); ``state.<param name>.<slot>`` (host NumPy arrays copied from the
        state) and ``state.<param name>.step`` (updates applied to it). Values
        are arrays and numbers only, so ``np.savez(path, **opt.state_dict())``
        works and ``np.load(path, allow_pickle=False)`` reads it back.
        """
        out: dict[str, Any] = {"iterations": self.iterations}
        for hname, value in self._hyperparameters().items():
            out[HYPER_PREFIX + hname] = value
        for pname, _ in self.named_params():
            if pname not in self.state:
                continue  # a lazy parameter that has no data yet
            for slot, value in self.state[pname].items():
                out[f"{STATE_PREFIX}{pname}.{slot}"] = to_cpu(value).copy()
            out[f"{STATE_PREFIX}{pname}.step"] = self.steps.get(pname, 0)
        return out

    def check_state_dict(self, state: dict[str, Any]) -> None:
        """Raise the ValueError ``load_state_dict(state)`` would raise, changing nothing."""
        where = f"{type(self).__name__}.load_state_dict"
        state = {k: state[k] for k in state.keys()}  # NpzFile -> dict
        pairs = self.named_params()
        expected = {"iterations"} | {HYPER_PREFIX + h for h in self._hyperparameters()}
        by_name = dict(pairs)
        for pname, p in pairs:
            if p.data is None and not any(k.startswith(f"{STATE_PREFIX}{pname}.") for k in state):
                continue  # lazy and never stepped: nothing to restore either way
            expected |= {f"{STATE_PREFIX}{pname}.{slot}" for slot in (*self.slots, "step")}
        missing = sorted(expected - state.keys())
        unexpected = sorted(state.keys() - expected)
        problems = []
        if missing:
            problems.append(f"missing keys: {', '.join(missing)}")
        if unexpected:
            problems.append(f"unexpected keys: {', '.join(unexpected)}")
        for key in sorted(expected & state.keys()):
            value = state[key]
            if not key.startswith(STATE_PREFIX) or key.endswith(".step"):
                if not _is_number(value):
                    problems.append(f"{key} is {value!r}, not a number")
                continue
            pname = key[len(STATE_PREFIX):].rsplit(".", 1)[0]
            p = by_name[pname]
            shape = tuple(getattr(value, "shape", ()))
            if p.data is not None and shape != tuple(p.data.shape):
                problems.append(f"{key} has shape {shape}, parameter {pname!r} has shape {tuple(p.data.shape)}")
            kind = getattr(getattr(value, "dtype", None), "kind", None)
            if kind is not None and kind not in "biuf":
                problems.append(f"{key} has dtype {value.dtype}, not real numbers")
            elif kind == "f" and p.data is not None and p.data.dtype.kind == "f":
                host = np.asarray(to_cpu(value))
                with np.errstate(over="ignore"):
                    overflow = np.isinf(host.astype(p.data.dtype)) & np.isfinite(host)
                if overflow.any():
                    problems.append(f"{key} holds {float(np.abs(host[overflow]).max()):.3g}, beyond the "
                                    f"range of {p.data.dtype}")
        if problems:
            raise ValueError(f"{where}: the state does not fit this optimizer: " + "; ".join(problems))

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict()`` returned (also from an ``np.load`` of an .npz).

        Raises ValueError listing missing and unexpected keys, and state
        arrays whose shape differs from the parameter they belong to. Nothing
        is changed unless the whole dict fits (``check_state_dict`` runs first).
        """
        self.check_state_dict(state)
        state = {k: state[k] for k in state.keys()}
        pairs = self.named_params()
        self.iterations = int(_number(state["iterations"]))
        for hname in self._hyperparameters():
            value = _number(state[HYPER_PREFIX + hname])
            if hname == "max_grad_norm":
                self.max_grad_norm = None if math.isinf(value) else float(value)
            elif isinstance(getattr(self, hname), bool):
                setattr(self, hname, bool(value))
            else:
                setattr(self, hname, float(value))
        self.state = {}
        self.steps = {}
        for pname, p in pairs:
            step_key = f"{STATE_PREFIX}{pname}.step"
            if step_key not in state:
                continue
            self.steps[pname] = int(_number(state[step_key]))
            slots = {}
            for slot in self.slots:
                value = state[f"{STATE_PREFIX}{pname}.{slot}"]
                if p.data is not None:
                    xp = get_array_module(p.data)
                    slots[slot] = xp.asarray(to_cpu(value)).astype(p.data.dtype, copy=True)
                else:
                    slots[slot] = to_cpu(value).copy()
            self.state[pname] = slots

    def __repr__(self) -> str:
        hyper = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in self._hyperparameters().items())
        return f"{type(self).__name__}({hyper}, params={len(self.named_params())})"


def _number(value: Any) -> float:
    """A Python number from a number or a one-element array (as np.load gives back)."""
    if is_array(value):
        if value.size != 1:
            raise ValueError(f"Optimizer.load_state_dict: expected a number, got an array of shape {value.shape}")
        return to_cpu(value).item()
    return value


def _is_number(value: Any) -> bool:
    """A real number, or a one-element array of one (as np.load gives back)."""
    if is_array(value):
        return value.size == 1 and value.dtype.kind in "biuf"
    return isinstance(value, (int, float)) or (hasattr(value, "dtype") and value.dtype.kind in "biuf")


def _has_lazy_params(model: Any) -> bool:
    """Whether ``model`` holds a layer that may create its Parameters later (a lazy layer).

    Lazy layers are the ones that override the ``_materialize`` hook of
    tinyai.nn.Layer (they build their Parameters from the first input or from
    loaded weights). An optimizer on such a model may start with no
    parameters; an optimizer on any other empty model is a mistake.
    """
    layers = model.named_layers() if hasattr(model, "named_layers") else [("", model)]
    return any(type(layer)._materialize is not Layer._materialize
               for _, layer in layers if isinstance(layer, Layer))
