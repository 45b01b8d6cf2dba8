"""ProcessGrid: the ranks of a job arranged as data-parallel replicas of a model-parallel model.

Hybrid parallelism combines the two ways of splitting training work. With
D x M ranks, the model is split M ways (tensor parallelism: every layer's
matrices; or pipeline parallelism: runs of layers), and D such split models
are trained data-parallel on different shards of each batch. For D = 2,
M = 2 (rank = d * M + m)::

                 model part 0   model part 1
    replica 0      rank 0         rank 1        <- a model group (tensor or pipeline communicator)
    replica 1      rank 2         rank 3
                     ^              ^
                     data groups (data communicator): the ranks that hold the same part

Model-parallel ranks are neighbours (0 and 1), as on a cluster where the
chatty model-parallel traffic stays inside one machine and only the
gradient all-reduce of the data groups crosses between machines.

Each rank gets two sub-communicators, made with ``comm.split``:

* ``grid.tensor`` or ``grid.pipeline`` (``grid.model``): the M ranks of its
  replica, which share one model;
* ``grid.data``: the D ranks that hold the same part of the model and
  average its gradients.
"""
from __future__ import annotations

from typing import Any

from tinyai.backend.settings import is_int
from tinyai.parallel.comm.base import Communicator

KINDS = ("tensor", "pipeline")


class ProcessGrid:
    """``comm``'s ranks as ``data`` replicas of a model split ``tensor`` or ``pipeline`` ways.

    Args:
        comm: the communicator of all ranks (from ``spmd`` or ``mpi_world()``);
            its size must be ``data * tensor`` (or ``data * pipeline``).
        data: D, the number of data-parallel replicas.
        tensor: T, the tensor-parallel ranks per replica; or
        pipeline: P, the pipeline stages per replica (give exactly one of the two).

    A collective call (it splits ``comm``): every rank makes it, with the
    same arguments.

    Attributes:
        data_rank, data_size: this rank's replica and the number of replicas.
        model_rank, model_size: this rank's part of the model, and the number of parts.
        model: the communicator of this rank's replica (its M ranks).
        data: the communicator of the ranks that hold this rank's part (D ranks).
        tensor, pipeline: ``model`` under its kind's name; the other is None.

    >>> # in each of 4 ranks:  grid = ProcessGrid(comm, data=2, tensor=2)
    >>> # rank 3: grid.data_rank == 1, grid.model_rank == 1
    """

    def __init__(self, comm: Communicator, data: int, tensor: int | None = None,
                 pipeline: int | None = None) -> None:
        if not isinstance(comm, Communicator):
            raise TypeError(f"ProcessGrid: comm must be a tinyai Communicator, got {type(comm).__name__}")
        if (tensor is None) == (pipeline is None):
            raise ValueError(f"ProcessGrid: give exactly one of tensor= and pipeline= (got tensor={tensor!r}, "
                             f"pipeline={pipeline!r})")
        kind, parts = ("tensor", tensor) if tensor is not None else ("pipeline", pipeline)
        for name, value in (("data", data), (kind, parts)):
            if not is_int(value) or value < 1:
                raise ValueError(f"ProcessGrid: {name} must be an int >= 1, got {value!r}")
        data, parts = int(data), int(parts)
        if data * parts != comm.size:
            raise ValueError(f"ProcessGrid: data={data} x {kind}={parts} needs {data * parts} ranks, but the "
                             f"communicator has {comm.size}")
        self.comm = comm
        self.kind = kind
        self.data_size, self.model_size = data, parts
        self.data_rank, self.model_rank = divmod(comm.rank, parts)
        # Two collective splits, in the same order on every rank.
        self.model: Communicator = comm.split(self.data_rank, key=self.model_rank)
        self.data: Communicator = comm.split(self.model_rank, key=self.data_rank)

    @property
    def tensor(self) -> Communicator | None:
        """The tensor-parallel communicator (this rank's replica), or None in a pipeline grid."""
        return self.model if self.kind == "tensor" else None

    @property
    def pipeline(self) -> Communicator | None:
        """The pipeline communicator (this rank's replica, stage k = rank k), or None in a tensor grid."""
        return self.model if self.kind == "pipeline" else None

    @property
    def rank(self) -> int:
        return self.comm.rank

    @property
    def size(self) -> int:
        return self.comm.size

    def describe(self) -> str:
        """The grid as a table of ranks: one row per replica, one column per model part."""
        width = len(str(self.size - 1)) + 5
        head = "".join(f"{self.kind} {m}".rjust(width + 4) for m in range(self.model_size))
        rows = [f"{'':10}{head}"]
        for d in range(self.data_size):
            cells = "".join(f"rank {d * self.model_size + m}".rjust(width + 4) for m in range(self.model_size))
            rows.append(f"replica {d:<2}{cells}")
        return "\n".join(rows)

    def __repr__(self) -> str:
        return (f"ProcessGrid(rank {self.rank} of {self.size}: replica {self.data_rank} of {self.data_size}, "
                f"{self.kind} part {self.model_rank} of {self.model_size})")


def check_grid(grid: Any, where: str) -> ProcessGrid:
    if not isinstance(grid, ProcessGrid):
        raise TypeError(f"{where}: expected a ProcessGrid, got {type(grid).__name__}")
    return grid


__all__ = ["ProcessGrid"]
