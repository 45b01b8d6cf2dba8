"""Per-coordinate learning rates from the history of squared gradients: AdaGrad and RMSprop."""
from __future__ import annotations

from typing import Any

from tinyai.optim.kernels import adagrad_update, rmsprop_update
from tinyai.backend.settings import is_number
from tinyai.optim.optimizer import Optimizer, check_eps


class AdaGrad(Optimizer):
    """AdaGrad (Duchi et al., 2011): each coordinate's step shrinks with its gradient history.

    ::

        h <- h + g * g
        p <- p - lr * g / (sqrt(h) + eps)

    ``h`` only grows, so the effective rate decays; good for sparse
    gradients, too cautious for long training runs (RMSprop forgets instead).
    """

    slots = ("sum_sq",)
    hyperparameter_names = ("eps",)

    def __init__(self, params: Any, lr: float = 0.01, eps: float = 1e-8, weight_decay: float = 0.0,
                 max_grad_norm: float | None = None) -> None:
        check_eps(eps, "AdaGrad")
        self.eps = float(eps)
        super().__init__(params, lr, weight_decay=weight_decay, max_grad_norm=max_grad_norm)

    def _update_one(self, data: Any, grad: Any, state: dict[str, Any], step: int) -> None:
        adagrad_update(data, grad, state["sum_sq"], self.lr, self.eps)


class RMSprop(Optimizer):
    """RMSprop (Hinton, 2012): AdaGrad with an exponential moving average instead of a sum.

    ::

        h <- decay * h + (1 - decay) * g * g
        p <- p - lr * g / (sqrt(h) + eps)

    TinyAI and Keras call ``decay`` rho; PyTorch calls it alpha.
    """

    slots = ("mean_sq",)
    hyperparameter_names = ("decay", "eps")

    def __init__(self, params: Any, lr: float = 0.01, decay: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, max_grad_norm: float | None = None) -> None:
        if not is_number(decay) or not 0.0 <= decay < 1.0:
            raise ValueError(f"RMSprop: decay must lie in [0, 1), got {decay!r}")
        check_eps(eps, "RMSprop")
        self.decay = float(decay)
        self.eps = float(eps)
        super().__init__(params, lr, weight_decay=weight_decay, max_grad_norm=max_grad_norm)

    def _update_one(self, data: Any, grad: Any, state: dict[str, Any], step: int) -> None:
        rmsprop_update(data, grad, state["mean_sq"], self.lr, self.decay, self.eps)
