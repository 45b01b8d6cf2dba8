"""Adam and AdamW: momentum plus RMSprop, with the start-up bias removed."""
from __future__ import annotations

from typing import Any

from tinyai.optim.kernels import adam_update
from tinyai.backend.settings import is_number
from tinyai.optim.optimizer import Optimizer, check_eps


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015, Algorithm 1).

    With t the number of updates this parameter has received (1, 2, ...)::

        m <- beta1 * m + (1 - beta1) * g            (first moment)
        v <- beta2 * v + (1 - beta2) * g * g        (second moment)
        m_hat = m / (1 - beta1**t),  v_hat = v / (1 - beta2**t)
        p <- p - lr * m_hat / (sqrt(v_hat) + eps)

    m and v start at zero, so early on they underestimate the moments; the
    hats divide that bias out. ``t`` is counted per parameter, so a parameter
    that skipped steps (no gradient) or was created late still gets the right
    correction. ``weight_decay`` adds ``wd * p`` to g (L2, coupled with the
    adaptive scaling); use AdamW for decoupled decay.

    TinyAI calls lr ``learningRate`` (``alpha`` in the paper).
    """

    slots = ("m", "v")
    hyperparameter_names = ("beta1", "beta2", "eps")

    def __init__(self, params: Any, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, weight_decay: float = 0.0, max_grad_norm: float | None = None) -> None:
        name = type(self).__name__
        for label, beta in (("beta1", beta1), ("beta2", beta2)):
            if not is_number(beta) or not 0.0 <= beta < 1.0:
                raise ValueError(f"{name}: {label} must lie in [0, 1), got {beta!r}")
        check_eps(eps, name)
        self.beta1 = float(beta1)
        self.beta2 = float(beta2)
        self.eps = float(eps)
        super().__init__(params, lr, weight_decay=weight_decay, max_grad_norm=max_grad_norm)

    def _update_one(self, data: Any, grad: Any, state: dict[str, Any], step: int) -> None:
        # The rule itself is in tinyai.optim.kernels: one fused kernel on a GPU.
        adam_update(data, grad, state["m"], state["v"], self.lr, self.beta1, self.beta2, self.eps, step)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter, 2019).

    ::

        p <- p - lr * wd * p          (shrink, independent of the gradient)
        p <- Adam step with g          (g carries no L2 term)

    In Adam, an L2 term in g is divided by sqrt(v_hat), so parameters with
    large gradients are barely regularised; decoupling applies the same
    relative shrinkage to all. Default ``weight_decay=0.01``.
    """

    def __init__(self, params: Any, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, weight_decay: float = 0.01, max_grad_norm: float | None = None) -> None:
        super().__init__(params, lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay,
                         max_grad_norm=max_grad_norm)

    def _apply_weight_decay(self, data: Any, grad: Any) -> Any:
        return grad  # decoupled: applied to p in _update_one, not folded into g

    def _update_one(self, data: Any, grad: Any, state: dict[str, Any], step: int) -> None:
        adam_update(data, grad, state["m"], state["v"], self.lr, self.beta1, self.beta2, self.eps, step,
                    decoupled_decay=self.weight_decay)
