"""A CPU stand-in for CuPy: proves that code is backend-clean without a GPU.

tinyai's rule for layers 2 and above is: ask ``xp = get_array_module(x)`` and
compute with ``xp``, never with ``numpy`` directly, so the same code runs on
CuPy. Code that breaks the rule usually still *works* on NumPy arrays, so a
CPU-only test suite cannot see the mistake; it only shows up on a GPU.

The stand-in makes the mistake visible on any machine. ``StandInArray`` wraps
a NumPy array and behaves like ``cupy.ndarray`` where it matters:

* implicit conversion to NumPy fails: ``np.asarray(x)`` raises TypeError, as
  CuPy's does; the explicit copy is ``x.get()`` (CuPy's API);
* NumPy functions and ufuncs refuse it: ``np.exp(x)`` and ``np.sum(x)``
  raise TypeError, so a stray ``np.`` in library code fails the test;
* mixing it with a NumPy array in an operation (``x + numpy_array``,
  ``x[numpy_index]``, ``xp.concatenate([x, numpy_array])``) raises
  TypeError, as mixing host and device arrays does on a GPU;
* reductions and scalar indexing give 0-d arrays, not NumPy scalars.

The module object ``xp`` plays the part of the ``cupy`` module: it offers
NumPy's functions, ufuncs (with ``.at`` and ``.reduce``), ``random`` and
dtypes, unwrapping stand-in arguments and wrapping the results.
``xp.asarray(numpy_array)`` and ``xp.array(...)`` are the allowed
host-to-device copies.

Importing this module registers the stand-in with ``tinyai.backend``, so
``get_array_module(StandInArray)`` returns ``xp``.

>>> import numpy as np
>>> from tinyai.testing.standin import xp
>>> x = xp.asarray(np.arange(3.0))
>>> float((x * 2).sum())
6.0
>>> np.asarray(x)
Traceback (most recent call last):
    ...
TypeError: standin: implicit conversion to a NumPy array is not allowed; use .get() to copy to the host
"""
from __future__ import annotations

import contextlib
import operator
import types
from typing import Any, Callable, Iterator

import numpy as np

from tinyai.backend import register_array_module
from tinyai.backend.device import set_gpu_standin

__all__ = ["StandInArray", "xp", "to_standin", "as_backend", "standin_as_gpu"]

_IMPLICIT = ("standin: implicit conversion to a NumPy array is not allowed; "
             "use .get() to copy to the host")


