"""Executors: where the shards of a data-parallel step run (see ``executor.base``).

``make_executor(kind, model, loss, workers)`` starts one by name:

* "thread" — ``ThreadExecutor``: worker threads of this process;
* "process" — ``ProcessExecutor``: worker processes, shared memory;
* "mpi" — ``MpiExecutor``: the ranks of an ``mpiexec`` job (``workers`` is the job's size).
"""
from __future__ import annotations

from typing import Any

from tinyai.parallel.executor.base import Executor, WorkerContext, WorkerError

EXECUTORS = ("thread", "process", "mpi")


def make_executor(kind: str, model: Any, loss: Any, workers: int = 0, step_timeout: float | None = None) -> Executor:
    """Start the executor ``kind`` with ``workers`` replicas of ``model``."""
    if kind == "thread":
        from tinyai.parallel.executor.thread import ThreadExecutor

        return ThreadExecutor(model, loss, workers, step_timeout=step_timeout)
    if kind == "process":
        from tinyai.parallel.executor.process import ProcessExecutor

        return ProcessExecutor(model, loss, workers, step_timeout=step_timeout)
    if kind == "mpi":
        from tinyai.parallel.executor.mpi import MpiExecutor

        return MpiExecutor(model, loss)
    raise ValueError(f"make_executor: unknown executor {kind!r}; choose one of {EXECUTORS}")


__all__ = ["Executor", "WorkerContext", "WorkerError", "make_executor"]
