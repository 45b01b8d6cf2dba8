"""Communicator for the ranks of an MPI job: processes on one machine or many.

MPI (the Message Passing Interface) is the standard way to run one program
on many machines: ``mpiexec -n 4 python train.py`` starts four processes
(ranks) that can exchange messages. mpi4py is its Python binding. This
transport turns every operation into MPI calls on raw bytes:

* every collective first exchanges a small header per rank (shape, dtype),
  so that ranks that disagree get a clear error instead of garbage;
* ``allreduce`` gathers every rank's array on rank 0, which reduces them in
  rank order and broadcasts the result (MPI's own reductions may combine
  ranks in any order; this way the bits equal the other transports');
  ``reduce_scatter`` scatters the blocks instead of broadcasting;
* ``allgather`` and ``broadcast`` are MPI's ``Allgatherv`` and ``Bcast``;
* ``send`` is non-blocking: the array's bytes are copied behind its
  header (shape, dtype) into one buffer, handed to MPI's buffer ``Isend``
  (no pickling: a large array costs one memory copy on each side); ``recv``
  waits for a matching message with a matched probe, which also tells its
  size, and receives the buffer straight into new memory;
* ``split`` is ``MPI_Comm_split``.

Every wait is a loop that gives up after ``timeout`` seconds with
``CommunicatorError``: MPI cannot tell which rank is missing, so the message
says which operation timed out. A rank that raises should end the whole job:
``mpi_world()`` arranges that (an uncaught exception logs its traceback
with the rank, then ``MPI_Abort`` ends every rank and mpiexec exits non-zero).
"""
from __future__ import annotations

import logging
import sys
import time
from typing import Any

import numpy as np

from tinyai.parallel.comm.base import Communicator, CommunicatorError
from tinyai.parallel.comm.payload import (
    HEADER_BYTES,
    Payload,
    as_bytes,
    block_bounds,
    check_color,
    check_op,
    check_rank,
    check_same,
    check_tag,
    check_timeout,
    contiguous,
    finish_mean,
    from_host,
    read_header,
    reduce_in_rank_order,
    write_header,
)

logger = logging.getLogger(__name__)


def load_mpi() -> Any:
    """The ``mpi4py.MPI`` module, or an ImportError that says what to install."""
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise ImportError("tinyai's MPI backend needs mpi4py and an MPI library: "
                          "pip install 'tinyai-numpy[mpi]' (installs mpi4py and mpich)") from error
    return MPI


