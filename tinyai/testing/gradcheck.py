"""Checking a backward pass against finite differences.

For any function f and a random output gradient gy, the backward pass claims
to compute g = J^T gy, the gradient of L(x) = <gy, f(x)>. Central differences
measure the same thing without trusting backward:

    dL/dx . v  ~  (L(x + eps v) - L(x - eps v)) / (2 eps)

The fast check compares the two along one random direction v for all inputs
at once: two forward evaluations and one backward. Only if they disagree is
the full Jacobian compared, element by element, to say where the error is.

gy is random on purpose. With gy = 1 (summing the outputs), a wrong softmax
backward passes, because softmax's outputs always sum to 1 and any error
orthogonal to the all-ones vector is invisible.

This module is part of the product: use ``gradcheck`` in your own CI to test
the Functions you write.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from tinyai.autograd import Variable, enable_grad, no_grad
from tinyai.backend import get_array_module, is_array, to_cpu
from tinyai.backend.finite import describe_non_finite
from tinyai.backend.settings import is_int, is_number


def _outputs(result: Any) -> tuple[Variable, ...]:
    if isinstance(result, Variable):
        return (result,)
    if isinstance(result, (tuple, list)) and all(isinstance(r, Variable) or r is None for r in result):
        return tuple(r for r in result if r is not None)
    raise TypeError(f"gradcheck: the function must return a Variable or a tuple of them, got {type(result).__name__}")


def _as_float64(value: Any) -> Any:
    """A private float64 copy of a floating input; other inputs are kept as they are."""
    data = value.data if isinstance(value, Variable) else value
    if not is_array(data):
        data = np.asarray(data)
    if data.dtype.kind == "f":
        xp = get_array_module(data)
        return xp.array(data, dtype=xp.float64)
    return data


def _is_float(data: Any) -> bool:
    return is_array(data) and data.dtype.kind == "f"


def _evaluate(f: Callable, arrays: Sequence[Any], gys: Sequence[Any] | None, grad: bool):
    """Run f on fresh Variables; return the Variables, the outputs and L = <gy, f(x)>."""
    xs = [Variable(a, requires_grad=_is_float(a)) for a in arrays]
    if grad:
        with enable_grad():
            ys = _outputs(f(*xs))
    else:
        with no_grad():
            ys = _outputs(f(*xs))
    if gys is None:
        return xs, ys, None
    total = 0.0
    for y, gy in zip(ys, gys):
        total += float(to_cpu((y.data * gy).sum()))
    return xs, ys, total


def _random_like(rng: np.random.Generator, data: Any) -> Any:
    xp = get_array_module(data)
    return xp.asarray(rng.standard_normal(data.shape))


def numerical_grad(f: Callable, *inputs: Any, eps: float = 1e-6, grad_outputs: Sequence[Any] | None = None) -> list:
    """Central-difference gradient of L(x) = <grad_outputs, f(x)> for every input.

    ``grad_outputs`` defaults to ones (the gradient of the sum of the outputs).
    Returns one NumPy array per input, or None for non-float inputs.
    """
    _check_step("numerical_grad", eps)
    arrays = [_as_float64(a) for a in inputs]
    _, ys, _ = _evaluate(f, arrays, None, grad=False)
    if grad_outputs is None:
        grad_outputs = [get_array_module(y.data).ones_like(y.data) for y in ys]
    result = []
    for i, a in enumerate(arrays):
        if not _is_float(a):
            result.append(None)
            continue
        g = np.zeros(a.shape)
        for index in np.ndindex(*a.shape):
            original = float(to_cpu(a[index]))
            a[index] = original + eps
            plus = _evaluate(f, arrays, grad_outputs, grad=False)[2]
            a[index] = original - eps
            minus = _evaluate(f, arrays, grad_outputs, grad=False)[2]
            a[index] = original
            g[index] = (plus - minus) / (2 * eps)
        result.append(g)
    return result


def _watch_integer_inputs(xs: Sequence[Variable], ys: Sequence[Variable]) -> dict[int, str]:
    """Record which integer inputs a backward pass hands a gradient to.

    Autograd silently drops a gradient returned for an input that needs none
    (labels, indices), so ``x.grad`` cannot show the mistake. Each Function of
    this private graph that consumes an integer input gets its ``backward``
    wrapped (on the instance only) to note such a gradient.
    """
    integer = {id(x): i for i, x in enumerate(xs) if not _is_float(x.data)}
    given: dict[int, str] = {}
    if not integer:
        return given
    stack = [y.creator for y in ys if y.creator is not None]
    seen = set()
    while stack:
        function = stack.pop()
        if id(function) in seen:
            continue
        seen.add(id(function))
        stack.extend(x.creator for x in function.inputs if x.creator is not None)
        watched = [(k, integer[id(x)]) for k, x in enumerate(function.inputs) if id(x) in integer]
        if watched:
            function.backward = _noting_backward(function, function.backward, watched, given)
    return given


def _noting_backward(function: Any, backward: Callable, watched: list, given: dict[int, str]) -> Callable:
    def noting(*gys: Any) -> Any:
        gxs = backward(*gys)
        as_tuple = gxs if isinstance(gxs, tuple) else (gxs,)
        for position, input_index in watched:
            if position < len(as_tuple) and as_tuple[position] is not None:
                given[input_index] = type(function).__name__
        return gxs
    return noting


def _check_step(where: str, eps: Any) -> None:
    if not is_number(eps) or not eps > 0:
        raise ValueError(f"{where}: eps (the finite-difference step) must be a finite number > 0, got {eps!r}")


def _check_inputs(where: str, f: Any, arrays: Sequence[Any]) -> None:
    """Refuse what would make the check pass without checking anything, or fail for the wrong reason."""
    if not callable(f):
        raise TypeError(f"{where}: the first argument must be the function to check, got {type(f).__name__}")
    if not arrays:
        raise ValueError(f"{where}: no inputs; pass the arrays to call the function with")
    if not any(_is_float(a) for a in arrays):
        # An integer array gets no gradient, so nothing would be compared and the check would pass.
        dtypes = ", ".join(str(a.dtype) for a in arrays)
        raise ValueError(f"{where}: no floating-point input to check (dtypes {dtypes}); pass float arrays, "
                         "e.g. x.astype(numpy.float64)")
    for i, a in enumerate(arrays):
        if _is_float(a):
            found = describe_non_finite(a)
            if found is not None:  # NaN != NaN: every comparison would fail, and name the wrong cause
                raise ValueError(f"{where}: input {i} holds {found}; finite differences need finite inputs")


def _prepare(f: Callable, inputs: Sequence[Any], seed: int | None, eps: Any, atol: Any, rtol: Any,
             where: str) -> tuple[int, np.random.Generator, list, list]:
    """The seed (a fresh one when None, so a failure can name it), its generator,
    the float inputs widened to float64, and one random gradient per output of ``f``.

    The settings and inputs are checked first: a bad one is a ValueError (or
    TypeError) naming ``where``, never an AssertionError, which would read as
    a wrong backward.
    """
    _check_step(where, eps)
    for name, tolerance in (("atol", atol), ("rtol", rtol)):
        if not is_number(tolerance) or tolerance < 0:
            raise ValueError(f"{where}: {name} must be a finite number >= 0, got {tolerance!r}")
    if seed is not None and not (is_int(seed) and seed >= 0):
        raise ValueError(f"{where}: seed must be a non-negative int or None, got {seed!r}")
    arrays = [_as_float64(a) for a in inputs]
    _check_inputs(where, f, arrays)
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1)[0])
    seed = int(seed)
    rng = np.random.default_rng(seed)
    _, ys, _ = _evaluate(f, arrays, None, grad=False)
    return seed, rng, arrays, [_random_like(rng, y.data) for y in ys]


def _analytic_grads(f: Callable, arrays: Sequence[Any], gys: Sequence[Any]) -> tuple[list, dict[int, str]]:
    xs, ys, _ = _evaluate(f, arrays, None, grad=True)
    if len(ys) != len(gys):
        raise AssertionError(f"gradcheck: the function returned {len(ys)} outputs, then {len(gys)}")
    given = _watch_integer_inputs(xs, ys)
    for y, gy in zip(ys, gys):
        if y.creator is not None or y.requires_grad:
            y.backward(Variable(gy, requires_grad=False))
    return [(x, x.grad) for x in xs], given


def gradcheck(f: Callable, *inputs: Any, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-4,
              seed: int | None = None, fast: bool = True) -> bool:
    """Assert that the backward pass of ``f`` matches finite differences.

    Args:
        f: a function of Variables returning a Variable or a tuple of them.
        inputs: arrays (or Variables) passed to ``f``; floating ones are
            copied to float64 and checked, integer ones (labels, indices) are
            passed unchanged and must receive no gradient.
        eps: the finite-difference step.
        atol, rtol: the comparison allows |analytic - numeric| <= atol + rtol |numeric|.
        seed: seed for the random output gradients and direction; a random
            one is drawn (and reported on failure) when None.
        fast: compare along one random direction first (cheap); with False,
            always compare the full Jacobian.

    Also checked: each gradient has its input's shape and dtype, no integer
    input is handed a gradient, and running backward a second time gives the
    same gradients.

    Returns True, or raises AssertionError naming the input, the largest
    error, where it occurs, and the seed that reproduces it. Raises
    ValueError (TypeError for ``f`` not callable) for a call that would check
    nothing or fail for another reason: no floating input, a NaN or
    infinite input, ``eps <= 0``, a negative tolerance, a bad seed.

    >>> import numpy as np
    >>> import tinyai.functions as F
    >>> gradcheck(F.tanh, np.random.default_rng(0).standard_normal((3, 4)))
    True
    """
    seed, rng, arrays, gys = _prepare(f, inputs, seed, eps, atol, rtol, "gradcheck")

    pairs, given = _analytic_grads(f, arrays, gys)
    grads = []
    for i, (x, gx) in enumerate(pairs):
        if not _is_float(arrays[i]):
            if gx is not None or i in given:
                by = f" from {given[i]}.backward" if i in given else ""
                raise AssertionError(f"gradcheck: input {i} has dtype {arrays[i].dtype} but received a gradient"
                                     f"{by}; integer inputs (labels, indices) must get None (seed={seed})")
            grads.append(None)
            continue
        if gx is None:
            gx_data = get_array_module(arrays[i]).zeros_like(arrays[i])
        else:
            gx_data = gx.data
            if gx.shape != x.shape:
                raise AssertionError(f"gradcheck: gradient of input {i} has shape {gx.shape}, "
                                     f"the input has shape {x.shape} (seed={seed})")
            if gx.dtype != x.dtype:
                raise AssertionError(f"gradcheck: gradient of input {i} has dtype {gx.dtype}, "
                                     f"the input has dtype {x.dtype} (seed={seed})")
        grads.append(to_cpu(gx_data).astype(np.float64))

    again, _ = _analytic_grads(f, arrays, gys)
    for i, ((_, gx), first) in enumerate(zip(again, grads)):
        if first is None:
            continue
        second = np.zeros_like(first) if gx is None else to_cpu(gx.data)
        if not np.allclose(first, second, rtol=1e-12, atol=1e-14):
            raise AssertionError(f"gradcheck: backward run twice gave different gradients for input {i} "
                                 f"(seed={seed})")

    if fast and _directional_ok(f, arrays, gys, grads, rng, eps, atol, rtol):
        return True
    _full_check(f, arrays, gys, grads, eps, atol, rtol, seed, fast)
    return True


def _directional_ok(f, arrays, gys, grads, rng, eps, atol, rtol) -> bool:
    directions = [None if g is None else rng.standard_normal(g.shape) for g in grads]
    analytic = sum(float((g * v).sum()) for g, v in zip(grads, directions) if g is not None)
    xp_dirs = [None if v is None else get_array_module(a).asarray(v) for a, v in zip(arrays, directions)]
    # asarray: for a 0-d input, NumPy's a + eps * v is a scalar, not an array,
    # and a scalar input would be taken for a non-float one (no gradient).
    plus = [_shifted(a, eps, v) for a, v in zip(arrays, xp_dirs)]
    minus = [_shifted(a, -eps, v) for a, v in zip(arrays, xp_dirs)]
    numeric = (_evaluate(f, plus, gys, grad=False)[2] - _evaluate(f, minus, gys, grad=False)[2]) / (2 * eps)
    return abs(analytic - numeric) <= atol + rtol * abs(numeric)


def _shifted(a: Any, step: float, v: Any) -> Any:
    """``a + step * v`` as an array of ``a``'s backend (``a`` itself when v is None)."""
    if v is None:
        return a
    return get_array_module(a).asarray(a + step * v)