class StandInArray:
    """A device-array look-alike holding a NumPy array it never lets NumPy see.

    Construct it with ``xp.asarray(numpy_array)`` rather than directly.
    """

    __slots__ = ("_a",)
    __hash__ = None  # type: ignore[assignment]  # arrays are mutable, like ndarray

    def __init__(self, array: np.ndarray) -> None:
        if not isinstance(array, np.ndarray):
            raise TypeError(f"StandInArray: expected a numpy.ndarray, got {type(array).__name__}")
        self._a = array

    # -- the walls between host and "device" -----------------------------------
    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise TypeError(_IMPLICIT)

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        # ``np.float64(2.0) * x`` reaches here through NumPy's scalar operators;
        # CuPy accepts that, so arithmetic with a NumPy *scalar* operand is
        # computed. Any other NumPy ufunc called on a stand-in is refused.
        if (method == "__call__" and not kwargs and ufunc.__name__ in _SCALAR_BINOPS
                and any(isinstance(v, np.generic) for v in inputs)):
            return _wrap(ufunc(*_unwrap(inputs, f"numpy.{ufunc.__name__}")))
        raise TypeError(f"standin: numpy.{ufunc.__name__} was called on a stand-in (device) array; "
                        f"use xp = get_array_module(x) and xp.{ufunc.__name__}")

    def __array_function__(self, func: Any, types_: Any, args: Any, kwargs: Any) -> Any:
        name = getattr(func, "__name__", str(func))
        raise TypeError(f"standin: numpy.{name} was called on a stand-in (device) array; "
                        f"use xp = get_array_module(x) and xp.{name}")

    def get(self) -> np.ndarray:
        """A NumPy copy on the host (CuPy's ``ndarray.get()``)."""
        return self._a.copy()

    # -- attributes ------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self._a.shape

    @property
    def dtype(self) -> np.dtype:
        return self._a.dtype

    @property
    def ndim(self) -> int:
        return self._a.ndim

    @property
    def size(self) -> int:
        return self._a.size

    @property
    def T(self) -> "StandInArray":
        return _wrap(self._a.T)

    def __getattr__(self, name: str) -> Any:
        # Only reached for names not defined above: ndarray methods and plain
        # attributes (strides, nbytes, ...). Dunder lookups (pickle, copy) must
        # not recurse into a half-built object.
        if name.startswith("__") or name == "_a":
            raise AttributeError(name)
        value = getattr(self._a, name)
        if callable(value):
            return _wrap_callable(value, f"ndarray.{name}")
        return _wrap(value)

    def __getstate__(self) -> np.ndarray:
        return self._a

    def __setstate__(self, state: np.ndarray) -> None:
        self._a = state

    def __dir__(self) -> list[str]:
        return sorted(set(dir(type(self))) | set(dir(self._a)))

    # -- Python protocols --------------------------------------------------------
    def __repr__(self) -> str:
        return "standin." + repr(self._a)

    def __str__(self) -> str:
        return str(self._a)

    def __len__(self) -> int:
        return len(self._a)

    def __iter__(self):
        for i in range(len(self._a)):
            yield self[i]

    def __bool__(self) -> bool:
        return bool(self._a)

    def __float__(self) -> float:
        return float(self._a)

    def __int__(self) -> int:
        return int(self._a)

    def __index__(self) -> int:
        return operator.index(self._a.item()) if self._a.ndim == 0 else operator.index(self._a)

    def __complex__(self) -> complex:
        return complex(self._a)

    def __getitem__(self, key: Any) -> "StandInArray":
        return _wrap(self._a[_unwrap_key(key, "__getitem__")])

    def __setitem__(self, key: Any, value: Any) -> None:
        self._a[_unwrap_key(key, "__setitem__")] = _unwrap(value, "__setitem__")

    def __copy__(self) -> "StandInArray":
        return StandInArray(self._a.copy())

    def __deepcopy__(self, memo: dict) -> "StandInArray":
        return StandInArray(self._a.copy())

    def __neg__(self) -> "StandInArray":
        return _wrap(-self._a)

    def __pos__(self) -> "StandInArray":
        return _wrap(+self._a)

    def __abs__(self) -> "StandInArray":
        return _wrap(abs(self._a))

    def __invert__(self) -> "StandInArray":
        return _wrap(~self._a)


def _binary(op: Callable, name: str, reflected: bool = False) -> Callable:
    def method(self: StandInArray, other: Any) -> Any:
        if not _is_operand(other):
            return NotImplemented
        other = _unwrap(other, name)
        return _wrap(op(other, self._a) if reflected else op(self._a, other))
    method.__name__ = name
    return method


def _inplace(op: Callable, name: str) -> Callable:
    def method(self: StandInArray, other: Any) -> StandInArray:
        if not _is_operand(other):
            return NotImplemented
        op(self._a, _unwrap(other, name))  # the in-place operator mutates self._a
        return self
    method.__name__ = name
    return method


_BINOPS = {
    "add": operator.add, "sub": operator.sub, "mul": operator.mul, "truediv": operator.truediv,
    "floordiv": operator.floordiv, "mod": operator.mod, "pow": operator.pow, "matmul": operator.matmul,
    "and": operator.and_, "or": operator.or_, "xor": operator.xor,
    "lshift": operator.lshift, "rshift": operator.rshift,
}
_INPLACE = {
    "add": operator.iadd, "sub": operator.isub, "mul": operator.imul, "truediv": operator.itruediv,
    "floordiv": operator.ifloordiv, "mod": operator.imod, "pow": operator.ipow, "matmul": operator.imatmul,
    "and": operator.iand, "or": operator.ior, "xor": operator.ixor,
}
# ufunc names NumPy scalars use for their operators (see __array_ufunc__).
_SCALAR_BINOPS = {"add", "subtract", "multiply", "divide", "true_divide", "floor_divide", "remainder",
                  "power", "matmul", "bitwise_and", "bitwise_or", "bitwise_xor", "left_shift", "right_shift",
                  "equal", "not_equal", "less", "less_equal", "greater", "greater_equal"}

for _name, _op in _BINOPS.items():
    setattr(StandInArray, f"__{_name}__", _binary(_op, f"__{_name}__"))
    setattr(StandInArray, f"__r{_name}__", _binary(_op, f"__r{_name}__", reflected=True))
for _name, _op in _INPLACE.items():
    setattr(StandInArray, f"__i{_name}__", _inplace(_op, f"__i{_name}__"))
