"""The four communication operators of tensor parallelism, as differentiable Functions.

Megatron-LM (Shoeybi et al., 2019) splits one layer's matrix over T ranks and
glues the pieces together with two *conjugate* operators, f and g: each is
the other's backward.

    f  "copy to the tensor-parallel region":   forward identity,     backward all-reduce
    g  "reduce from the tensor-parallel region": forward all-reduce, backward identity

Why these gradients? f hands the same X to every rank, and every rank uses
its copy in a different computation (its own columns of A). X's gradient is
the sum of what all those uses send back: an all-reduce. g adds the ranks'
partial results into one Y that every rank holds; the loss is computed from
that same Y on every rank, so each partial sum's gradient is Y's gradient,
unchanged: the identity.

With them, an MLP Y = GeLU(X A) B with A split by columns and B by rows is

    X --f--> [X A_r --GeLU--> Z_r B_r] --g--> Y        (r = this rank)

one all-reduce forward (g) and one backward (f) per MLP.

The other pair moves along the last (feature) axis:

    gather  "gather from the tensor-parallel region": forward all-gather of the
            ranks' column blocks into the whole row, backward keep this rank's block
    scatter "scatter to the tensor-parallel region": forward keep this rank's block,
            backward all-gather

A column-parallel layer with ``gather_output=True`` ends with ``gather``; a
row-parallel layer given a whole (not yet split) input starts with
``scatter``.

The conventions all four rely on (Megatron's): a value that is *replicated*
(the same on every rank, like X or Y above) has the same gradient on every
rank, the whole gradient; a value that is *sharded* (a rank's block) has
that block of the gradient. Every rank calls every operator in the same
order, forward and backward, since each is a collective.

Blocks along the last axis follow ``numpy.array_split``: with n features on
T ranks, the first n % T ranks hold one feature more.
"""
from __future__ import annotations

from typing import Any

from tinyai.autograd import Function, Variable
from tinyai.backend import get_array_module
from tinyai.parallel.comm.base import Communicator
from tinyai.parallel.comm.payload import block_bounds


def last_axis_block(n: int, comm: Communicator) -> tuple[int, int]:
    """(start, stop) of this rank's block of ``n`` features (``numpy.array_split``'s rule)."""
    return block_bounds(n, comm.size)[comm.rank]


class CopyToTensorParallel(Function):
    """Megatron's f: y = x forward; gx = sum over ranks of gy backward (an all-reduce)."""

    def __init__(self, comm: Communicator) -> None:
        self.comm = comm

    def forward(self, x: Any) -> Any:
        return x

    def backward(self, gy: Variable) -> Variable:
        return reduce_from_tensor_parallel(gy, self.comm)


class ReduceFromTensorParallel(Function):
    """Megatron's g: y = sum over ranks of x forward (an all-reduce); gx = gy backward."""

    def __init__(self, comm: Communicator) -> None:
        self.comm = comm

    def forward(self, x: Any) -> Any:
        return self.comm.allreduce(x)

    def backward(self, gy: Variable) -> Variable:
        return copy_to_tensor_parallel(gy, self.comm)


class GatherFromTensorParallel(Function):
    """y = concatenate(x of rank 0, ..., x of rank T-1) along the last axis; gx = this rank's block of gy."""

    def __init__(self, comm: Communicator) -> None:
        self.comm = comm

    def forward(self, x: Any) -> Any:
        if x.ndim == 0:
            raise ValueError("gather_from_tensor_parallel: needs an array with a feature axis, got a scalar")
        xp = get_array_module(x)
        # The communicator gathers along axis 0: bring the features there and back.
        gathered = self.comm.allgather(xp.ascontiguousarray(xp.moveaxis(x, -1, 0)))
        return xp.ascontiguousarray(xp.moveaxis(gathered, 0, -1))

    def backward(self, gy: Variable) -> Variable:
        return scatter_to_tensor_parallel(gy, self.comm)


class ScatterToTensorParallel(Function):
    """y = this rank's block of x along the last axis; gx = all-gather of the blocks of gy."""

    def __init__(self, comm: Communicator) -> None:
        self.comm = comm

    def forward(self, x: Any) -> Any:
        if x.ndim == 0:
            raise ValueError("scatter_to_tensor_parallel: needs an array with a feature axis, got a scalar")
        n = x.shape[-1]
        if n < self.comm.size:
            raise ValueError(f"scatter_to_tensor_parallel: {n} features cannot be split over "
                             f"{self.comm.size} ranks (each needs at least one); input shape {tuple(x.shape)}")
        start, stop = last_axis_block(n, self.comm)
        return x[..., start:stop].copy()

    def backward(self, gy: Variable) -> Variable:
        return gather_from_tensor_parallel(gy, self.comm)


def copy_to_tensor_parallel(x: Any, comm: Communicator) -> Variable:
    """Megatron's f: the identity forward, an all-reduce of the gradient backward.

    Put it where a replicated value enters computations that differ by rank
    (before a column-parallel matmul).
    """
    return CopyToTensorParallel(comm)(x)


def reduce_from_tensor_parallel(x: Any, comm: Communicator) -> Variable:
    """Megatron's g: the sum over ranks forward (all-reduce), the identity backward.

    Put it where the ranks' partial results become one replicated value
    (after a row-parallel matmul).
    """
    return ReduceFromTensorParallel(comm)(x)


def gather_from_tensor_parallel(x: Any, comm: Communicator) -> Variable:
    """The ranks' blocks of the last axis joined in rank order; backward keeps this rank's block.

    Shapes: (..., n_r) on rank r -> (..., n_0 + ... + n_{T-1}) on every rank.
    """
    return GatherFromTensorParallel(comm)(x)


def scatter_to_tensor_parallel(x: Any, comm: Communicator) -> Variable:
    """This rank's block of the last axis (``numpy.array_split``'s rule); backward all-gathers.

    Shapes: (..., n) on every rank -> (..., n_r) on rank r.
    """
    return ScatterToTensorParallel(comm)(x)


__all__ = [
    "CopyToTensorParallel", "ReduceFromTensorParallel", "GatherFromTensorParallel", "ScatterToTensorParallel",
    "copy_to_tensor_parallel", "reduce_from_tensor_parallel", "gather_from_tensor_parallel",
    "scatter_to_tensor_parallel",
]
