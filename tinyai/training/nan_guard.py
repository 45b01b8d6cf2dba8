"""Stopping NaN and infinity before they reach the parameters.

A loss can be finite while its gradients are not: one ``inf`` in an input
saturates a sigmoid (the loss stays finite) but makes ``x.T @ gy`` infinite
or NaN, and an optimizer that applies that gradient turns every parameter
into NaN. From then on every loss is NaN, and the step that did the damage
is long gone when anyone notices.

So the Trainer checks, after ``backward`` and before the optimizer's update
(in data-parallel training: after the workers' gradients are combined in
the master, which is where the update happens):

1. the loss (a Python float, free to check);
2. the gradients, cheaply: one sum per parameter, added up on the device,
   so one answer per step travels to the host. NaN and infinity survive a
   sum, so a finite total means finite gradients (a total that overflows
   although every element is finite is rechecked element by element);
3. only when something is wrong: which parameters' gradients hold NaN or
   infinity, and whether the batch's input does, for the message.

What happens then is the Trainer's ``on_nan`` setting:

* ``"raise"``: stop with ``NonFiniteLossError`` / ``NonFiniteGradientError``
  naming the epoch, the batch and what was non-finite;
* ``"warn"``: warn (``RuntimeWarning``) and skip this batch's update;
* ``"skip"``: skip this batch's update quietly (logged at INFO level).

Either way a skipped update leaves the model as it was: finite. (Gradient
compression with error feedback keeps, on each worker, what it did not send;
it does not keep a non-finite gradient there, so the steps after a skipped
one are clean. A strategy that updates by itself, without leaving the
gradient on the master, must check its own updates.)
"""
from __future__ import annotations

import logging
import math
import warnings
from typing import Any, Iterable

import numpy as np

from tinyai.autograd import Variable
from tinyai.backend import get_array_module
from tinyai.backend.finite import count_non_finite, describe_non_finite

logger = logging.getLogger(__name__)

#: The values of the Trainer's ``on_nan`` setting.
ON_NAN_MODES = ("raise", "warn", "skip")


class NonFiniteLossError(FloatingPointError, ValueError):
    """Training produced a NaN or an infinity; the message names the epoch and batch.

    Raised as it is for a non-finite loss; ``NonFiniteGradientError`` (a
    subclass, so one ``except NonFiniteLossError`` catches both) for a finite
    loss whose gradients are not.
    """


class NonFiniteGradientError(NonFiniteLossError):
    """The loss was finite but some gradients held NaN or infinity."""


def check_on_nan(on_nan: Any, where: str) -> str:
    """``on_nan`` if it is one of ``ON_NAN_MODES``, else a ValueError naming ``where``."""
    if on_nan not in ON_NAN_MODES:
        raise ValueError(f"{where}: on_nan must be one of {', '.join(map(repr, ON_NAN_MODES))}, got {on_nan!r}")
    return on_nan


def _is_float_array(array: Any) -> bool:
    return hasattr(array, "dtype") and array.dtype.kind in "fc"


def non_finite_gradients(named_params: Iterable[tuple[str, Any]]) -> list[str]:
    """'fc1.W (3 NaN of 20 values)' for each parameter whose gradient is not all finite.

    Costs one sum per parameter and, on a GPU, one device-to-host answer per
    step when all is well (the common case): the sums are added up on the
    device and only their total is looked at. NaN and inf survive a sum; a
    total that overflows although every element is finite is rechecked
    parameter by parameter.
    """
    grads = []
    for name, p in named_params:
        grad = getattr(p, "grad", None)
        if grad is not None and _is_float_array(grad.data):
            grads.append((name, grad.data))
    if not grads:
        return []
    with np.errstate(over="ignore", invalid="ignore"):
        total = None
        for _, g in grads:
            part = g.sum(dtype=g.dtype)
            total = part if total is None else total + part
        if bool(get_array_module(grads[0][1]).isfinite(total)):
            return []
    found = []
    for name, g in grads:
        if not bool(get_array_module(g).isfinite(g).all()):
            found.append(f"{name} ({count_non_finite(g)})")
    return found


def describe_non_finite_input(x: Any, label: str = "input x") -> str | None:
    """'the input x holds 1 inf of 12 values (first at index (3, 0))', or None if it is finite.

    The same words as a data set that refuses non-finite data when it is
    built (tinyai.data), so a NaN found either way reads the same.
    """
    arrays = x if isinstance(x, (tuple, list)) else (x,)
    notes = []
    for i, array in enumerate(arrays):
        if isinstance(array, Variable):
            array = array.data
        if not _is_float_array(array):
            continue
        found = describe_non_finite(array)
        if found is None:
            continue
        name = label if len(arrays) == 1 else f"{label}[{i}]"
        notes.append(f"the {name} holds {found}")
    return "; ".join(notes) or None


def check_step(where: str, loss: float, named_params: Iterable[tuple[str, Any]], batch_x: Any,
               on_nan: str, batch_y: Any = None) -> bool:
    """Whether the update of this step may go ahead; raises or warns per ``on_nan`` if not.

    Args:
        where: "Trainer: epoch 2/3, batch 4/6", the start of every message.
        loss: the batch's loss value.
        named_params: the (name, parameter) pairs about to be updated, with
            their gradients in ``p.grad`` (not consulted if the loss is
            already non-finite: no gradient was computed then).
        batch_x: the batch's input, examined only to explain a failure.
        on_nan: "raise", "warn" or "skip".
        batch_y: the batch's targets, examined with ``batch_x`` (a NaN
            regression target makes a NaN loss with nothing else wrong).
    """
    if not math.isfinite(loss):
        message = f"{where}: the loss is {loss}"
        error = NonFiniteLossError
    else:
        bad = non_finite_gradients(named_params)
        if not bad:
            return True
        message = (f"{where}: the loss is finite ({loss:.6g}) but the gradient of "
                   f"{len(bad)} parameter(s) is not: {', '.join(bad)}")
        error = NonFiniteGradientError
    culprits = [describe_non_finite_input(batch_x)]
    if batch_y is not None:
        culprits.append(describe_non_finite_input(batch_y, "target y"))
    culprit = "; ".join(c for c in culprits if c is not None) or None
    if culprit is not None:
        message += f"; {culprit}, so the fault is in the data, not in the learning rate"
    else:
        message += "; training diverged (try a smaller learning rate, or gradient clipping: max_grad_norm)"
    if on_nan == "raise":
        raise error(message)
    if on_nan == "warn":
        warnings.warn(message + "; skipping this batch's update", RuntimeWarning, stacklevel=5)
    else:
        logger.info("%s; skipping this batch's update", message)
    return False
