"""The Communicator: how the ranks of a parallel program talk to each other.

A parallel program runs the same function on ``size`` workers called *ranks*
(numbered 0 .. size-1). Each rank holds its own arrays; a *communicator*
is the only way they exchange numbers. Every kind of distributed training is
built from a handful of exchanges, the same whatever carries the bytes
(threads sharing memory, processes sharing memory segments, or MPI across
machines). With four ranks holding ``a``, ``b``, ``c``, ``d``:

| operation | every rank gets | used for |
| --- | --- | --- |
| `allreduce(x)` | a + b + c + d (or max, min, prod, mean) | averaging gradients; batch-norm statistics over all shards |
| `allgather(x)` | concatenate([a, b, c, d]) along axis 0 | the predictions of every shard |
| `broadcast(x, root=1)` | b, the root's array | one rank's initial weights, for everyone |
| `reduce_scatter(x)` | block r (along axis 0) of a + b + c + d | the first half of a ring all-reduce; sharded optimizer state |
| `send(x, dest)` / `recv(source)` | one array from one rank to another (`recv_any()`: from whoever sends first) | pipelines, parameter servers, rings |
| `barrier()` | nothing: it returns when every rank has arrived | "everyone has finished writing" |
| `split(color, key)` | a smaller communicator of the ranks that passed the same color | rows and columns of a process grid (tensor x data parallel) |

Two rules make results reproducible:

* **Same bits on every rank.** Reductions are computed in rank order,
  ``((a + b) + c) + d``, never in whatever order messages happen to arrive
  (floating-point addition is not associative). Every rank therefore holds
  exactly the same result, so replicas that apply the same update stay
  identical, and the three transports agree bit for bit.
* **Collective means everyone.** Every rank of a communicator must call the
  same collectives in the same order (as in MPI). A rank that does not
  arrive is a failure: after ``timeout`` seconds, or as soon as its death is
  known, the others raise ``CommunicatorError`` naming it, instead of
  waiting for ever.

Values may be Python numbers, NumPy scalars, 0-d or larger arrays, on the
host or on a device (CuPy); each result comes back in the form it went in
(a Python float stays a Python float, a device array comes back on the
device). Transports that need host memory copy device arrays there and back.
"""
from __future__ import annotations

import abc
from typing import Any

#: The reductions ``allreduce`` and ``reduce_scatter`` know.
REDUCE_OPS = ("sum", "prod", "max", "min", "mean")


class CommunicatorError(RuntimeError):
    """A collective or message could not complete: a peer failed, died, or did not arrive in time.

    ``op`` names the operation, ``rank`` the peer at fault (None when it is
    not known which one).
    """

    def __init__(self, message: str, op: str = "", rank: int | None = None) -> None:
        super().__init__(message)
        self.op = op
        self.rank = rank

    def __reduce__(self) -> tuple:  # keep op and rank when the error travels between processes
        return (type(self), (str(self), self.op, self.rank))


class Communicator(abc.ABC):
    """What one rank can ask of the others. One implementation per transport.

    ``ThreadCommunicator`` (threads of one process), ``ProcessCommunicator``
    (processes of one machine, over shared memory) and ``MpiCommunicator``
    (processes anywhere, over MPI) implement it; code written against this
    interface runs on all three, e.g. under ``tinyai.parallel.spmd`` or
    ``mpiexec``.
    """

    @property
    @abc.abstractmethod
    def rank(self) -> int:
        """This rank's number, 0 .. size-1."""

    @property
    @abc.abstractmethod
    def size(self) -> int:
        """How many ranks the communicator has."""

    @abc.abstractmethod
    def allreduce(self, array: Any, op: str = "sum") -> Any:
        """Combine ``array`` elementwise over every rank; every rank gets the same result.

        ``op`` is "sum", "prod", "max", "min" or "mean" (the sum divided by
        ``size``; integer inputs give a float64 mean). Every rank must pass
        the same shape and dtype. The reduction runs in rank order, so the
        result has the same bits on every rank.

        >>> # ranks hold [1., 2.], [10., 20.], [100., 200.]
        >>> # comm.allreduce(x)            -> [111., 222.] on every rank
        >>> # comm.allreduce(x, op="max")  -> [100., 200.]
        """

    @abc.abstractmethod
    def allgather(self, array: Any) -> Any:
        """Every rank's ``array`` concatenated along axis 0, in rank order; every rank gets it all.

        The first dimension may differ between ranks (uneven shards); the
        other dimensions and the dtype must agree. A scalar or 0-d array
        counts as one row, so scalars gather into shape ``(size,)``.

        >>> # rank 0 holds [[1, 2]], rank 1 holds [[3, 4], [5, 6]]
        >>> # comm.allgather(x) -> [[1, 2], [3, 4], [5, 6]] on both ranks
        """

    @abc.abstractmethod
    def broadcast(self, array: Any, root: int = 0) -> Any:
        """Rank ``root``'s ``array`` on every rank.

        Only the root's argument is read; the others may pass None (their
        result then lives where the root's array does: host or device), or
        an array, whose device the result follows.
        """

    @abc.abstractmethod
    def reduce_scatter(self, array: Any, op: str = "sum") -> Any:
        """Rank r's block of ``allreduce(array, op)``, split along axis 0.

        With n rows and s ranks, blocks have n // s rows and the first
        n % s ranks get one row more (as ``numpy.array_split``): 10 rows on
        3 ranks give blocks of 4, 3 and 3 rows. A rank whose block is empty
        gets an array with 0 rows. ``allgather(reduce_scatter(x))`` equals
        ``allreduce(x)``: that is how a ring all-reduce is built.
        """

    @abc.abstractmethod
    def send(self, array: Any, dest: int, tag: int = 0) -> None:
        """Send a copy of ``array`` to rank ``dest``.

        Returns once the array has been copied (the caller may change it
        afterwards); it does not wait for ``dest`` to receive, so every rank
        of a ring may send before it receives. Messages from one rank to
        another with the same tag arrive in the order they were sent.
        """

    @abc.abstractmethod
    def recv(self, source: int, tag: int = 0) -> Any:
        """The next array that rank ``source`` sent here with ``tag``; waits for it.

        A scalar arrives as a 0-d NumPy array; a device array arrives on the
        device.
        """

    @abc.abstractmethod
    def recv_any(self, tag: int = 0) -> tuple[int, Any]:
        """(source, array) of the next message sent here with ``tag`` by any rank; waits for one.

        For a rank that serves whoever asks first (a parameter server).
        Messages from one source still arrive in the order they were sent.
        """

    @abc.abstractmethod
    def barrier(self) -> None:
        """Return only when every rank of the communicator has called ``barrier``."""

    @abc.abstractmethod
    def split(self, color: int | None, key: int = 0) -> "Communicator | None":
        """Partition the ranks into sub-communicators (MPI_Comm_split); a collective call.

        Ranks that pass the same ``color`` (an int >= 0) form one new
        communicator, ranked by ``key`` and then by their rank here. A rank
        that passes None joins none and gets None. For a 2 x 3 process grid,
        ``comm.split(comm.rank // 3)`` gives the rows and
        ``comm.split(comm.rank % 3)`` the columns.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rank={self.rank}, size={self.size})"
