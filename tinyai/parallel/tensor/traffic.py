"""CountingCommunicator: a communicator that records what passes through it.

Wrap the tensor-parallel communicator in one to see what a split model
costs in communication: every collective and message is passed on to the
wrapped communicator and recorded as a ``Transfer`` (operation, payload
bytes this rank contributed, and the label in force, such as the layer that
asked for it).

>>> # log = CountingCommunicator(comm)
>>> # model = tensor_parallel(block, log)
>>> # with log.label("step"): ...forward and backward...
>>> # log.total_bytes()
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from tinyai.parallel.comm.base import Communicator


@dataclass
class Transfer:
    """One call: ``op`` ("allreduce", "allgather", ...), ``nbytes`` this rank handed over, ``label``."""

    op: str
    nbytes: int
    label: str


def _nbytes(value: Any) -> int:
    if value is None:
        return 0
    return int(getattr(value, "nbytes", np.asarray(value).nbytes))


class CountingCommunicator(Communicator):
    """``comm`` with a record of every call (``transfers``); use it wherever ``comm`` would go."""

    def __init__(self, comm: Communicator) -> None:
        self.inner = comm
        self.transfers: list[Transfer] = []
        self._label = ""

    @contextlib.contextmanager
    def label(self, text: str) -> Iterator[None]:
        """Record the calls made inside the block under ``text``."""
        previous, self._label = self._label, text
        try:
            yield
        finally:
            self._label = previous

    def _record(self, op: str, value: Any) -> None:
        self.transfers.append(Transfer(op, _nbytes(value), self._label))

    def total_bytes(self, op: str | None = None) -> int:
        """Payload bytes this rank handed to ``op`` calls (to every call when None)."""
        return sum(t.nbytes for t in self.transfers if op is None or t.op == op)

    def clear(self) -> None:
        self.transfers.clear()

    @property
    def rank(self) -> int:
        return self.inner.rank

    @property
    def size(self) -> int:
        return self.inner.size

    def allreduce(self, array: Any, op: str = "sum") -> Any:
        self._record("allreduce", array)
        return self.inner.allreduce(array, op)

    def allgather(self, array: Any) -> Any:
        self._record("allgather", array)
        return self.inner.allgather(array)

    def broadcast(self, array: Any, root: int = 0) -> Any:
        self._record("broadcast", array if self.rank == root else None)
        return self.inner.broadcast(array, root)

    def reduce_scatter(self, array: Any, op: str = "sum") -> Any:
        self._record("reduce_scatter", array)
        return self.inner.reduce_scatter(array, op)

    def send(self, array: Any, dest: int, tag: int = 0) -> None:
        self._record("send", array)
        self.inner.send(array, dest, tag)

    def recv(self, source: int, tag: int = 0) -> Any:
        self._record("recv", None)
        return self.inner.recv(source, tag)

    def recv_any(self, tag: int = 0) -> tuple[int, Any]:
        self._record("recv", None)
        return self.inner.recv_any(tag)

    def barrier(self) -> None:
        self._record("barrier", None)
        self.inner.barrier()

    def split(self, color: int | None, key: int = 0) -> Communicator | None:
        return self.inner.split(color, key)


__all__ = ["CountingCommunicator", "Transfer"]
