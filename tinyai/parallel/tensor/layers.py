"""Column- and row-parallel linear layers: one matrix, split over the ranks of a communicator.

A Linear layer computes Y = X W + b with W of shape (in, out). Tensor
parallelism (Megatron-LM) stores W in T pieces, one per rank, two ways:

    column-parallel: W = [W_0 | W_1 | ... | W_{T-1}]   (split the out columns)
        rank r computes Y_r = X W_r + b_r: its own columns of Y. No
        communication is needed forward; joining the Y_r is optional
        (``gather_output``), because the next layer can take them as they are.

    row-parallel:    W = [W_0; W_1; ...; W_{T-1}]       (split the in rows)
        rank r holds columns X_r of the input and computes the partial
        product X_r W_r; the sum over ranks is Y = X W. One all-reduce
        forward; the bias is added once, after it.

Column-parallel followed by row-parallel needs exactly one all-reduce in
each direction (see ``tinyai.parallel.tensor.operators``): the column
layer's output blocks are precisely the row layer's input blocks.

Each rank keeps only its piece: memory per rank is about 1/T of the layer's.
``from_linear(linear, comm)`` cuts a rank's piece out of an ordinary
``tinyai.nn.Linear`` (so a split layer can be checked against the whole one),
``gather_weight()`` joins the pieces again, and ``full_state_dict()`` /
``load_full_state_dict()`` speak in the whole layer's ``W`` and ``b``, so
checkpoints hold the unsplit weights that a single-process tinyai loads.

Splits: by default the split dimension must be divisible by the number of
ranks (a clear error says otherwise). With ``uneven=True`` it is split as
``numpy.array_split`` does: n features on T ranks give the first n % T
ranks one feature more (10 columns on 4 ranks: 3, 3, 2, 2). Every rank needs
at least one.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from tinyai import functions as F
from tinyai.autograd import Variable
from tinyai.backend import get_array_module, to_cpu
from tinyai.backend.settings import int_setting
from tinyai.nn.init import check_init, initialize
from tinyai.nn.layer import Layer, _check_variable
from tinyai.nn.linear import Linear
from tinyai.nn.parameter import Parameter
from tinyai.parallel.comm.base import Communicator
from tinyai.parallel.comm.payload import block_bounds
from tinyai.parallel.tensor.operators import (
    copy_to_tensor_parallel,
    gather_from_tensor_parallel,
    reduce_from_tensor_parallel,
    scatter_to_tensor_parallel,
)


def check_communicator(comm: Any, where: str) -> Communicator:
    """``comm`` if it is a Communicator, else a TypeError naming ``where``."""
    if not isinstance(comm, Communicator):
        raise TypeError(f"{where}: comm must be a tinyai Communicator (e.g. from spmd or ProcessGrid), "
                        f"got {type(comm).__name__}")
    return comm


def split_bounds(n: int, comm: Communicator, what: str, where: str, uneven: bool) -> tuple[int, int]:
    """(start, stop) of this rank's block of ``n``, or a ValueError explaining why ``n`` cannot be split."""
    size = comm.size
    if n < size:
        raise ValueError(f"{where}: {what}={n} cannot be split over {size} ranks (each needs at least one)")
    if n % size and not uneven:
        sizes = [stop - start for start, stop in block_bounds(n, size)]
        raise ValueError(f"{where}: {what}={n} is not divisible by the {size} ranks of the communicator; "
                         f"choose a multiple of {size}, or pass uneven=True to split it as "
                         f"numpy.array_split does (blocks of {', '.join(map(str, sizes))})")
    return block_bounds(n, size)[comm.rank]


def gather_last_axis(array: Any, comm: Communicator) -> Any:
    """The ranks' blocks of ``array`` along its last axis, joined in rank order (a collective, no graph)."""
    xp = get_array_module(array)
    gathered = comm.allgather(xp.ascontiguousarray(xp.moveaxis(array, -1, 0)))
    return xp.ascontiguousarray(xp.moveaxis(gathered, 0, -1))


def check_full_state(layer: Layer, state: Mapping[str, Any], expected: Mapping[str, tuple]) -> None:
    """Every name of ``expected`` is in ``state`` with that (whole-layer) shape, else one ValueError listing all."""
    problems = []
    for name, shape in expected.items():
        if name not in state:
            problems.append(f"missing {name!r} (expected shape {shape})")
        elif tuple(np.shape(state[name])) != shape:
            problems.append(f"{name!r} has shape {tuple(np.shape(state[name]))}, the unsplit layer's is {shape}")
    unexpected = sorted(set(state) - set(expected))
    if unexpected:
        problems.append(f"unexpected {', '.join(map(repr, unexpected))}")
    if problems:
        raise ValueError(f"{layer._label()}.load_full_state_dict: {'; '.join(problems)}")


def _assign(param: Parameter, value: Any) -> None:
    """Copy ``value`` into ``param`` in its dtype and on its device."""
    xp = get_array_module(param.data)
    if get_array_module(value) is not xp:
        value = to_cpu(value)
    param.data = xp.array(value, dtype=param.data.dtype)


