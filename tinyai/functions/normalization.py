"""Batch normalisation and layer normalisation.

Both standardise x over some axes and then scale and shift it:

    mu = mean(x), var = mean((x - mu)^2)          (over the statistic axes)
    xhat = (x - mu) / sqrt(var + eps)
    y = gamma * xhat + beta

batch_norm takes the statistics over the batch (and spatial) axes, one pair
per channel; layer_norm over the last axis, one pair per sample.

The backward pass uses the closed form instead of differentiating through
mean and var step by step. With g = gy * gamma, r = 1 / sqrt(var + eps) and m
the number of values in each statistic:

    gx     = r * (g - mean(g) - xhat * mean(g * xhat))
    ggamma = sum(gy * xhat)        (over the axes gamma is broadcast along)
    gbeta  = sum(gy)

The bracket is the projection P(v) = v - mean(v) - xhat mean(v xhat): it
removes from g the two directions the output cannot see (shifting x changes
nothing once the mean is subtracted; scaling it changes nothing once divided
by the standard deviation, up to eps).

Double backward is supported: the gradient Function (``NormalizationGrad``)
has a backward of its own, the closed-form second derivative, written with
tinyai operations so that higher orders work too.

Inside a data-parallel step each worker holds only a shard of the batch. The
batch statistics, and the two means of the backward pass, must still be those
of the whole batch, or the result would depend on how the batch was split. So
every mean over the batch axis goes through ``_BatchMeans``, which sums over
all shards with the communicator in force (``tinyai.backend.get_communicator``)
before dividing by the total count: synchronised batch normalisation.
"""
from __future__ import annotations

from typing import Any

from tinyai.autograd import Function, Variable, as_variable, is_train_mode
from tinyai.backend import Communicator, get_array_module, get_communicator, narrow_like, widen
from tinyai.backend.settings import is_number
from tinyai.functions.reductions import mean, sum as sum_
from tinyai.functions.shape import broadcast_to, reshape, sum_to, sum_to_array


class _BatchMeans:
    """Means over the statistic axes: of this array alone, or of every shard of a data-parallel step."""

    def __init__(self, shape: tuple[int, ...], axes: tuple[int, ...], communicator: Communicator | None) -> None:
        self.axes = axes
        self.communicator = communicator
        count = 1
        for axis in axes:
            count *= shape[axis]
        if communicator is not None:
            count = int(communicator.allreduce(count))
        #: values per statistic, all shards together
        self.count = count

    def __call__(self, v: Any) -> Any:
        if self.communicator is None:
            return v.mean(axis=self.axes, keepdims=True)
        return self.communicator.allreduce(v.sum(axis=self.axes, keepdims=True)) / self.count


def _standardize(x: Any, means: _BatchMeans, eps: float) -> tuple[Any, Any, Any, Any]:
    """(xhat, r, mean, var) of the raw array x; r = 1 / sqrt(var + eps); keepdims."""
    xp = get_array_module(x)
    mu = means(x)
    centred = x - mu
    var = means(centred * centred)
    inv_std = 1 / xp.sqrt(var + eps)
    return centred * inv_std, inv_std, mu, var