def _full_check(f, arrays, gys, grads, eps, atol, rtol, seed, fast) -> None:
    numeric = numerical_grad(f, *arrays, eps=eps, grad_outputs=gys)
    for i, (g, n) in enumerate(zip(grads, numeric)):
        if g is None:
            continue
        error = np.abs(g - n)
        allowed = atol + rtol * np.abs(n)
        if np.any(error > allowed):
            where = np.unravel_index(int(np.argmax(error - allowed)), error.shape) if error.ndim else ()
            raise AssertionError(
                f"gradcheck: gradient of input {i} (shape {g.shape}) is wrong: largest error "
                f"{float(error.max()):.3e} at index {tuple(int(k) for k in where)} "
                f"(analytic {float(g[where]):.6e}, numeric {float(n[where]):.6e}); replay with seed={seed}")
    if fast:
        raise AssertionError(
            "gradcheck: the directional check failed but every element matched within tolerance; "
            f"the errors add up across elements (seed={seed})")


def _raw_gradient_message(index: int, gx: Any, outputs: Sequence[Variable]) -> str:
    """Why a second derivative cannot be taken: some backward returned raw arrays."""
    seen, stack, names = set(), [y.creator for y in outputs if y.creator is not None], []
    while stack:
        function = stack.pop()
        if id(function) in seen:
            continue
        seen.add(id(function))
        name = type(function).__name__
        if not type(function).__module__.startswith("tinyai.") and name not in names:
            names.append(name)
        stack.extend(x.creator for x in function.inputs if x.creator is not None)
    culprits = ", ".join(names) if names else "one of the Functions in the graph"
    return (f"gradgradcheck: the gradient of input {index} came back as a raw {type(gx).__name__}, not a "
            f"Variable, so it cannot be differentiated again. The backward of {culprits} returns arrays "
            "(e.g. `return 2 * x.data * gy`); for second derivatives write it with operators and tinyai "
            "functions on what saved_inputs() gives (`x, = self.saved_inputs(); return 2 * x * gy`). "
            "gradcheck (first derivatives) accepts either.")