for _name, _op in {"eq": operator.eq, "ne": operator.ne, "lt": operator.lt, "le": operator.le,
                   "gt": operator.gt, "ge": operator.ge}.items():
    setattr(StandInArray, f"__{_name}__", _binary(_op, f"__{_name}__"))
del _name, _op


# -- wrapping and unwrapping --------------------------------------------------------
def _is_operand(value: Any) -> bool:
    """Operands an operator accepts: stand-ins, Python and NumPy scalars, NumPy arrays (refused later)."""
    return isinstance(value, (StandInArray, np.ndarray, np.generic, int, float, complex, bool))


def _wrap(value: Any) -> Any:
    """NumPy results become stand-ins (scalars as 0-d arrays, as CuPy returns them)."""
    if isinstance(value, np.ndarray):
        return StandInArray(value)
    if isinstance(value, np.generic):
        return StandInArray(np.asarray(value))
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


def _unwrap(value: Any, where: str) -> Any:
    """Stand-ins become their NumPy arrays; a NumPy array here is a host/device mix-up."""
    if isinstance(value, StandInArray):
        return value._a
    if isinstance(value, np.ndarray):
        raise TypeError(f"standin: {where} got a numpy.ndarray of shape {value.shape} mixed with stand-in "
                        "(device) arrays; copy it over with xp.asarray first")
    if isinstance(value, tuple):
        return tuple(_unwrap(v, where) for v in value)
    if isinstance(value, list):
        return [_unwrap(v, where) for v in value]
    if isinstance(value, dict):
        return {k: _unwrap(v, where) for k, v in value.items()}
    return value


def _unwrap_key(key: Any, where: str) -> Any:
    if isinstance(key, tuple):
        return tuple(_unwrap(k, where) for k in key)
    return _unwrap(key, where)


def _wrap_callable(func: Callable, where: str) -> Callable:
    def call(*args: Any, **kwargs: Any) -> Any:
        return _wrap(func(*_unwrap(args, where), **_unwrap(kwargs, where)))
    call.__name__ = getattr(func, "__name__", where)
    call.__doc__ = getattr(func, "__doc__", None)
    return call


class _UFunc:
    """A NumPy ufunc working on stand-ins, with the ``at``/``reduce`` methods CuPy has."""

    def __init__(self, ufunc: np.ufunc) -> None:
        self._ufunc = ufunc
        self.__name__ = ufunc.__name__
        self.nin, self.nout = ufunc.nin, ufunc.nout

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _wrap(self._ufunc(*_unwrap(args, self.__name__), **_unwrap(kwargs, self.__name__)))

    def at(self, target: StandInArray, indices: Any, values: Any = None) -> None:
        """Unbuffered in-place operation: repeated indices apply once per occurrence."""
        if not isinstance(target, StandInArray):
            raise TypeError(f"standin: {self.__name__}.at needs a stand-in target, got {type(target).__name__}")
        where = f"{self.__name__}.at"
        if values is None:
            self._ufunc.at(target._a, _unwrap_key(indices, where))
        else:
            self._ufunc.at(target._a, _unwrap_key(indices, where), _unwrap(values, where))

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._ufunc, name)  # reduce, accumulate, outer, identity, ...
        return _wrap_callable(value, f"{self.__name__}.{name}") if callable(value) else value

    def __repr__(self) -> str:
        return f"<standin ufunc {self.__name__}>"


class _Namespace(types.ModuleType):
    """A module that mirrors a NumPy namespace (``numpy`` or ``numpy.random``) for stand-ins."""

    def __init__(self, name: str, source: types.ModuleType, overrides: dict[str, Any]) -> None:
        super().__init__(name)
        self._source = source
        self.__dict__.update(overrides)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        value = getattr(self._source, name)
        if isinstance(value, np.ufunc):
            wrapped: Any = _UFunc(value)
        elif isinstance(value, (type, types.ModuleType)) or not callable(value):
            return value  # dtypes (xp.float32), classes, constants (xp.pi, xp.newaxis)
        else:
            wrapped = _wrap_callable(value, f"{self.__name__}.{name}")
        self.__dict__[name] = wrapped  # cache: the next lookup skips __getattr__
        return wrapped


def _asarray(value: Any, dtype: Any = None, copy: Any = None, order: Any = None) -> StandInArray:
    """Copy host data to the "device"; a stand-in already of the right dtype is returned as it is."""
    if isinstance(value, StandInArray):
        result = np.asarray(value._a, dtype=dtype, order=order)
        return value if result is value._a and not copy else StandInArray(result.copy() if copy else result)
    return StandInArray(np.array(_unwrap_nested(value), dtype=dtype, order=order, copy=True))


