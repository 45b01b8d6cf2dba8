"""Data parallelism on threads: one replica per thread, one process.

NumPy releases the interpreter lock inside BLAS and large elementwise loops,
so two threads really do compute at once on two cores. Each worker thread
keeps its own replica (made once, re-synchronised each step by copying
arrays); autograd's configuration is per thread, so ``no_grad`` in one worker
never leaks into another. BLAS is limited to one thread while the workers run
(``single_threaded_blas``), or they would fight for the same cores.

Random draws (dropout) replay the master's stream for the whole batch
(``ShardRandom``), and batch statistics are summed over all shards
(a ``ThreadCommunicator`` per shard, from ``tinyai.parallel.comm``), so the
step does not depend on the split.

The workers are daemon threads of our own, not a ``ThreadPoolExecutor``:
Python cannot stop a thread, so a shard that hangs can only be *abandoned*,
and a pool's threads would keep the interpreter from exiting. A step that
waits longer than ``step_timeout`` raises ``WorkerError``; ``shutdown(timeout)``
returns after at most ``timeout`` seconds whatever the shards are doing; in
both cases a hung thread is left behind as a daemon and the executor is no
longer usable.

A model on a device (CuPy) works too: every shard is moved to the model's
device before the worker sees it, and the replicas live on the same device.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
import weakref
from concurrent.futures import Future, wait
from typing import Any, Callable, Sequence

import numpy as np

from tinyai.backend import device_of, get_array_module, get_rng, using_communicator, using_device, using_rng
from tinyai.parallel.shard_random import ShardRandom
from tinyai.parallel.comm.thread import ThreadWorld
from tinyai.parallel.executor.base import Executor, WorkerContext, WorkerError
from tinyai.parallel.executor.blas import single_threaded_blas
from tinyai.parallel.processor import BatchProcessResult, ParallelBatchProcessor
from tinyai.parallel.sharding import copy_buffers, copy_mode, copy_parameters, shard_bounds
from tinyai.parallel.utils import deep_copy_model

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.05  # how often a waiting master looks for a timeout or a shutdown


def model_array_module(model: Any) -> Any:
    """The array module (numpy, cupy, the stand-in) the model's parameters live in."""
    for p in model.params():
        if p.data is not None:
            return get_array_module(p.data)
    return np


def on_device_of(xp: Any, array: Any) -> Any:
    """``array`` on the device of ``xp`` (copied there from the host if needed)."""
    if xp is np or get_array_module(array) is xp:
        return array
    return xp.asarray(array)


class _WorkerThread:
    """One daemon thread that runs the calls put in its inbox, one at a time."""

    def __init__(self, worker_id: int) -> None:
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name=f"tinyai-worker-{worker_id}", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            item = self.inbox.get()
            if item is None:
                return
            future, fn, args = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # reported to the master, never lost
                future.set_exception(exc)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        future: Future = Future()
        self.inbox.put((future, fn, args))
        return future


def _stop_all(inboxes: list[queue.SimpleQueue]) -> None:
    for inbox in inboxes:
        inbox.put(None)


