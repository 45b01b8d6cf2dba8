"""MPI plumbing: loading mpi4py, and the communicator batch norm uses across ranks.

Both live in ``tinyai.parallel.comm.mpi`` (the MPI transport of the
Communicator interface) and are re-exported here.

The MPI data-parallel executor (the ranks of ``mpiexec -n K`` as workers) is
``tinyai.parallel.executor.mpi.MpiExecutor``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from tinyai.backend import get_array_module
from tinyai.parallel.comm.mpi import MpiCommunicator, load_mpi


def to_host(array: Any) -> np.ndarray:
    """A C-contiguous NumPy array with the values of ``array`` (a CuPy array is copied to the host)."""
    if get_array_module(array) is not np:
        array = array.get()
    return np.ascontiguousarray(array)


__all__ = ["MpiCommunicator", "load_mpi"]