class NormalizationGrad(Function):
    """(gx, ggamma, gbeta) of y = gamma * standardize(x) + beta, from inputs (x, gamma, gy).

    ``axes`` are the statistic axes, ``param_shape`` the shape gamma takes to
    broadcast against x ((1, C, 1, 1) for batch norm, (D,) for layer norm).
    ``xhat`` and ``inv_std`` come from the forward pass, so the first
    derivative costs no recomputation.
    """

    def __init__(self, means: _BatchMeans, param_shape: tuple[int, ...], eps: float,
                 xhat: Any, inv_std: Any) -> None:
        self.means, self.axes, self.param_shape, self.eps = means, means.axes, param_shape, eps
        self.xhat, self.inv_std = xhat, inv_std

    def forward(self, x, gamma, gy):
        xhat, means = self.xhat, self.means
        g = gy * gamma.reshape(self.param_shape)
        gx = self.inv_std * (g - means(g) - xhat * means(g * xhat))
        ggamma = sum_to_array(gy * xhat, self.param_shape).reshape(gamma.shape)
        gbeta = sum_to_array(gy, self.param_shape).reshape(gamma.shape)
        # Computed against float32 statistics; each gradient in its input's dtype.
        return narrow_like(gx, x), narrow_like(ggamma, gamma), narrow_like(gbeta, gamma)

    def backward(self, a, b_gamma, b_beta):
        """Second derivatives. Write L = <a, gx> + <b_gamma, ggamma> + <b_beta, gbeta>.

        With c = mean(g xhat), T = sum(a xhat), S = sum(a (g - mean(g))) per statistic:

            dL/dgy    = gamma r P(a) + b_gamma xhat + b_beta
            dL/dgamma = sum(r P(a) gy)
            dL/dx     = -r^2 xhat (S - c T) / m - r^2 (T P(g) / m + c P(a)) + r P(b_gamma gy)

        using d xhat_i / d x_j = r (delta_ij - 1/m - xhat_i xhat_j / m) and
        d r / d x_j = -r^2 xhat_j / m. xhat and r are rebuilt here from x with
        tinyai operations (not taken from the forward pass) so that this
        result can itself be differentiated again.
        """
        if self.means.communicator is not None:
            raise RuntimeError("batch_norm: second derivatives are not available with batch statistics "
                               "synchronised across data-parallel workers")
        x, gamma, gy = self.saved_inputs()
        axes = self.axes
        m = 1
        for axis in axes:
            m *= x.shape[axis]
        centred = x - mean(x, axis=axes, keepdims=True)
        r = (mean(centred * centred, axis=axes, keepdims=True) + self.eps) ** -0.5
        xhat = centred * r
        gamma_b = reshape(gamma, self.param_shape)

        def project(v: Variable) -> Variable:
            return v - mean(v, axis=axes, keepdims=True) - xhat * mean(v * xhat, axis=axes, keepdims=True)

        gx = ggamma = ggy = None

        def add(total: Variable | None, term: Variable) -> Variable:
            return term if total is None else total + term

        if a is not None:
            g = gy * gamma_b
            pa = project(a)
            ggy = add(ggy, gamma_b * r * pa)
            ggamma = add(ggamma, reshape(sum_to(r * pa * gy, self.param_shape), gamma.shape))
            s = sum_(a * (g - mean(g, axis=axes, keepdims=True)), axis=axes, keepdims=True)
            t = sum_(a * xhat, axis=axes, keepdims=True)
            c = mean(g * xhat, axis=axes, keepdims=True)
            gx = add(gx, -(r * r) * (xhat * (s - c * t) + t * project(g)) / m - (r * r) * c * pa)
        if b_gamma is not None:
            bg = reshape(b_gamma, self.param_shape)
            ggy = add(ggy, bg * xhat)
            gx = add(gx, r * project(bg * gy))
        if b_beta is not None:
            ggy = add(ggy, broadcast_to(reshape(b_beta, self.param_shape), gy.shape))
        return gx, ggamma, ggy


class _Normalize(Function):
    """y = gamma * standardize(x) + beta with batch statistics (train-mode batch norm, layer norm).

    ``running`` is (running_mean, running_var, momentum) for batch norm, or None.
    """

    def __init__(self, axes: tuple[int, ...], param_shape: tuple[int, ...], eps: float,
                 running: tuple[Any, Any, float] | None = None, communicator: Communicator | None = None) -> None:
        self.axes, self.param_shape, self.eps, self.running = axes, param_shape, eps, running
        self.communicator = communicator

    def forward(self, x, gamma, beta):
        self.means = _BatchMeans(x.shape, self.axes, self.communicator)
        # float16 input (mixed precision): statistics, xhat and the running
        # averages stay float32; only the output is rounded to float16.
        self.xhat, self.inv_std, mu, var = _standardize(widen(x), self.means, self.eps)
        if self.running is not None:
            running_mean, running_var, momentum = self.running
            m = self.means.count
            # The running variance estimates the population's, hence the
            # unbiased m / (m - 1) correction of the biased batch variance.
            running_mean *= momentum
            running_mean += (1 - momentum) * mu.reshape(running_mean.shape)
            running_var *= momentum
            running_var += (1 - momentum) * (m / (m - 1)) * var.reshape(running_var.shape)
        return narrow_like(gamma.reshape(self.param_shape) * self.xhat + beta.reshape(self.param_shape), x)

    def backward(self, gy):
        x, gamma, _ = self.saved_inputs()
        grad = NormalizationGrad(self.means, self.param_shape, self.eps, self.xhat, self.inv_std)
        return grad(x, gamma, gy)


def _data(value: Any) -> Any:
    return value.data if isinstance(value, Variable) else value


def _check_param(op: str, name: str, value: Any, size: int, what: str) -> None:
    shape = tuple(value.shape)
    if shape != (size,):
        raise ValueError(f"{op}: {name} has shape {shape} but {what} {size}; expected ({size},)")


