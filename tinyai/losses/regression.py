"""Losses for real-valued targets: mean squared error and Huber (TinyAI's MeanSquaredLoss)."""
from __future__ import annotations

from tinyai.autograd import Variable
from tinyai.backend.settings import is_number
from tinyai.functions.loss import huber_loss, mean_squared_error
from tinyai.losses.base import Loss


def _same_shape(loss: Loss, prediction: Variable, target: Variable) -> Variable:
    """Refuse shapes that differ (no broadcasting: (N,) against (N, 1) would silently give (N, N))."""
    if prediction.shape != target.shape:
        hint = ""
        if prediction.size == target.size:
            hint = f"; reshape the target to {tuple(prediction.shape)}"
        raise ValueError(f"{loss.name}: prediction of shape {tuple(prediction.shape)} and target of shape "
                         f"{tuple(target.shape)} differ{hint}")
    if not target.requires_grad and target.dtype != prediction.dtype:
        # Integer or float64 targets would promote the loss (and its gradient) away from float32.
        target = Variable(target.data.astype(prediction.dtype), requires_grad=False)
    return target


class MeanSquaredLoss(Loss):
    """Mean squared error: ``mean((prediction - target)**2)`` over every element.

    Shapes: prediction and target identical, any shape; returns a scalar.
    (PyTorch: ``MSELoss``.)
    """

    def compute(self, prediction: Variable, target: Variable) -> Variable:
        target = _same_shape(self, prediction, target)
        return self._named(mean_squared_error, prediction, target)


class Huber(Loss):
    """Huber loss: ``0.5 d**2`` where ``|d| <= delta``, ``delta * (|d| - delta / 2)`` beyond; mean over elements.

    ``d = prediction - target``. Quadratic near zero, linear in the tails, so
    outliers pull with a bounded gradient (at most ``delta`` per element).
    (PyTorch: ``HuberLoss``; ``SmoothL1Loss`` is Huber divided by delta.)
    """

    def __init__(self, delta: float = 1.0) -> None:
        if not is_number(delta) or not delta > 0:
            raise ValueError(f"Huber: delta must be > 0, got {delta!r} (a finite number)")
        self.delta = float(delta)

    def compute(self, prediction: Variable, target: Variable) -> Variable:
        target = _same_shape(self, prediction, target)
        return self._named(huber_loss, prediction, target, self.delta)

    def __repr__(self) -> str:
        return f"Huber(delta={self.delta:g})"