class ThreadExecutor(Executor):
    """Runs the shards of each step on ``workers`` daemon threads, each with its own replica.

    Args:
        model: the master model (copied once per worker).
        loss: a loss object with ``loss(target, prediction)``.
        workers: number of worker threads.
        step_timeout: seconds a step may take before the shards still running
            are reported as hung (``WorkerError``); None waits for ever.
    """

    kind = "thread"
    shares_device = True

    def __init__(self, model: Any, loss: Any, workers: int, step_timeout: float | None = None) -> None:
        self.workers = workers
        self.loss = loss
        self.step_timeout = step_timeout
        self.replicas = [deep_copy_model(model) for _ in range(workers)]
        self.contexts = [WorkerContext(k, self.replicas[k], loss) for k in range(workers)]
        self._threads: list[_WorkerThread] | None = [_WorkerThread(k) for k in range(workers)]
        self._abandoned: list[str] = []
        # An executor dropped without shutdown() still lets its idle threads end.
        weakref.finalize(self, _stop_all, [worker.inbox for worker in self._threads])

    @property
    def alive(self) -> bool:
        return self._threads is not None and not self._abandoned

    def _check_usable(self) -> list[_WorkerThread]:
        if self._abandoned:
            raise WorkerError(f"thread executor: unusable, {', '.join(self._abandoned)} hung and was abandoned")
        if self._threads is None:
            raise WorkerError("thread executor: the workers have been shut down")
        return self._threads

    def _run_shard(self, k: int, x: Any, y: Any, total: int, rng: ShardRandom,
                   world: ThreadWorld, device: Any) -> BatchProcessResult:
        # The current device is per thread: the worker computes on the model's device.
        with using_device(device), using_rng(rng), using_communicator(world.communicator(k)):
            result = ParallelBatchProcessor(self.replicas[k], self.loss, x, y, k, total_batch_size=total).run()
        if not result.success:  # peers waiting for batch statistics give up at once
            world.abort(k, f"{type(result.exception).__name__}: {result.exception}")
        return result

    def compute(self, master: Any, x: Any, y: Any) -> list[BatchProcessResult]:
        """Each worker's loss and gradients on its shard of (x, y), master parameters in force."""
        threads = self._check_usable()
        xp = model_array_module(master)
        device = device_of(next(iter(master.params())).data)
        with using_device(device):  # shards are delivered on the model's device
            x, y = on_device_of(xp, x), on_device_of(xp, y)
        for replica in self.replicas:
            copy_parameters(master, replica)
            copy_buffers(master, replica)
            copy_mode(master, replica)
        bounds = shard_bounds(len(x), self.workers)
        world = ThreadWorld(len(bounds))
        master_rng = get_rng()
        rngs = [ShardRandom(master_rng.bit_generator.state, a, b, len(x)) for a, b in bounds]
        with single_threaded_blas():
            futures = [threads[k].submit(self._run_shard, k, x[a:b], y[a:b], len(x), rngs[k], world, device)
                       for k, (a, b) in enumerate(bounds)]
            self._wait(futures, world)
        results = [f.result() for f in futures]
        if all(r.success for r in results):
            # Every worker replayed the same draws: carry on from where they ended.
            master_rng.bit_generator.state = rngs[0].state
            copy_buffers(self.replicas[0], master)
        return results

    def _wait(self, futures: list[Future], world: ThreadWorld | None = None) -> None:
        """Wait for every future. A worker still busy after ``step_timeout``, or when
        ``shutdown()`` is called from another thread, becomes a WorkerError."""
        deadline = None if self.step_timeout is None else time.monotonic() + self.step_timeout
        try:
            while True:
                done, pending = wait(futures, timeout=POLL_SECONDS)
                if not pending:
                    return
                if self._threads is None:
                    reason = "shutdown() was called during the step"
                    break
                if deadline is not None and time.monotonic() > deadline:
                    reason = f"did not finish its shard within step_timeout={self.step_timeout:g} s"
                    break
        except BaseException:  # Ctrl-C: peers waiting on each other must not block the clean-up
            if world is not None:
                world.abort(None, "the step was interrupted")
            raise
        if world is not None:  # peers that only wait for the busy one are released
            world.abort(None, f"a worker {reason}")
        wait(futures, timeout=0.2)  # released peers report back
        hung = [k for k, f in enumerate(futures) if not f.done()]
        self._abandoned.extend(f"worker {k}" for k in hung if f"worker {k}" not in self._abandoned)
        first = hung[0] if hung else None
        if self._threads is None:
            raise WorkerError(f"thread executor: {reason}; busy workers {hung} were abandoned", first)
        raise WorkerError(f"thread executor: worker {first} {reason}; it was abandoned and the executor is "
                          "unusable", first)

    def run(self, fn: Callable[..., Any], args: Sequence[tuple] | None = None) -> list[Any]:
        """``fn(WorkerContext, *args[k])`` on every worker k, in parallel; results in worker order."""
        threads = self._check_usable()
        args = list(args) if args is not None else [()] * self.workers
        if len(args) > self.workers:
            raise ValueError(f"ThreadExecutor.run: {len(args)} argument tuples for {self.workers} workers")
        with single_threaded_blas():
            futures = [threads[k].submit(fn, self.contexts[k], *a) for k, a in enumerate(args)]
            self._wait(futures)
        errors = [(k, f.exception()) for k, f in enumerate(futures) if f.exception() is not None]
        if errors:
            k, error = errors[0]
            raise WorkerError(f"thread executor: worker {k} raised {type(error).__name__}: {error}", k, error)
        return [f.result() for f in futures]

    def shutdown(self, timeout: float = 30) -> bool:
        """Ask every thread to stop and wait up to ``timeout`` seconds in all; threads
        still busy then are abandoned (they are daemons). True if all stopped. Safe to call twice."""
        threads, self._threads = self._threads, None
        if threads is None:
            return not self._abandoned
        for worker in threads:
            worker.inbox.put(None)
        deadline = time.monotonic() + max(0.0, timeout)
        for k, worker in enumerate(threads):
            worker.thread.join(max(0.0, deadline - time.monotonic()))
            if worker.thread.is_alive():
                self._abandoned.append(f"worker {k}")
                logger.warning("thread executor: worker %d did not stop within %g s; abandoning it (a daemon "
                               "thread, it ends with the program)", k, timeout)
        return not self._abandoned
