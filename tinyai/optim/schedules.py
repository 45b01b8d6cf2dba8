"""Learning-rate schedules: objects that set ``optimizer.lr`` as training goes on.

A schedule is a pure function of a step counter, ``lr_at(t)``, plus the
bookkeeping that applies it. ``t`` counts the calls to ``step()``; call it
after each ``optimizer.update()`` (per-batch schedules) or after each epoch
(per-epoch schedules) — the schedule does not care which, only the meaning
of its lengths changes. Construction already sets ``optimizer.lr =
lr_at(0)``, so the very first update uses the schedule's first value.

Warmup followed by cosine decay is composed, not special-cased::

    schedule = LinearWarmup(opt, warmup_steps=100,
                            then=CosineAnnealing(opt, total_steps=900))

or ``warmup_cosine(opt, warmup_steps=100, total_steps=1000)``.
"""
from __future__ import annotations

import math
from typing import Any


class LRSchedule:
    """Base class: holds the optimizer, the base rate and the step counter.

    Args:
        optimizer: anything with an ``lr`` attribute.
        base_lr: the rate the schedule scales; by default ``optimizer.lr`` at
            construction.
    """

    def __init__(self, optimizer: Any, base_lr: float | None = None) -> None:
        if not hasattr(optimizer, "lr"):
            raise TypeError(f"{type(self).__name__}: expected an optimizer with an lr attribute, "
                            f"got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lr = float(optimizer.lr if base_lr is None else base_lr)
        self.last_step = 0
        self.optimizer.lr = self.lr_at(0)

    def lr_at(self, t: int) -> float:
        """The learning rate after ``t`` calls to ``step()`` (constant in the base class)."""
        return self.base_lr

    @property
    def lr(self) -> float:
        """The rate the schedule has set now."""
        return self.lr_at(self.last_step)

    def step(self) -> float:
        """Advance one step, set ``optimizer.lr`` and return it."""
        self.last_step += 1
        self.optimizer.lr = self.lr_at(self.last_step)
        return self.optimizer.lr

    def state_dict(self) -> dict[str, float]:
        """The step counter and base rate (numbers, ready for an .npz)."""
        return {"last_step": self.last_step, "base_lr": self.base_lr}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a saved ``state_dict()`` and set ``optimizer.lr`` accordingly."""
        missing = {"last_step", "base_lr"} - set(state.keys())
        if missing:
            raise ValueError(f"{type(self).__name__}.load_state_dict: missing keys {sorted(missing)}")
        self.last_step = int(state["last_step"])
        self.base_lr = float(state["base_lr"])
        self.optimizer.lr = self.lr_at(self.last_step)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_lr={self.base_lr:g}, last_step={self.last_step})"


class StepLR(LRSchedule):
    """Multiply the rate by ``gamma`` every ``step_size`` steps: ``lr(t) = base * gamma**(t // step_size)``."""

    def __init__(self, optimizer: Any, step_size: int, gamma: float = 0.1, base_lr: float | None = None) -> None:
        if int(step_size) != step_size or step_size < 1:
            raise ValueError(f"StepLR: step_size must be a positive integer, got {step_size}")
        if not gamma > 0:
            raise ValueError(f"StepLR: gamma must be > 0, got {gamma}")
        self.step_size = int(step_size)
        self.gamma = float(gamma)
        super().__init__(optimizer, base_lr)

    def lr_at(self, t: int) -> float:
        return self.base_lr * self.gamma ** (t // self.step_size)


class CosineAnnealing(LRSchedule):
    """Half a cosine from ``base`` down to ``min_lr`` over ``total_steps`` (Loshchilov and Hutter, 2017).

    ``lr(t) = min_lr + (base - min_lr) * (1 + cos(pi * t / total_steps)) / 2``
    for ``t <= total_steps``, and ``min_lr`` after that (no restart).
    """

    def __init__(self, optimizer: Any, total_steps: int, min_lr: float = 0.0, base_lr: float | None = None) -> None:
        if int(total_steps) != total_steps or total_steps < 1:
            raise ValueError(f"CosineAnnealing: total_steps must be a positive integer, got {total_steps}")
        if not min_lr >= 0:
            raise ValueError(f"CosineAnnealing: min_lr must be >= 0, got {min_lr}")
        self.total_steps = int(total_steps)
        self.min_lr = float(min_lr)
        super().__init__(optimizer, base_lr)

    def lr_at(self, t: int) -> float:
        if t >= self.total_steps:
            return self.min_lr
        return self.min_lr + (self.base_lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * t / self.total_steps))


class LinearWarmup(LRSchedule):
    """Ramp the rate up linearly over ``warmup_steps``, then hand over to ``then`` (or stay at base).

    ``lr(t) = base * (t + 1) / warmup_steps`` for ``t < warmup_steps``: the
    first update already moves, with ``base / warmup_steps``. From
    ``t = warmup_steps`` on, ``lr(t) = then.lr_at(t - warmup_steps)`` when a
    follow-up schedule is given (its clock starts when warmup ends), else
    ``base``. The base rate defaults to the follow-up's.

    Warmup keeps the first, badly-informed updates small, which Adam's
    early, noisy second-moment estimates in particular need.
    """

    def __init__(self, optimizer: Any, warmup_steps: int, then: LRSchedule | None = None,
                 base_lr: float | None = None) -> None:
        if int(warmup_steps) != warmup_steps or warmup_steps < 1:
            raise ValueError(f"LinearWarmup: warmup_steps must be a positive integer, got {warmup_steps}")
        if then is not None:
            if not isinstance(then, LRSchedule):
                raise TypeError(f"LinearWarmup: then must be a schedule, got {type(then).__name__}")
            if then.optimizer is not optimizer:
                raise ValueError("LinearWarmup: the follow-up schedule drives a different optimizer")
            if base_lr is None:
                base_lr = then.base_lr  # the follow-up already overwrote optimizer.lr
        self.warmup_steps = int(warmup_steps)
        self.then = then
        super().__init__(optimizer, base_lr)

    def lr_at(self, t: int) -> float:
        if t < self.warmup_steps:
            return self.base_lr * (t + 1) / self.warmup_steps
        if self.then is not None:
            return self.then.lr_at(t - self.warmup_steps)
        return self.base_lr

    def step(self) -> float:
        # Keep the follow-up's own counter in step, so its state and repr make sense.
        if self.then is not None:
            self.then.last_step = max(0, self.last_step + 1 - self.warmup_steps)
        return super().step()

    def state_dict(self) -> dict[str, float]:
        """Own counter and base rate, plus the follow-up's under ``then.``."""
        state = super().state_dict()
        if self.then is not None:
            state.update({f"then.{k}": v for k, v in self.then.state_dict().items()})
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.then is not None:
            inner = {k[len("then."):]: v for k, v in state.items() if k.startswith("then.")}
            self.then.load_state_dict(inner)
        super().load_state_dict({k: v for k, v in state.items() if not k.startswith("then.")})


def warmup_cosine(optimizer: Any, warmup_steps: int, total_steps: int, min_lr: float = 0.0) -> LinearWarmup:
    """Linear warmup for ``warmup_steps``, then cosine decay to ``min_lr`` at ``total_steps`` (counted from 0)."""
    if total_steps <= warmup_steps:
        raise ValueError(f"warmup_cosine: total_steps ({total_steps}) must exceed warmup_steps ({warmup_steps})")
    cosine = CosineAnnealing(optimizer, total_steps=total_steps - warmup_steps, min_lr=min_lr)
    return LinearWarmup(optimizer, warmup_steps, then=cosine)
