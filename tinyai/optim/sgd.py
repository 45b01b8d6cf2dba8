"""Plain and momentum gradient descent (TinyAI's SGD and Momentum).

The update rules live in ``tinyai.optim.kernels`` (one fused kernel each on
a GPU, the same formula as array operations elsewhere).
"""
from __future__ import annotations

from typing import Any

from tinyai.optim.kernels import momentum_update, sgd_update
from tinyai.backend.settings import bool_setting, is_number
from tinyai.optim.optimizer import Optimizer


class SGD(Optimizer):
    """Stochastic gradient descent: ``p <- p - lr * g``.

    With ``weight_decay`` the gradient is ``g + weight_decay * p`` (L2).

    >>> opt = SGD(model, lr=0.1)          # doctest: +SKIP
    >>> loss.backward(); opt.update()     # doctest: +SKIP
    """

    def __init__(self, params: Any, lr: float = 0.01, weight_decay: float = 0.0,
                 max_grad_norm: float | None = None) -> None:
        super().__init__(params, lr, weight_decay=weight_decay, max_grad_norm=max_grad_norm)

    def _update_one(self, data: Any, grad: Any, state: dict[str, Any], step: int) -> None:
        sgd_update(data, grad, self.lr)


class Momentum(Optimizer):
    """Gradient descent with a velocity (heavy ball), optionally Nesterov's.

    TinyAI's form, with the learning rate inside the velocity ``v`` (zero at
    the start)::

        v <- momentum * v - lr * g
        p <- p + v                              (classical)
        p <- p + momentum * v - lr * g          (nesterov=True: look one step ahead)

    PyTorch keeps ``b <- momentum * b + g`` and steps ``p <- p - lr * b``
    (nesterov: ``p <- p - lr * (g + momentum * b)``); with a constant
    learning rate the two are the same trajectory (``v = -lr * b``). They
    differ only when a schedule changes ``lr``: here a new rate affects only
    new gradients, there it rescales the whole accumulated velocity.
    """

    slots = ("velocity",)
    hyperparameter_names = ("momentum", "nesterov")

    def __init__(self, params: Any, lr: float = 0.01, momentum: float = 0.9, nesterov: bool = False,
                 weight_decay: float = 0.0, max_grad_norm: float | None = None) -> None:
        if not is_number(momentum) or not 0.0 <= momentum < 1.0:
            raise ValueError(f"Momentum: momentum must lie in [0, 1), got {momentum!r}")
        self.momentum = float(momentum)
        self.nesterov = bool_setting(nesterov, "Momentum", "nesterov")
        super().__init__(params, lr, weight_decay=weight_decay, max_grad_norm=max_grad_norm)

    def _update_one(self, data: Any, grad: Any, state: dict[str, Any], step: int) -> None:
        momentum_update(data, grad, state["velocity"], self.lr, self.momentum, self.nesterov)
