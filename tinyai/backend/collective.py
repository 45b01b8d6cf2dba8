"""The communicator in force: how batch normalisation reaches the other shards of a data-parallel step.

Most layers see one example at a time, so a data-parallel worker needs nothing
from the others until the gradients are averaged. Batch normalisation is the
exception: its statistics are taken over the whole batch. A worker that holds
only a shard of the batch therefore asks the *communicator* in force for the
sum of a per-shard quantity over all shards (an "all-reduce"). Outside data
parallelism there is no communicator and every computation stays local.

The communicator lives in a context variable, so it belongs to the worker
thread that installed it. This layer only names what batch normalisation
needs (the ``Communicator`` protocol below); the communicators themselves,
one per transport, live in ``tinyai.parallel.comm``.
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import Any, Iterator, Protocol


class Communicator(Protocol):
    """What a layer of a data-parallel step may ask of its peers (``tinyai.parallel.Communicator`` has more)."""

    def allreduce(self, array: Any, op: str = "sum") -> Any:
        """``array`` combined elementwise over every worker (op="sum": added); every worker gets the same result."""


_communicator: contextvars.ContextVar[Communicator | None] = contextvars.ContextVar(
    "tinyai_communicator", default=None)


def get_communicator() -> Communicator | None:
    """The communicator of the data-parallel step running here, or None."""
    return _communicator.get()


@contextlib.contextmanager
def using_communicator(communicator: Communicator | None) -> Iterator[None]:
    """Make ``communicator`` the one in force inside the block (this thread only)."""
    token = _communicator.set(communicator)
    try:
        yield
    finally:
        _communicator.reset(token)
