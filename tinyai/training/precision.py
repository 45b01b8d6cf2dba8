"""Mixed precision: float16 forward and backward, float32 master weights, dynamic loss scaling.

float16 halves the memory of every activation and runs matrix products on a
GPU's tensor cores several times faster than float32. Training in float16
alone fails in two ways, and mixed precision (Micikevicius et al., 2018)
mends both:

* **Updates vanish.** A step ``lr * g`` is often below float16's resolution
  near the weight (1 + 1e-4 rounds back to 1), so the weights stop moving.
  The weights that the optimizer updates, and its state (momentum, Adam's
  moments), therefore stay float32: the *master weights*. Each step the
  model computes with a float16 copy of them.
* **Gradients underflow.** Small gradients (below 6e-8) round to zero in
  float16. The loss is multiplied by a *scale* S (2**15 at first) before
  ``backward``, which shifts every gradient S times up into float16's range;
  the float32 gradients are divided by S again before the update.

A scale that is too large makes some gradient overflow to inf. Then the step
is skipped (the weights and the optimizer state do not change) and S is
halved; after ``growth_interval`` good steps in a row S is doubled again, to
use as much of the range as possible. Such skips are the loss scaler doing
its job, not a diverging run.

What stays float32 even inside the float16 computation: the loss (the
prediction is cast to float32 before it), softmax and log-softmax,
sums and means, and batch normalisation's statistics and running averages
(see ``tinyai.backend.widen``).

Used by ``Trainer(..., precision="mixed")``, or by hand::

    scaler = MixedPrecision(model, optimizer)
    for x, t in batches:
        with scaler.autocast():                  # parameters are float16 copies in here
            prediction = model(scaler.cast_input(x))
            loss = loss_fn(scaler.to_float32(prediction), t)
            model.clear_grads()
            scaler.backward(loss)                # backward of loss * scale
        scaler.step()                            # unscale, check, update or skip
"""
from __future__ import annotations

import contextlib
import logging
import math
from typing import Any, Iterator

import numpy as np

from tinyai.autograd import Variable, as_variable
from tinyai.backend import get_array_module
from tinyai.backend.settings import is_int
from tinyai.functions.cast import cast

logger = logging.getLogger(__name__)

#: The precisions ``Trainer(precision=...)`` accepts.
PRECISIONS = ("float32", "mixed")