def gradgradcheck(f: Callable, *inputs: Any, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-4,
                  seed: int | None = None, fast: bool = True) -> bool:
    """Assert that second derivatives of ``f`` are right.

    Differentiates the gradient map x -> J(x)^T gy (computed by
    ``backward(create_graph=True)``, with gy random and fixed) and checks it
    with ``gradcheck``.
    """
    seed, _, arrays, gys = _prepare(f, inputs, seed, eps, atol, rtol, "gradgradcheck")

    def first_derivatives(*xs: Variable) -> tuple[Variable, ...]:
        with enable_grad():
            outputs = _outputs(f(*xs))
            for y, gy in zip(outputs, gys):
                if y.creator is not None:
                    y.backward(Variable(gy, requires_grad=False), create_graph=True)
        result = []
        for index, x in enumerate(xs):
            if not x.requires_grad:
                continue
            gx, x.grad = x.grad, None  # the outer check accumulates into x.grad again
            if gx is not None and not isinstance(gx, Variable):
                raise TypeError(_raw_gradient_message(index, gx, outputs))
            result.append(gx if gx is not None else
                          Variable(get_array_module(x.data).zeros_like(x.data), requires_grad=False))
        return tuple(result)

    return gradcheck(first_derivatives, *arrays, eps=eps, atol=atol, rtol=rtol, seed=seed + 1, fast=fast)
