"""Optimizer updates as single fused GPU kernels, each with its NumPy twin as the reference.

Written with array operations, one Adam step is a chain: ``m *= beta1``,
``m += (1 - beta1) * g``, ``v *= ...``, ``sqrt``, ``/``, ``-=`` ... about a
dozen passes over memory, each a kernel launch with a temporary array. On a
CPU that is fine (NumPy's passes are cheap next to the Python around them).
On a GPU each launch costs several microseconds and each pass reads and
writes the whole parameter again, so the chain is bound by launches and
memory traffic, not arithmetic. The fix is one *fused* kernel per update:
every element is read once, updated in registers, and written once.

Each rule here therefore comes twice:

* ``<rule>_update_reference(...)``: the textbook formula as a chain of array
  operations, in place. It runs on any backend (NumPy, the CPU stand-in,
  CuPy) and is the definition the kernel is tested against;
* ``<rule>_update(...)``: what optimizers call. On CuPy arrays it launches
  the fused ``cupy.ElementwiseKernel`` (compiled once, on first use); on
  anything else it runs the reference.

All functions change ``param`` and the state arrays in place and return
nothing. Scalars are Python floats (so float32 parameters stay float32).
"""
from __future__ import annotations

import functools
from typing import Any

from tinyai.backend import get_array_module


def _on_cupy(array: Any) -> bool:
    return get_array_module(array).__name__ == "cupy"


@functools.lru_cache(maxsize=None)
def _kernel(name: str, params_in: str, params_out: str, body: str) -> Any:
    """Compile (once per process) the elementwise kernel ``name``."""
    import cupy  # noqa: PLC0415 - only reached with CuPy arrays in hand

    return cupy.ElementwiseKernel(params_in, params_out, body, f"tinyai_{name}")


def _scalar(array: Any, value: float) -> Any:
    """``value`` as a scalar of ``array``'s dtype (CuPy kernels type their scalars strictly)."""
    return array.dtype.type(value)


# -- SGD ----------------------------------------------------------------------------------
def sgd_update_reference(param: Any, grad: Any, lr: float) -> None:
    """p <- p - lr * g."""
    param -= lr * grad


def sgd_update(param: Any, grad: Any, lr: float) -> None:
    """p <- p - lr * g (fused on CuPy: one pass instead of a product and a subtraction)."""
    if not _on_cupy(param):
        return sgd_update_reference(param, grad, lr)
    kernel = _kernel("sgd", "T grad, T lr", "T param", "param -= lr * grad")
    kernel(grad, _scalar(param, lr), param)


# -- Momentum -----------------------------------------------------------------------------
def momentum_update_reference(param: Any, grad: Any, velocity: Any, lr: float, momentum: float,
                              nesterov: bool) -> None:
    """v <- momentum v - lr g;  p <- p + v  (nesterov: p <- p + momentum v - lr g)."""
    velocity *= momentum
    velocity -= lr * grad
    if nesterov:
        param += momentum * velocity - lr * grad
    else:
        param += velocity


def momentum_update(param: Any, grad: Any, velocity: Any, lr: float, momentum: float, nesterov: bool) -> None:
    """The Momentum step (see ``momentum_update_reference``), fused on CuPy."""
    if not _on_cupy(param):
        return momentum_update_reference(param, grad, velocity, lr, momentum, nesterov)
    step = "param += momentum * velocity - lr * grad;" if nesterov else "param += velocity;"
    kernel = _kernel("nesterov" if nesterov else "momentum", "T grad, T lr, T momentum", "T param, T velocity",
                     "velocity = momentum * velocity - lr * grad; " + step)
    kernel(grad, _scalar(param, lr), _scalar(param, momentum), param, velocity)


