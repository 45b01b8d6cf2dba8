"""The Executor interface: where the shards of a step run.

An executor owns the *workers* of data-parallel training — threads of this
process, worker processes on this machine, or the ranks of an MPI job — and
one replica of the model per worker. It knows how workers start, how a shard
reaches them, how they fail, time out and shut down. It does not decide what
to do with the gradients: that is a strategy's job (``tinyai.parallel.strategy``).

What every executor offers (the whole interface):

* ``compute(master, x, y)`` — split the batch (x, y) into one shard per
  worker; each worker loads the master's parameters, buffers, train/eval
  mode and random stream into its replica, runs forward, loss and backward on
  its shard, and reports a ``BatchProcessResult`` (loss, shard size,
  success, its *shard-mean* gradients). Results come back in shard order.
  Afterwards the master's random stream and buffers (batch-norm running
  statistics) are where single-thread training on the whole batch leaves them.
* ``allreduce_gradients(results)`` — the size-weighted mean of the
  successful shards' gradients, the same on every rank:
  ``g = sum_k n_k g_k / sum_k n_k``.
* ``run(fn, args)`` — a general call: ``fn(worker, *args[k])`` on every
  worker k, with ``worker`` a ``WorkerContext`` (its id, replica, loss and a
  ``state`` dict that persists between calls). Strategies that keep state on
  the workers (local SGD's replica optimizers) use it. On processes ``fn``
  and its arguments must pickle (a module-level function).
* ``shutdown(timeout)`` — release every worker and resource within
  ``timeout`` seconds (plus about one): a worker that does not stop in time
  is abandoned (a daemon thread) or killed (a process).
* ``alive``, ``workers``, ``kind``, ``is_root``, ``shares_device``.

A worker that fails, dies or hangs is reported as one exception type,
``WorkerError``, that names the worker and carries the cause.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Sequence

from tinyai.parallel.processor import BatchProcessResult


class WorkerError(RuntimeError):
    """A worker of data-parallel training failed, died or hung.

    Attributes:
        worker_id: the worker (thread index, process index or MPI rank), or
            None when the failure belongs to no single worker.
        cause: the exception raised on the worker, if one was.
    """

    def __init__(self, message: str, worker_id: int | None = None, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.worker_id = worker_id
        self.cause = cause

    def __reduce__(self) -> tuple:
        return (type(self), (str(self), self.worker_id, self.cause))


@dataclass
class WorkerContext:
    """What ``Executor.run`` hands to a function on worker ``worker_id``."""

    worker_id: int
    model: Any
    loss: Any
    state: dict = field(default_factory=dict)
    #: Where the workers can message each other directly (processes): ``peers(n)`` is this
    #: worker's communicator over workers 0 .. n-1 (for the ring all-reduce); None elsewhere.
    peers: Any = None
    #: Where a worker reaches ranks that are not workers while ``fn`` runs: on processes, this worker's
    #: communicator over every worker *and the master*, who is the last rank (``ProcessExecutor.run``
    #: with ``serve=``); on MPI, the job's communicator (every rank). None on threads.
    world: Any = None
    #: Processes: name -> a view of this worker's own shared-memory buffer (shaped like each parameter),
    #: which the master reads and writes too (``ProcessExecutor.worker_buffers(k)``): numbers that
    #: travel between them without being pickled. None elsewhere.
    shared: Any = None


class Executor(ABC):
    """Runs the shards of each data-parallel step on a set of workers (see the module docstring)."""

    #: "thread", "process" or "mpi".
    kind: ClassVar[str] = ""
    #: True when shards may live on the model's device (a CuPy model); processes cannot share it.
    shares_device: ClassVar[bool] = False
    #: Number of workers (shards per step, at most).
    workers: int = 1
    #: False on the workers of an SPMD job that should neither print nor write files.
    is_root: bool = True

    @property
    @abstractmethod
    def alive(self) -> bool:
        """True while every worker can take a step."""

    @abstractmethod
    def compute(self, master: Any, x: Any, y: Any) -> list[BatchProcessResult]:
        """Each shard's loss and shard-mean gradients on (x, y), the master's state in force."""

    def allreduce_gradients(self, results: Sequence[BatchProcessResult]) -> dict[str, Any]:
        """The size-weighted mean gradient of the successful shards (name -> array)."""
        from tinyai.parallel.aggregator import GradientAggregator

        ok = [r for r in results if r.success]
        aggregator = GradientAggregator(len(ok))
        for r in ok:
            aggregator.submit_gradients(r.gradients, r.batch_size)
        return aggregator.get_average_gradients()

    @abstractmethod
    def run(self, fn: Callable[..., Any], args: Sequence[tuple] | None = None) -> list[Any]:
        """``fn(WorkerContext, *args[k])`` on every worker k; the return values in worker order."""

    @abstractmethod
    def shutdown(self, timeout: float = 30) -> bool:
        """Release the workers within about ``timeout`` seconds; False if one had to be abandoned."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(workers={self.workers}, alive={self.alive})"
