"""spmd: run one function on every rank, like an ``mpiexec`` launch inside one program.

SPMD (single program, multiple data) is how distributed programs are
written: every rank runs the *same* code, and the rank number decides which
part of the data it works on. ``spmd(fn, 4)`` starts four ranks, calls
``fn(comm)`` on each with its own communicator, and returns the four
results in rank order:

>>> import numpy as np
>>> from tinyai.parallel import spmd
>>> def total(comm):
...     return comm.allreduce(np.array([comm.rank + 1.0]))
>>> [float(x[0]) for x in spmd(total, 3)]
[6.0, 6.0, 6.0]

The same ``fn`` runs unchanged under ``mpiexec -n 3`` with
``fn(tinyai.parallel.mpi_world())``.

If any rank raises, the others are released from whatever collective they
wait in (they see ``CommunicatorError``), every rank is ended, and spmd
raises ``SpmdError`` naming the rank that failed first, with its original
traceback in the message.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
import traceback
from typing import Any, Callable, Sequence

from tinyai.parallel.comm.base import Communicator, CommunicatorError

BACKENDS = ("thread", "process")


class SpmdError(RuntimeError):
    """A rank of an ``spmd`` run failed. ``rank`` says which; ``cause`` is its exception (when it could travel)."""

    def __init__(self, message: str, rank: int, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.rank = rank
        self.cause = cause


def spmd(fn: Callable[..., Any], world_size: int, backend: str = "thread", timeout: float = 60.0,
         args: Sequence[Any] = ()) -> list[Any]:
    """Run ``fn(comm, *args)`` on ``world_size`` ranks; return the results in rank order.

    Args:
        fn: the program of one rank. With ``backend="process"`` it must be
            picklable (a function defined at the top level of a module) and
            so must ``args`` and its results.
        world_size: how many ranks.
        backend: "thread" (threads of this process; ``ThreadCommunicator``)
            or "process" (fresh processes sharing memory;
            ``ProcessCommunicator``).
        timeout: seconds a rank waits in one collective or ``recv`` for a
            peer before naming it as failed.
        args: extra positional arguments for ``fn``, the same on every rank.

    Raises:
        SpmdError: a rank raised (or died); the message names it and holds
            its traceback. The other ranks have been ended.
    """
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"spmd: world_size must be an int >= 1, got {world_size!r}")
    if backend == "thread":
        return _run_threads(fn, world_size, timeout, tuple(args))
    if backend == "process":
        from tinyai.parallel.comm.process import run_processes

        return run_processes(fn, world_size, timeout, tuple(args))
    raise ValueError(f"spmd: unknown backend {backend!r}; choose one of {BACKENDS}")


def _run_threads(fn: Callable[..., Any], size: int, timeout: float, args: tuple) -> list[Any]:
    from tinyai.parallel.comm.thread import ThreadWorld

    world = ThreadWorld(size, timeout)
    results: list[Any] = [None] * size
    failures: list[Failure] = []  # in the order they happened
    lock = threading.Lock()

    def run(rank: int) -> None:
        try:
            results[rank] = fn(world.communicator(rank), *args)
        except BaseException as exc:  # noqa: BLE001 - every failure is reported to the caller
            text = "".join(traceback.format_exception(exc))
            with lock:
                failures.append(Failure(rank, exc, text, isinstance(exc, CommunicatorError)))
            world.abort(rank, f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=run, args=(r,), name=f"tinyai-spmd-rank-{r}", daemon=True)
               for r in range(size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise first_failure(failures).error() from first_failure(failures).exception
    return results


@dataclass
class Failure:
    """One rank's failure: its exception (or a summary of it, from another process) and traceback text.

    ``secondary`` marks a CommunicatorError: a rank released because a peer failed.
    """

    rank: int
    exception: BaseException | None
    traceback: str
    secondary: bool = False
    summary: str = ""

    def error(self) -> SpmdError:
        summary = self.summary or f"{type(self.exception).__name__}: {self.exception}"
        text = self.traceback.rstrip()
        return SpmdError(f"spmd: rank {self.rank} failed: {summary}\n--- traceback of rank {self.rank} ---\n{text}",
                         self.rank, self.exception)


def first_failure(failures: list[Failure]) -> Failure:
    """The failure that caused the others: the first that is not a released peer's CommunicatorError."""
    for failure in failures:
        if not failure.secondary:
            return failure
    return failures[0]


__all__ = ["spmd", "SpmdError"]