def _check_eps(op: str, eps: Any) -> None:
    # eps < 0 makes sqrt(var + eps) NaN wherever the variance is small. (0 is allowed: exact
    # standardisation of inputs known to vary; a constant input then divides by 0.)
    if not is_number(eps) or not eps >= 0:
        raise ValueError(f"{op}: eps must be >= 0, got {eps!r} (a finite number)")


def batch_norm(x: Any, gamma: Any, beta: Any, running_mean: Any, running_var: Any,
               momentum: float = 0.9, eps: float = 1e-5) -> Variable:
    """Batch normalisation of x (N, C) or (N, C, H, W), per channel C.

    Train mode (``tinyai.is_train_mode()``): normalise with the batch's mean
    and (biased) variance over N (and H, W), and update the running
    statistics in place:

        running_mean = momentum * running_mean + (1 - momentum) * batch_mean
        running_var  = momentum * running_var  + (1 - momentum) * batch_var * m / (m - 1)

    (m values per channel; the unbiased variance estimates the population's).
    ``momentum`` is the weight of the *old* value, as in TinyAI and Chainer's
    ``decay``; PyTorch's ``momentum=0.1`` is the same as 0.9 here.

    Test mode: normalise with running_mean and running_var, which are left
    unchanged; y is then an affine function of x.

    Args:
        x: (N, C) or (N, C, H, W).
        gamma, beta: scale and shift of shape (C,) (Variables, to be learned).
        running_mean, running_var: arrays of shape (C,) (or Variables, whose
            ``data`` is used), updated in place in train mode.
        momentum, eps: see above; eps keeps the division finite.

    Returns y of the shape of x. The gradient is the closed form (see the
    module docstring); double backward is supported in both modes.
    """
    x = as_variable(x)
    gamma, beta = as_variable(gamma), as_variable(beta)
    running_mean, running_var = _data(running_mean), _data(running_var)
    if x.ndim not in (2, 4):
        raise ValueError(f"batch_norm: input must be (N, C) or (N, C, H, W), got shape {x.shape}")
    channels = x.shape[1]
    for name, value in (("gamma", gamma), ("beta", beta), ("running_mean", running_mean),
                        ("running_var", running_var)):
        _check_param("batch_norm", name, value, channels, "the input has channel count")
    if not is_number(momentum) or not 0 <= momentum <= 1:
        raise ValueError(f"batch_norm: momentum must be in [0, 1], got {momentum!r}")
    _check_eps("batch_norm", eps)
    axes = (0,) if x.ndim == 2 else (0, 2, 3)
    param_shape = (1, channels) if x.ndim == 2 else (1, channels, 1, 1)

    if is_train_mode():
        communicator = get_communicator()
        # With synchronised statistics only the whole batch needs two values per channel.
        if communicator is None and x.size // channels < 2:
            raise ValueError(f"batch_norm: train mode needs more than one value per channel to estimate a "
                             f"variance, got input of shape {x.shape}")
        return _Normalize(axes, param_shape, eps, (running_mean, running_var, momentum),
                          communicator=communicator)(x, gamma, beta)

    # Test mode: y = x * scale + shift with constants from the running statistics.
    xp = get_array_module(running_var)
    inv_std = 1 / xp.sqrt(running_var + eps)
    scale = gamma * inv_std
    shift = beta - scale * running_mean
    return x * reshape(scale, param_shape) + reshape(shift, param_shape)


def layer_norm(x: Any, gamma: Any, beta: Any, eps: float = 1e-5) -> Variable:
    """Layer normalisation over the last axis: each sample (row) standardised on its own.

    y[..., d] = gamma[d] * (x[..., d] - mean(x[..., :])) / sqrt(var(x[..., :]) + eps) + beta[d]

    Args:
        x: (..., D).
        gamma, beta: (D,).

    The same in train and test mode (no running statistics). The gradient is
    the closed form (see the module docstring); double backward is supported.
    """
    x = as_variable(x)
    gamma, beta = as_variable(gamma), as_variable(beta)
    if x.ndim < 1:
        raise ValueError(f"layer_norm: input must have at least one axis, got shape {x.shape}")
    size = x.shape[-1]
    for name, value in (("gamma", gamma), ("beta", beta)):
        _check_param("layer_norm", name, value, size, "the last axis of the input has size")
    _check_eps("layer_norm", eps)
    return _Normalize((x.ndim - 1,), (size,), eps)(x, gamma, beta)