def _array(value: Any, dtype: Any = None, copy: bool = True, order: Any = "K", ndmin: int = 0) -> StandInArray:
    """Like ``cupy.array``: a new "device" array from host data or a stand-in (copied by default)."""
    return StandInArray(np.array(_unwrap_nested(value), dtype=dtype, copy=copy, order=order, ndmin=ndmin))


def _unwrap_nested(value: Any) -> Any:
    """For asarray/array: NumPy arrays are allowed (an explicit transfer), stand-ins unwrap."""
    if isinstance(value, StandInArray):
        return value._a
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap_nested(v) for v in value)
    return value


def _get_array_module(*args: Any) -> types.ModuleType:
    return xp if any(isinstance(a, StandInArray) for a in args) else np


def to_standin(value: Any) -> Any:
    """Copy a NumPy array or scalar (or a nested list/tuple of them) onto the stand-in "device"."""
    if isinstance(value, (np.ndarray, np.generic)):
        return StandInArray(np.array(value))
    if isinstance(value, (list, tuple)):
        return type(value)(to_standin(v) for v in value)
    return value


def as_backend(value: Any, module: types.ModuleType) -> Any:
    """``value`` (NumPy arrays, possibly nested in lists/tuples) on the backend ``module``.

    ``module`` is ``numpy`` (values are returned unchanged), the stand-in
    ``xp``, or ``cupy``. Tests use it to run the same inputs on every backend.
    """
    if module is np:
        return value
    if module is xp:
        return to_standin(value)
    if isinstance(value, (list, tuple)):
        return type(value)(as_backend(v, module) for v in value)
    return module.asarray(value) if isinstance(value, np.ndarray) else value


def _asnumpy(value: Any) -> np.ndarray:
    return value.get() if isinstance(value, StandInArray) else np.asarray(value)


class _RandomState:
    """``cupy.random.RandomState``'s look-alike: draws on the "device" (stand-in arrays out)."""

    def __init__(self, seed: int | None = None) -> None:
        self._state = np.random.RandomState(seed)

    def seed(self, seed: int | None = None) -> None:
        # NumPy's RandomState takes 32-bit seeds; fold a 64-bit one (CuPy takes 64 bits).
        self._state = np.random.Generator(np.random.PCG64(seed)) if seed is not None else np.random.default_rng()

    def random_sample(self, size: Any = None, dtype: Any = np.float64) -> StandInArray:
        if isinstance(self._state, np.random.Generator):
            return StandInArray(np.asarray(self._state.random(size, dtype=dtype)))
        return StandInArray(np.asarray(self._state.random_sample(size)).astype(dtype))


random = _Namespace("tinyai.testing.standin.xp.random", np.random, {"RandomState": _RandomState})


def _as_strided(x: StandInArray, shape: Any = None, strides: Any = None) -> StandInArray:
    """``cupy.lib.stride_tricks.as_strided``: another view of the same "device" memory."""
    if not isinstance(x, StandInArray):
        raise TypeError(f"standin: as_strided needs a stand-in array, got {type(x).__name__}")
    return StandInArray(np.lib.stride_tricks.as_strided(x._a, shape, strides))


stride_tricks = _Namespace("tinyai.testing.standin.xp.lib.stride_tricks", np.lib.stride_tricks,
                           {"as_strided": _as_strided})
lib = _Namespace("tinyai.testing.standin.xp.lib", np.lib, {"stride_tricks": stride_tricks})

#: The stand-in array module: use it where you would use ``cupy``.
xp = _Namespace("tinyai.testing.standin.xp", np, {
    "ndarray": StandInArray,
    "asarray": _asarray,
    "array": _array,
    "asnumpy": _asnumpy,
    "get_array_module": _get_array_module,
    "random": random,
    "lib": lib,
})

register_array_module(StandInArray, xp)


@contextlib.contextmanager
def standin_as_gpu() -> Iterator[types.ModuleType]:
    """Inside the block the stand-in plays the GPU: ``Device("gpu")``, ``to_gpu``,
    ``model.to_gpu()`` and ``Trainer(device="gpu")`` all use it (one device, gpu:0).

    This is how the whole device path (models, optimizers, the Trainer,
    checkpoints) is tested on machines without a GPU.

    >>> import tinyai as ta
    >>> with standin_as_gpu():
    ...     ta.get_array_module(ta.to_gpu(np.zeros(2))) is xp
    True
    """
    previous = set_gpu_standin(xp)
    try:
        yield xp
    finally:
        set_gpu_standin(previous)
