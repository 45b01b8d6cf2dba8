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

The two backends:

* "thread": the ranks are threads of this process (``ThreadWorld``). Cheap
  to start; NumPy releases the interpreter lock in large array operations,
  so ranks do compute at once. A thread cannot be killed: a rank that
  neither returns nor talks keeps spmd waiting (ranks that wait in the
  communicator are released as soon as a peer fails).
* "process": each rank is a fresh Python process started with 'spawn'
  (``ProcessWorld``), so ``fn``, ``args`` and the results must be picklable:
  ``fn`` defined at the top level of a module, and a script that calls spmd
  must keep its own code under ``if __name__ == "__main__":`` (every new
  process imports the script's module to find ``fn``). The ranks start
  together (start-up does not count against ``timeout``). A rank that dies
  (a crash, a kill) is named as failed at once. Afterwards no process and no
  shared-memory segment is left behind, also when a rank failed, and a rank
  whose parent dies frees the shared memory and exits.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from multiprocessing import shared_memory
from multiprocessing.connection import wait
from typing import Any, Callable, Sequence

from tinyai.backend.settings import is_int
from tinyai.parallel.comm.base import CommunicatorError
from tinyai.parallel.comm.payload import check_timeout
from tinyai.parallel.comm.process import LEADER_GRACE, ProcessWorld

BACKENDS = ("thread", "process")
STARTUP_SECONDS = 120.0  # how long the ranks of the process backend may take to start


class SpmdError(RuntimeError):
    """A rank of an ``spmd`` run failed. ``rank`` says which; ``cause`` is its exception (when it could travel)."""

    def __init__(self, message: str, rank: int, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.rank = rank
        self.cause = cause

    def __reduce__(self) -> tuple:
        return (type(self), (str(self), self.rank, self.cause))


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
    if not is_int(world_size) or world_size < 1:
        raise ValueError(f"spmd: world_size must be an int >= 1, got {world_size!r}")
    timeout = check_timeout(timeout, "spmd")
    if backend == "thread":
        return _run_threads(fn, world_size, timeout, tuple(args))
    if backend == "process":
        return _run_processes(fn, world_size, timeout, tuple(args))
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
    try:
        for thread in threads:
            thread.join()
    except BaseException:  # Ctrl-C: release every rank that waits in the communicator
        world.abort(None, "spmd was interrupted")
        raise
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
        message = f"spmd: rank {self.rank} failed: {summary}"
        if self.traceback:
            message += f"\n--- traceback of rank {self.rank} ---\n{self.traceback.rstrip()}"
        return SpmdError(message, self.rank, self.exception)


def first_failure(failures: list[Failure]) -> Failure:
    """The failure that caused the others: the first that is not a released peer's CommunicatorError."""
    for failure in failures:
        if not failure.secondary:
            return failure
    return failures[0]



def _rank_main(fn: Callable, args: tuple, world: ProcessWorld, rank: int, conn: Any) -> None:
    """One rank of ``spmd(backend="process")``: run fn, send back its result or its failure."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _watch_parent(world)
    failed = False
    try:
        comm = world.communicator(rank)
        # Start together: a rank's timeout should not count another's interpreter start-up.
        comm._sync("the start of spmd", max(world.timeout, STARTUP_SECONDS))  # noqa: SLF001
        message: tuple = ("ok", fn(comm, *args))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
        failed = True
        world.abort(rank, f"{type(exc).__name__}: {exc}")
        try:
            pickled = pickle.dumps(exc)
        except Exception:
            pickled = None
        message = ("error", f"{type(exc).__name__}: {exc}", "".join(traceback.format_exception(exc)),
                   isinstance(exc, CommunicatorError), pickled)
    try:
        conn.send(message)
    except (BrokenPipeError, ConnectionError):  # the parent is gone: nobody is left to tell
        failed = True
        world.abort(rank, "its parent ended before the result could be sent back")
    except Exception as exc:  # the result cannot be pickled
        failed = True
        world.abort(rank, "its result could not be sent back")
        conn.send(("error", f"{type(exc).__name__}: spmd: the result of rank {rank} could not be pickled to go "
                            f"back to the parent: {exc}", "", False, None))
    finally:
        conn.close()
        if failed and world.inboxes is not None:
            for inbox in world.inboxes:  # unsent messages must not keep this process from ending
                inbox.cancel_join_thread()
        world.close()


def _watch_parent(world: ProcessWorld) -> None:
    """End this process, and free the shared block, if the parent dies (nobody else would)."""
    def watch() -> None:
        while not world.parent_gone():
            time.sleep(0.2)
        try:
            shared_memory.SharedMemory(name=world.segment_name).unlink()
        except FileNotFoundError:
            pass
        os._exit(70)

    threading.Thread(target=watch, name="tinyai-parent-watch", daemon=True).start()


def check_picklable(fn: Callable, args: tuple) -> None:
    """Refuse, with the reason, a function that spawned processes could not receive."""
    main = sys.modules.get("__main__")
    if getattr(fn, "__module__", None) == "__main__" and not getattr(main, "__file__", None):
        raise TypeError(f"spmd: backend='process' cannot run {getattr(fn, '__qualname__', fn)!r}: it was defined "
                        f"in a notebook or the REPL, which new processes cannot import; move it into a module "
                        f"(a .py file) or use backend='thread'")
    try:
        pickle.dumps((fn, args))
    except Exception as exc:
        raise TypeError(f"spmd: backend='process' needs fn (and args) to be picklable, i.e. fn defined at the top "
                        f"level of a module, not a lambda or a nested function; {getattr(fn, '__qualname__', fn)!r} "
                        f"is not ({type(exc).__name__}: {exc})") from exc


def _run_processes(fn: Callable, size: int, timeout: float, args: tuple) -> list[Any]:
    """``spmd(fn, size, backend="process")``: one fresh process per rank, then every resource released."""
    check_picklable(fn, args)
    context = mp.get_context("spawn")
    world = ProcessWorld(size, timeout, context)
    processes: list = []
    connections: list = []
    try:
        for rank in range(size):
            parent_end, child_end = context.Pipe(duplex=False)
            process = context.Process(target=_rank_main, args=(fn, args, world, rank, child_end),
                                      name=f"tinyai-spmd-rank-{rank}", daemon=True)
            process.start()
            child_end.close()
            processes.append(process)
            connections.append(parent_end)
        results, failures = _collect(world, processes, connections, timeout)
    except BaseException:
        world.abort(None, "the parent was interrupted")
        raise
    finally:
        _end(processes)
        for connection in connections:
            connection.close()
        world.close()
    if failures:
        failure = first_failure(failures)
        raise failure.error() from failure.exception
    return results


def _collect(world: ProcessWorld, processes: list, connections: list, timeout: float) -> tuple[list, list]:
    """Every rank's result, or the failures; a rank that dies is declared failed to the others at once."""
    size = len(processes)
    results: list[Any] = [None] * size
    failures: list[Failure] = []
    pending = set(range(size))
    give_up = None  # after a failure, how long the others get to end
    while pending:
        waitables = [connections[r] for r in pending] + [processes[r].sentinel for r in pending]
        wait(waitables, timeout=0.5)
        for rank in sorted(pending):
            message = None
            if connections[rank].poll():
                try:
                    message = connections[rank].recv()
                except (EOFError, OSError):
                    message = None
                else:
                    pending.discard(rank)
            if message is None:
                if processes[rank].is_alive():
                    continue
                pending.discard(rank)
                failures.append(_death(world, processes[rank], rank))
            elif message[0] == "ok":
                results[rank] = message[1]
            else:
                _, summary, text, secondary, pickled = message
                exc = _unpickle(pickled)
                failures.append(Failure(rank, exc, text, secondary, summary))
        if failures and give_up is None:
            give_up = time.monotonic() + world.timeout + 2 * LEADER_GRACE
        if give_up is not None and time.monotonic() > give_up:
            for rank in sorted(pending):
                failures.append(Failure(rank, None, "", True, f"did not end after rank {failures[0].rank} failed"))
            break
    return results, failures


def _death(world: ProcessWorld, process: Any, rank: int) -> Any:
    process.join(1)
    code = process.exitcode
    how = f"exit code {code}"
    if code is not None and code < 0:
        how = f"signal {signal.Signals(-code).name}"
    hint = ("" if code is None or code < 0 else
            "; if fn lives in the script you ran, the script's own code must be under "
            "'if __name__ == \"__main__\":' (every new process imports the script)")
    summary = f"the process of rank {rank} (pid {process.pid}) died with {how}{hint}"
    world.abort(rank, f"its process died with {how}")
    return Failure(rank, None, "", False, summary)


def _unpickle(data: bytes | None) -> BaseException | None:
    if data is None:
        return None
    try:
        return pickle.loads(data)
    except Exception:
        return None


def _end(processes: list) -> None:
    """Join every process, terminating and then killing those that do not end on their own."""
    deadline = time.monotonic() + 2.0
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    for process in processes:
        if process.is_alive():
            process.terminate()
            process.join(2)
        if process.is_alive():
            process.kill()
            process.join(2)


__all__ = ["spmd", "SpmdError"]