class MpiCommunicator(Communicator):
    """A Communicator over an mpi4py communicator (``MPI.COMM_WORLD`` if none is given).

    ``comm`` is the mpi4py communicator underneath; ``calls`` counts the
    collectives made (a failed rank uses it to tell whether peers may be
    waiting inside one). Usually obtained with ``tinyai.parallel.mpi_world()``.
    """

    def __init__(self, comm: Any = None, timeout: float = 300.0) -> None:
        self.comm = load_mpi().COMM_WORLD if comm is None else comm
        self.timeout = check_timeout(timeout, "MpiCommunicator")
        self.calls = 0
        self._sends: list = []  # (request, buffer) of messages on their way

    @property
    def rank(self) -> int:
        return self.comm.Get_rank()

    @property
    def size(self) -> int:
        return self.comm.Get_size()

    # --- waiting ----------------------------------------------------------------------------

    def _complete(self, request: Any, op: str) -> None:
        """Wait for a non-blocking MPI call, giving up after ``timeout`` seconds."""
        deadline = time.monotonic() + self.timeout
        pause = 0.0
        while not request.Test():
            if time.monotonic() > deadline:
                raise CommunicatorError(f"{op} on rank {self.rank}: the other ranks did not all arrive within "
                                        f"{self.timeout:g} s (MPI cannot tell which)", op)
            time.sleep(pause)
            pause = min(0.001, pause + 0.00005)  # poll fast first: most collectives end within microseconds

    def _specs(self, op: str, host: np.ndarray | None, device: int) -> list:
        """Every rank's header: (shape, dtype, bytes, device) of what it passed, or None."""
        MPI = load_mpi()
        self.calls += 1
        header = np.zeros(HEADER_BYTES, dtype=np.uint8)
        write_header(header, host, device)
        headers = np.empty((self.size, HEADER_BYTES), dtype=np.uint8)
        self._complete(self.comm.Iallgather([header, MPI.BYTE], [headers, MPI.BYTE]), op)
        return [read_header(h) for h in headers]

    # --- collectives --------------------------------------------------------------------------

    def _gather_on_root(self, op_name: str, payload: Payload) -> tuple[np.ndarray, list[np.ndarray] | None]:
        """(this rank's host array, every rank's array on rank 0 / None elsewhere), after checking specs."""
        MPI = load_mpi()
        host = payload.host()
        specs = self._specs(op_name, host, payload.device)
        check_same(op_name, [(s.shape, s.dtype.str) for s in specs])
        everything = np.empty((self.size, host.nbytes), dtype=np.uint8) if self.rank == 0 else None
        receive = [everything, MPI.BYTE] if self.rank == 0 else None
        self._complete(self.comm.Igather([as_bytes(host), MPI.BYTE], receive, root=0), op_name)
        if self.rank != 0:
            return host, None
        return host, [row.view(host.dtype).reshape(host.shape) for row in everything]

    def allreduce(self, array: Any, op: str = "sum") -> Any:
        MPI = load_mpi()
        payload = Payload(array, "allreduce")
        check_op(op, "allreduce", payload.dtype)
        host, arrays = self._gather_on_root("allreduce", payload)
        total = reduce_in_rank_order(arrays, "sum" if op == "mean" else op, np) if arrays else np.empty_like(host)
        total = contiguous(total)
        self._complete(self.comm.Ibcast([as_bytes(total), MPI.BYTE], root=0), "allreduce")
        return payload.give_back(finish_mean(total, self.size) if op == "mean" else total)

    def reduce_scatter(self, array: Any, op: str = "sum") -> Any:
        MPI = load_mpi()
        payload = Payload(array, "reduce_scatter")
        check_op(op, "reduce_scatter", payload.dtype)
        if payload.array.ndim == 0:
            raise ValueError("reduce_scatter: needs an array with at least one dimension to split, got a scalar")
        host, arrays = self._gather_on_root("reduce_scatter", payload)
        row_bytes = host.nbytes // host.shape[0] if host.shape[0] else 0
        bounds = block_bounds(host.shape[0], self.size)
        counts = [(stop - start) * row_bytes for start, stop in bounds]
        offsets = [start * row_bytes for start, _ in bounds]
        start, stop = bounds[self.rank]
        block = np.empty((stop - start,) + host.shape[1:], dtype=host.dtype)
        send = None
        if arrays is not None:
            total = contiguous(reduce_in_rank_order(arrays, "sum" if op == "mean" else op, np))
            send = [as_bytes(total), counts, offsets, MPI.BYTE]
        self._complete(self.comm.Iscatterv(send, [as_bytes(block), MPI.BYTE], root=0), "reduce_scatter")
        return payload.give_back_array(finish_mean(block, self.size) if op == "mean" else block)

    def allgather(self, array: Any) -> Any:
        MPI = load_mpi()
        payload = Payload(array, "allgather")
        host = payload.host()
        host = host.reshape(1) if host.ndim == 0 else host
        specs = self._specs("allgather", host, payload.device)
        check_same("allgather", [(s.shape, s.dtype.str) for s in specs], trailing_only=True)
        counts = [s.nbytes for s in specs]
        offsets = np.cumsum([0] + counts)[:-1].tolist()
        result = np.empty((sum(s.shape[0] for s in specs),) + host.shape[1:], dtype=host.dtype)
        self._complete(self.comm.Iallgatherv([as_bytes(host), MPI.BYTE], [as_bytes(result), counts, offsets,
                                                                            MPI.BYTE]), "allgather")
        return payload.give_back_array(result)

    def broadcast(self, array: Any, root: int = 0) -> Any:
        MPI = load_mpi()
        root = check_rank(root, self.size, "root", "broadcast")
        payload = Payload(array, "broadcast") if array is not None or self.rank == root else None
        self.calls += 1
        header = np.zeros(HEADER_BYTES, dtype=np.uint8)
        host = payload.host() if self.rank == root else None
        write_header(header, host, payload.device if host is not None else 0)
        self._complete(self.comm.Ibcast([header, MPI.BYTE], root=root), "broadcast")
        spec = read_header(header)
        result = host.copy() if host is not None else np.empty(spec.shape, dtype=spec.dtype)
        self._complete(self.comm.Ibcast([as_bytes(result), MPI.BYTE], root=root), "broadcast")
        if payload is not None:
            return payload.give_back(result)
        return from_host(result, spec.device)

    def barrier(self) -> None:
        self.calls += 1
        self._complete(self.comm.Ibarrier(), "barrier")

    # --- messages ----------------------------------------------------------------------------

    def send(self, array: Any, dest: int, tag: int = 0) -> None:
        MPI = load_mpi()
        dest = check_rank(dest, self.size, "dest", "send")
        tag = check_tag(tag, "send")
        payload = Payload(array, "send")
        host = payload.host()
        # One message: the header, then the array's bytes. The copy lets the caller change its array
        # as soon as send returns (the ring overwrites chunks it has sent) while MPI still reads ours.
        message = np.empty(HEADER_BYTES + host.nbytes, dtype=np.uint8)
        write_header(message[:HEADER_BYTES], host, payload.device)
        message[HEADER_BYTES:] = as_bytes(host)
        self._sends = [(request, buffer) for request, buffer in self._sends if not request.Test()]
        # The buffer stays referenced with its request until MPI is done with it.
        self._sends.append((self.comm.Isend([message, MPI.BYTE], dest, tag), message))

    def recv(self, source: int, tag: int = 0) -> Any:
        source = check_rank(source, self.size, "source", "recv")
        return self._receive(source, check_tag(tag, "recv"), "recv")[1]

    def recv_any(self, tag: int = 0) -> tuple[int, Any]:
        return self._receive(None, check_tag(tag, "recv_any"), "recv_any")

    def _receive(self, source: int | None, tag: int, op: str) -> tuple[int, Any]:
        """(sender, array) of the first matching message; polls MPI's matched probe until the deadline."""
        MPI = load_mpi()
        status = MPI.Status()
        deadline = time.monotonic() + self.timeout
        pause = 0.0
        while True:
            message = self.comm.improbe(source=MPI.ANY_SOURCE if source is None else source, tag=tag,
                                        status=status)
            if message is not None:
                break
            if time.monotonic() > deadline:
                sender = "any rank" if source is None else f"rank {source}"
                raise CommunicatorError(f"{op} on rank {self.rank}: nothing from {sender} (tag {tag}) within "
                                        f"{self.timeout:g} s", op, source)
            time.sleep(pause)
            pause = min(0.001, pause + 0.00005)
        # The matched probe reserved this message for us (no other receive can take it) and knows its size.
        buffer = np.empty(status.Get_count(MPI.BYTE), dtype=np.uint8)
        message.Recv([buffer, MPI.BYTE])
        spec = read_header(buffer[:HEADER_BYTES])
        # HEADER_BYTES is a multiple of every itemsize, so the view of the values is aligned.
        array = buffer[HEADER_BYTES:].view(spec.dtype).reshape(spec.shape)
        return status.Get_source(), from_host(array, spec.device)

    # --- sub-communicators -------------------------------------------------------------------

    def split(self, color: int | None, key: int = 0) -> "MpiCommunicator | None":
        MPI = load_mpi()
        check_color(color, key)
        self.calls += 1
        sub = self.comm.Split(MPI.UNDEFINED if color is None else int(color), int(key))
        if sub == MPI.COMM_NULL:
            return None
        return MpiCommunicator(sub, self.timeout)

    def abort(self, code: int = 1) -> None:
        """End every rank of the job at once (``MPI_Abort``); mpiexec then exits with a non-zero status."""
        for handler in logging.getLogger().handlers + [logging.lastResort]:
            if handler is not None:
                handler.flush()
        self.comm.Abort(code)