# -- Adam and AdamW -----------------------------------------------------------------------
def adam_update_reference(param: Any, grad: Any, m: Any, v: Any, lr: float, beta1: float, beta2: float,
                          eps: float, step: int, decoupled_decay: float = 0.0) -> None:
    """One Adam step for update number ``step`` (1, 2, ...)::

        p <- p (1 - lr decoupled_decay)        (AdamW; no-op for Adam)
        m <- beta1 m + (1 - beta1) g
        v <- beta2 v + (1 - beta2) g g
        p <- p - lr (m / (1 - beta1^step)) / (sqrt(v / (1 - beta2^step)) + eps)
    """
    xp = get_array_module(param)
    if decoupled_decay:
        param *= 1.0 - lr * decoupled_decay
    m *= beta1
    m += (1.0 - beta1) * grad
    v *= beta2
    v += (1.0 - beta2) * (grad * grad)
    m_hat = m / (1.0 - beta1 ** step)
    v_hat = v / (1.0 - beta2 ** step)
    param -= lr * m_hat / (xp.sqrt(v_hat) + eps)


def adam_update(param: Any, grad: Any, m: Any, v: Any, lr: float, beta1: float, beta2: float,
                eps: float, step: int, decoupled_decay: float = 0.0) -> None:
    """The Adam/AdamW step (see ``adam_update_reference``), one fused kernel on CuPy."""
    if not _on_cupy(param):
        return adam_update_reference(param, grad, m, v, lr, beta1, beta2, eps, step, decoupled_decay)
    kernel = _kernel(
        "adam", "T grad, T lr, T beta1, T beta2, T eps, T correction1, T correction2, T keep",
        "T param, T m, T v",
        "m = beta1 * m + (1 - beta1) * grad; "
        "v = beta2 * v + (1 - beta2) * grad * grad; "
        "param = keep * param - lr * (m / correction1) / (sqrt(v / correction2) + eps);")
    s = functools.partial(_scalar, param)
    kernel(grad, s(lr), s(beta1), s(beta2), s(eps), s(1.0 - beta1 ** step), s(1.0 - beta2 ** step),
           s(1.0 - lr * decoupled_decay), param, m, v)


# -- RMSprop and AdaGrad --------------------------------------------------------------------
def rmsprop_update_reference(param: Any, grad: Any, mean_sq: Any, lr: float, decay: float, eps: float) -> None:
    """h <- decay h + (1 - decay) g g;  p <- p - lr g / (sqrt(h) + eps)."""
    xp = get_array_module(param)
    mean_sq *= decay
    mean_sq += (1.0 - decay) * (grad * grad)
    param -= lr * grad / (xp.sqrt(mean_sq) + eps)


def rmsprop_update(param: Any, grad: Any, mean_sq: Any, lr: float, decay: float, eps: float) -> None:
    """The RMSprop step (see ``rmsprop_update_reference``), fused on CuPy."""
    if not _on_cupy(param):
        return rmsprop_update_reference(param, grad, mean_sq, lr, decay, eps)
    kernel = _kernel("rmsprop", "T grad, T lr, T decay, T eps", "T param, T mean_sq",
                     "mean_sq = decay * mean_sq + (1 - decay) * grad * grad; "
                     "param -= lr * grad / (sqrt(mean_sq) + eps);")
    kernel(grad, _scalar(param, lr), _scalar(param, decay), _scalar(param, eps), param, mean_sq)


def adagrad_update_reference(param: Any, grad: Any, sum_sq: Any, lr: float, eps: float) -> None:
    """h <- h + g g;  p <- p - lr g / (sqrt(h) + eps)."""
    xp = get_array_module(param)
    sum_sq += grad * grad
    param -= lr * grad / (xp.sqrt(sum_sq) + eps)


def adagrad_update(param: Any, grad: Any, sum_sq: Any, lr: float, eps: float) -> None:
    """The AdaGrad step (see ``adagrad_update_reference``), fused on CuPy."""
    if not _on_cupy(param):
        return adagrad_update_reference(param, grad, sum_sq, lr, eps)
    kernel = _kernel("adagrad", "T grad, T lr, T eps", "T param, T sum_sq",
                     "sum_sq += grad * grad; param -= lr * grad / (sqrt(sum_sq) + eps);")
    kernel(grad, _scalar(param, lr), _scalar(param, eps), param, sum_sq)


#: (fused, reference) pairs by optimizer name, for tests and benchmarks.
UPDATES = {
    "sgd": (sgd_update, sgd_update_reference),
    "momentum": (momentum_update, momentum_update_reference),
    "adam": (adam_update, adam_update_reference),
    "rmsprop": (rmsprop_update, rmsprop_update_reference),
    "adagrad": (adagrad_update, adagrad_update_reference),
}