class _ParallelLinear(Layer):
    """What the two split linear layers share: sizes, communicator, checks and whole-layer state."""

    def __init__(self, in_features: int, out_features: int, comm: Communicator, bias: bool, init: str,
                 name: str | None) -> None:
        super().__init__(name)
        self.comm = check_communicator(comm, self._label())
        self.in_features = int_setting(in_features, self._label(), "in_features")
        self.out_features = int_setting(out_features, self._label(), "out_features")
        self.use_bias = bool(bias)
        self.init = check_init(self._label(), init)

    def __getstate__(self) -> dict:
        raise TypeError(f"{self._label()}: a tensor-parallel layer holds a live communicator and cannot be "
                        "pickled; save full_state_dict() instead")

    def full_shapes(self) -> dict[str, tuple[int, ...]]:
        """name -> shape of the whole (unsplit) layer's parameters."""
        shapes = {"W": (self.in_features, self.out_features)}
        if self.use_bias:
            shapes["b"] = (self.out_features,)
        return shapes

    def full_state_dict(self) -> dict[str, Any]:
        """The whole layer's ``W`` (and ``b``) on every rank: a collective call, like ``gather_weight``."""
        state = {"W": self.gather_weight()}
        if self.use_bias:
            state["b"] = self.gather_bias()
        return state

    def to_linear(self) -> Linear:
        """A new ordinary ``Linear`` holding the whole weights (a collective call)."""
        linear = Linear(self.in_features, self.out_features, bias=self.use_bias, init=self.init)
        linear.load_state_dict({k: to_cpu(v) for k, v in self.full_state_dict().items()})
        return linear

    def _check_input(self, x: Variable, features: int, what: str) -> None:
        if x.ndim == 0 or x.shape[-1] != features:
            raise ValueError(f"{self._label()} (rank {self.comm.rank} of {self.comm.size}): expected {what} "
                             f"with {features} features on the last axis, got shape {tuple(x.shape)}")


class ColumnParallelLinear(_ParallelLinear):
    """Y = X W + b with W's output columns split over the ranks (Megatron's column-parallel linear).

    Args:
        in_features, out_features: the whole layer's sizes.
        comm: the tensor-parallel communicator (its ranks share the layer).
        bias: whether the layer adds b (split with the columns).
        gather_output: all-gather the ranks' output columns, so every rank
            gets the whole Y; False (the default) leaves rank r with its
            block Y_r, ready for a ``RowParallelLinear``.
        init: "xavier" or "he"; the scale is the whole layer's. Ranks draw
            their blocks independently; use ``from_linear`` for weights that
            equal a given layer's.
        uneven: allow ``out_features`` not divisible by ``comm.size``
            (``numpy.array_split``'s blocks).

    Shapes: X (..., in_features), the same on every rank -> Y (..., out_r),
    or (..., out_features) with ``gather_output``. Parameters: W (in, out_r),
    b (out_r,).
    """

    def __init__(self, in_features: int, out_features: int, comm: Communicator, bias: bool = True,
                 gather_output: bool = False, init: str = "xavier", uneven: bool = False,
                 name: str | None = None) -> None:
        super().__init__(in_features, out_features, comm, bias, init, name)
        self.gather_output = bool(gather_output)
        self.start, self.stop = split_bounds(self.out_features, self.comm, "out_features", self._label(), uneven)
        local = self.stop - self.start
        self.W = Parameter(initialize((self.in_features, local), self.in_features, self.out_features, self.init))
        self.b = Parameter(initialize((local,), 1, 1, "zeros")) if self.use_bias else None

    @classmethod
    def from_linear(cls, linear: Linear, comm: Communicator, gather_output: bool = False,
                    uneven: bool = False) -> "ColumnParallelLinear":
        """This rank's column block of an ordinary ``Linear`` (whose W is (in, out))."""
        _check_linear(linear, f"{cls.__name__}.from_linear")
        layer = cls(linear.in_features, linear.out_features, comm, bias=linear.use_bias,
                    gather_output=gather_output, init=linear.init, uneven=uneven, name=linear.name)
        _like(layer, linear)
        layer.load_full_state_dict(linear.state_dict())
        return layer

    def forward(self, x: Any) -> Variable:
        x = _check_variable(self, x)
        self._check_input(x, self.in_features, "input")
        y = F.linear(copy_to_tensor_parallel(x, self.comm), self.W, self.b)
        return gather_from_tensor_parallel(y, self.comm) if self.gather_output else y

    def gather_weight(self) -> Any:
        """The whole W (in, out) on every rank (a collective call: every rank must make it)."""
        return gather_last_axis(self.W.data, self.comm)

    def gather_bias(self) -> Any:
        """The whole b (out,) on every rank, or None without bias (a collective call when there is one)."""
        return None if self.b is None else self.comm.allgather(self.b.data)

    def load_full_state_dict(self, state: Mapping[str, Any]) -> None:
        """Keep this rank's columns of the whole layer's ``W`` (in, out) and ``b`` (out,)."""
        check_full_state(self, state, self.full_shapes())
        _assign(self.W, state["W"][:, self.start:self.stop])
        if self.use_bias:
            _assign(self.b, state["b"][self.start:self.stop])

    def extra_repr(self) -> str:
        return (f"{self.in_features} -> {self.out_features}, columns {self.start}:{self.stop} on rank "
                f"{self.comm.rank} of {self.comm.size}" + (", gather_output" if self.gather_output else "")
                + ("" if self.use_bias else ", bias=False"))