_world: MpiCommunicator | None = None


def mpi_world(timeout: float = 300.0, abort_on_error: bool = True) -> MpiCommunicator:
    """The communicator of every rank of this MPI job (``MPI.COMM_WORLD``, duplicated once).

    Run a script with ``mpiexec -n 4 python script.py`` and call ``fn(mpi_world())``
    in it: the same ``fn(comm)`` that ``spmd`` runs on threads or processes.

    With ``abort_on_error`` (the default), an exception that escapes on any
    rank is logged with the rank's number and then ends the whole job
    (``MPI_Abort``), so the other ranks do not wait for it for ever. The
    first call is collective (every rank must make it); later calls return
    the same communicator and ignore their arguments.
    """
    global _world
    if _world is None:
        MPI = load_mpi()
        _world = MpiCommunicator(MPI.COMM_WORLD.Dup(), timeout)
        if abort_on_error:
            _install_abort_hook(_world)
    return _world


def _install_abort_hook(world: MpiCommunicator) -> None:
    previous = sys.excepthook

    def abort_the_job(kind: type, value: BaseException, tb: Any) -> None:
        previous(kind, value, tb)  # the traceback, as Python would show it
        logger.critical("rank %d of %d failed (%s: %s); ending every rank of the MPI job", world.rank, world.size,
                        kind.__name__, value)
        sys.stderr.flush()
        world.abort(1)

    sys.excepthook = abort_the_job