class MixedPrecision:
    """Runs a model's steps in float16 while its weights and optimizer stay float32.

    Args:
        model: the model (anything with ``named_params()``); its Parameters
            must be float32 and stay so between steps (they are the master
            weights).
        optimizer: the optimizer that updates ``model``'s Parameters; None
            when only ``autocast``/``backward`` are used and the update is
            done elsewhere.
        init_scale: the first loss scale S.
        growth_factor: S is multiplied by this after ``growth_interval``
            finite steps in a row.
        backoff_factor: S is multiplied by this when a gradient is inf/NaN
            (and that step is skipped).
        growth_interval: how many finite steps in a row before S grows.
        half_dtype: the low-precision dtype (float16).

    Attributes:
        scale: the current loss scale S.
        skipped_steps: how many steps were skipped for inf/NaN gradients.
        good_steps: finite steps since the scale last changed.
    """

    def __init__(self, model: Any, optimizer: Any = None, *, init_scale: float = 2.0 ** 15,
                 growth_factor: float = 2.0, backoff_factor: float = 0.5, growth_interval: int = 2000,
                 half_dtype: Any = np.float16) -> None:
        if not (math.isfinite(init_scale) and init_scale > 0):
            raise ValueError(f"MixedPrecision: init_scale must be a finite number > 0, got {init_scale}")
        if not growth_factor > 1:
            raise ValueError(f"MixedPrecision: growth_factor must be > 1, got {growth_factor}")
        if not 0 < backoff_factor < 1:
            raise ValueError(f"MixedPrecision: backoff_factor must lie in (0, 1), got {backoff_factor}")
        if not is_int(growth_interval) or growth_interval < 1:
            raise ValueError(f"MixedPrecision: growth_interval must be an int >= 1, got {growth_interval!r}")
        self.model = model
        self.optimizer = optimizer
        self.scale = float(init_scale)
        self.growth_factor = float(growth_factor)
        self.backoff_factor = float(backoff_factor)
        self.growth_interval = growth_interval
        self.half_dtype = np.dtype(half_dtype)
        self.good_steps = 0
        self.skipped_steps = 0
        self._masters: dict[str, Any] | None = None

    # -- the float16 region ----------------------------------------------------------
    @contextlib.contextmanager
    def autocast(self) -> Iterator["MixedPrecision"]:
        """Inside the block the model's floating Parameters hold float16 copies of the masters.

        Run the forward pass and ``backward`` inside; on leaving, every
        Parameter gets its float32 master back and its gradient becomes
        float32 divided by the scale (still inf/NaN where it overflowed;
        ``step`` checks that).
        """
        if self._masters is not None:
            raise RuntimeError("MixedPrecision.autocast: already inside autocast (blocks cannot nest)")
        masters: dict[str, Any] = {}
        for name, p in self.model.named_params():
            if p.data is not None and p.data.dtype.kind == "f":
                if p.data.dtype != np.float32:
                    raise TypeError(f"MixedPrecision: parameter {name!r} is {p.data.dtype}; the master "
                                    "weights must be float32")
                masters[name] = p.data
                p.data = p.data.astype(self.half_dtype)
        self._masters = masters
        try:
            yield self
        finally:
            self._masters = None
            inverse = 1.0 / self.scale
            for name, p in self.model.named_params():
                master = masters.get(name)
                if master is not None:
                    p.data = master
                if p.grad is not None and p.data is not None and p.data.dtype.kind == "f":
                    grad = p.grad.data.astype(np.float32)
                    grad *= inverse
                    p.grad = Variable(grad, requires_grad=False)

    def cast_input(self, x: Any) -> Any:
        """A floating input in float16 (integer inputs, such as token ids, pass unchanged)."""
        data = x.data if isinstance(x, Variable) else x
        if getattr(data, "dtype", None) is None or data.dtype.kind != "f" or data.dtype == self.half_dtype:
            return x
        return Variable(data.astype(self.half_dtype), requires_grad=False)

    @staticmethod
    def to_float32(prediction: Any) -> Variable:
        """The prediction cast to float32 for the loss (its gradient comes back as float16)."""
        prediction = as_variable(prediction)
        return cast(prediction, np.float32) if prediction.dtype.kind == "f" else prediction

    def backward(self, loss: Variable) -> None:
        """``backward`` of ``loss * scale`` (the loss itself is left unchanged)."""
        loss = as_variable(loss)
        if loss.size != 1:
            raise ValueError(f"MixedPrecision.backward: the loss must be a scalar, got shape {loss.shape}")
        xp = get_array_module(loss.data)
        # An overflow here is expected now and then (it is how the scale is
        # found); step() detects it, so NumPy need not warn about it.
        with np.errstate(over="ignore", invalid="ignore"):
            loss.backward(xp.full(loss.shape, self.scale, dtype=loss.dtype))

    # -- the update ------------------------------------------------------------------------
    def grads_are_finite(self) -> bool:
        """True when no Parameter's gradient holds inf or NaN."""
        flags = [get_array_module(p.grad.data).isfinite(p.grad.data).all()
                 for _, p in self.model.named_params() if p.grad is not None]
        if not flags:
            return True
        # One answer from the device for all parameters (a GPU sync each would cost more than the check).
        return bool(get_array_module(flags[0]).stack(flags).all())

    def step(self) -> bool:
        """Update the master weights, or skip the step if a gradient overflowed; adjust the scale.

        Returns True when the optimizer stepped, False when the step was skipped
        (the parameters and the optimizer's state are then unchanged, the
        gradients are cleared and the scale is multiplied by ``backoff_factor``).
        """
        if self.optimizer is None:
            raise ValueError("MixedPrecision.step: no optimizer was given to MixedPrecision(model, optimizer)")
        if self.update_scale(self.grads_are_finite()):
            self.optimizer.update()
            return True
        for _, p in self.model.named_params():
            p.grad = None
        return False

    def update_scale(self, finite: bool) -> bool:
        """Record one step's outcome: halve the scale on overflow, grow it after enough good steps.

        Returns ``finite`` (whether the step should be applied); for callers
        that check the gradients themselves and update on their own.
        """
        if not finite:
            self.skipped_steps += 1
            self.good_steps = 0
            self.scale *= self.backoff_factor
            logger.info("mixed precision: inf/NaN gradient, step skipped; loss scale now %g", self.scale)
            return False
        self.good_steps += 1
        if self.good_steps >= self.growth_interval:
            self.scale *= self.growth_factor
            self.good_steps = 0
        return True

    # -- saving ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, float | int]:
        """The scaler's state (scale and counters), for a checkpoint."""
        return {"scale": self.scale, "good_steps": self.good_steps, "skipped_steps": self.skipped_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict()`` returned."""
        missing = {"scale", "good_steps", "skipped_steps"} - set(state)
        if missing:
            raise ValueError(f"MixedPrecision.load_state_dict: missing keys {sorted(missing)}")
        self.scale = float(state["scale"])
        self.good_steps = int(state["good_steps"])
        self.skipped_steps = int(state["skipped_steps"])

    def __repr__(self) -> str:
        return (f"MixedPrecision(scale={self.scale:g}, growth_interval={self.growth_interval}, "
                f"skipped_steps={self.skipped_steps})")