class RowParallelLinear(_ParallelLinear):
    """Y = X W + b with W's input rows split over the ranks (Megatron's row-parallel linear).

    Rank r computes the partial product X_r W_r; an all-reduce sums the
    partials into Y, and b (kept whole on every rank) is added once.

    Args:
        in_features, out_features: the whole layer's sizes.
        comm: the tensor-parallel communicator.
        bias: whether the layer adds b.
        input_is_parallel: True (the default) when rank r is handed its block
            X_r of the input features (a ``ColumnParallelLinear``'s output);
            False when every rank is handed the whole X, which is then split.
        init, uneven: as for ``ColumnParallelLinear`` (the split is of ``in_features``).

    Shapes: X_r (..., in_r) or X (..., in_features) -> Y (..., out_features)
    on every rank. Parameters: W (in_r, out), b (out,).
    """

    def __init__(self, in_features: int, out_features: int, comm: Communicator, bias: bool = True,
                 input_is_parallel: bool = True, init: str = "xavier", uneven: bool = False,
                 name: str | None = None) -> None:
        super().__init__(in_features, out_features, comm, bias, init, name)
        self.input_is_parallel = bool(input_is_parallel)
        self.start, self.stop = split_bounds(self.in_features, self.comm, "in_features", self._label(), uneven)
        local = self.stop - self.start
        self.W = Parameter(initialize((local, self.out_features), self.in_features, self.out_features, self.init))
        self.b = Parameter(initialize((self.out_features,), 1, 1, "zeros")) if self.use_bias else None

    @classmethod
    def from_linear(cls, linear: Linear, comm: Communicator, input_is_parallel: bool = True,
                    uneven: bool = False) -> "RowParallelLinear":
        """This rank's row block of an ordinary ``Linear`` (whose W is (in, out))."""
        _check_linear(linear, f"{cls.__name__}.from_linear")
        layer = cls(linear.in_features, linear.out_features, comm, bias=linear.use_bias,
                    input_is_parallel=input_is_parallel, init=linear.init, uneven=uneven, name=linear.name)
        _like(layer, linear)
        layer.load_full_state_dict(linear.state_dict())
        return layer

    def forward(self, x: Any) -> Variable:
        x = _check_variable(self, x)
        if self.input_is_parallel:
            self._check_input(x, self.stop - self.start, f"its block (features {self.start}:{self.stop}) "
                                                         f"of the input")
        else:
            self._check_input(x, self.in_features, "the whole input")
            x = scatter_to_tensor_parallel(x, self.comm)
        y = reduce_from_tensor_parallel(F.linear(x, self.W), self.comm)
        return y + self.b if self.b is not None else y

    def gather_weight(self) -> Any:
        """The whole W (in, out) on every rank (a collective call: every rank must make it)."""
        return self.comm.allgather(self.W.data)

    def gather_bias(self) -> Any:
        """b (out,), which every rank holds whole; None without bias."""
        return None if self.b is None else self.b.data

    def load_full_state_dict(self, state: Mapping[str, Any]) -> None:
        """Keep this rank's rows of the whole layer's ``W`` (in, out); ``b`` (out,) whole."""
        check_full_state(self, state, self.full_shapes())
        _assign(self.W, state["W"][self.start:self.stop])
        if self.use_bias:
            _assign(self.b, state["b"])

    def extra_repr(self) -> str:
        return (f"{self.in_features} -> {self.out_features}, rows {self.start}:{self.stop} on rank "
                f"{self.comm.rank} of {self.comm.size}" + ("" if self.input_is_parallel else ", splits its input")
                + ("" if self.use_bias else ", bias=False"))


def _like(layer: _ParallelLinear, linear: Linear) -> None:
    """Give ``layer``'s parameters the dtype and device of ``linear``'s (before copying its values in)."""
    xp = get_array_module(linear.W.data)
    for p in layer.params():
        p.data = xp.asarray(to_cpu(p.data) if xp is not np else p.data, dtype=linear.W.data.dtype)


def _check_linear(linear: Any, where: str) -> None:
    if not isinstance(linear, Linear):
        raise TypeError(f"{where}: expected a tinyai.nn.Linear, got {type(linear).__name__}")
    if linear.W is None:
        raise ValueError(f"{where}: {linear._label()} has no weights yet (a lazy Linear: call it once or give "
                         "in_features)")


__all__ = ["ColumnParallelLinear", "RowParallelLinear"]
