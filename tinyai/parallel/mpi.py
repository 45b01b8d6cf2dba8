"""MPI plumbing: loading mpi4py, and the communicator batch norm uses across ranks.

The MPI data-parallel executor (the ranks of ``mpiexec -n K`` as workers) is
``tinyai.parallel.executor.mpi.MpiExecutor``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from tinyai.backend import get_array_module


def load_mpi() -> Any:
    """The ``mpi4py.MPI`` module, or an ImportError that says what to install."""
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise ImportError("tinyai's MPI backend needs mpi4py and an MPI library: "
                          "pip install 'tinyai-numpy[mpi]' (installs mpi4py and mpich)") from error
    return MPI


def to_host(array: Any) -> np.ndarray:
    """A C-contiguous NumPy array with the values of ``array`` (a CuPy array is copied to the host)."""
    if get_array_module(array) is not np:
        array = array.get()
    return np.ascontiguousarray(array)


class MpiCommunicator:
    """``allreduce_sum`` over the ranks of an MPI communicator (TinyAI's Communicator protocol).

    Ints (Python or NumPy) are summed exactly as 64-bit integers and come back
    as the same type; floats as float64. Arrays are summed elementwise in
    their own dtype and shape; a CuPy array travels through a host copy and
    comes back on the GPU. ``calls`` counts the collectives made, so that a
    failed rank can tell whether its peers may be waiting inside one.

    >>> # in every rank of mpiexec -n 3:  MpiCommunicator(MPI.COMM_WORLD).allreduce_sum(2) == 6
    """

    def __init__(self, comm: Any) -> None:
        self.comm = comm
        self.calls = 0

    @property
    def rank(self) -> int:
        return self.comm.Get_rank()

    @property
    def size(self) -> int:
        return self.comm.Get_size()

    def allreduce(self, value: Any, op: str = "sum") -> Any:
        """The elementwise sum of ``value`` over all ranks; every rank gets the same result."""
        if op != "sum":
            raise ValueError(f"allreduce: this communicator only sums, got op={op!r}")
        return self.allreduce_sum(value)

    def allreduce_sum(self, value: Any) -> Any:
        """The elementwise sum of ``value`` over all ranks; every rank gets the same result."""
        MPI = load_mpi()
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
                and not hasattr(value, "dtype"):
            raise TypeError(f"MpiCommunicator.allreduce_sum: expected a number or an array, "
                            f"got {type(value).__name__}")
        self.calls += 1
        if isinstance(value, (int, float, np.number)):
            dtype = np.int64 if isinstance(value, (int, np.integer)) else np.float64
            total = np.zeros(1, dtype=dtype)
            self.comm.Allreduce(np.array([value], dtype=dtype), total, op=MPI.SUM)
            return type(value)(total[0].item()) if isinstance(value, (int, float)) else value.dtype.type(total[0])
        if value.dtype.kind not in "iuf":
            raise TypeError(f"MpiCommunicator.allreduce_sum: cannot sum an array of dtype {value.dtype}")
        host = to_host(value)
        total = np.empty_like(host)
        self.comm.Allreduce(host, total, op=MPI.SUM)
        xp = get_array_module(value)
        return total if xp is np else xp.asarray(total)


__all__ = ["MpiCommunicator", "load_mpi"]
