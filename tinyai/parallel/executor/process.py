"""Data parallelism on processes: persistent workers and shared memory.

Threads share one interpreter lock, so the Python half of autograd runs one
thread at a time; processes do not have that limit. Each worker process holds
a replica for the whole of training. Shared memory carries the numbers, so
nothing large is pickled per step:

* one flat parameter buffer, written by the master before each step; every
  replica's parameters *are* views into it, so a worker sees the new values
  without copying;
* one flat gradient buffer per worker, which the worker fills and the master
  reads;
* one input buffer per worker, into which the master copies the worker's
  shard of the batch (grown when a larger shard comes along).

Only small messages (``ShardTask``, ``ShardDone``, ...) travel through a pipe.

Starting the workers. They start with 'spawn' (a fresh interpreter). A fresh
interpreter normally imports the user's script again, as ``__mp_main__``, to
find classes defined there; a script without an ``if __name__ == "__main__":``
guard would then run its whole body again in every worker. So when nothing
the workers receive refers to ``__main__``, the script is *not* imported
again (the workers start as if from an empty main module). When the model's
classes do live in the script, it must be imported; then a script without the
guard is refused with an error that says so. A notebook or the REPL (a main
module without a file) uses 'fork', which copies the running interpreter.
Either way a worker keeps BLAS to one thread, since the workers already use
one core each (a spawned one by environment variables, a forked one, which
inherits the master's BLAS threads, by ``use_one_blas_thread_for_good``).

Failures. A worker that dies is noticed within a fraction of a second; peers
waiting for its batch statistics are released (its ``ProcessWorld`` is aborted) and
the step raises ``WorkerError``. ``step_timeout`` turns a hung shard into the
same error. ``shutdown(timeout)`` returns within ``timeout`` plus about half
a second: workers that do not stop in time are killed. A worker watches its
parent: if the master dies, the worker unlinks the shared memory and exits.
Everything is also released when the executor is garbage-collected and at
interpreter exit.
"""
from __future__ import annotations

import ast
import atexit
import contextlib
import logging
import multiprocessing as mp
import os
import pickle
import signal
import sys
import threading
import time
import traceback
import types
import weakref
from dataclasses import dataclass
from multiprocessing import shared_memory
from multiprocessing.connection import wait
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from tinyai.parallel.comm.process import ProcessWorld
from tinyai.parallel.executor.base import Executor, WorkerContext, WorkerError
from tinyai.parallel.executor.blas import use_one_blas_thread_for_good
from tinyai.parallel.processor import BatchProcessResult, ParallelBatchProcessor

logger = logging.getLogger(__name__)


PARENT_CHECK_SECONDS = 0.2  # how often a worker looks whether the master is still there


@dataclass(frozen=True)
class FlatLayout:
    """Where each parameter lives inside a flat buffer: name, shape, offset (in elements)."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    offsets: tuple[int, ...]
    size: int
    dtype: str

    @classmethod
    def of(cls, model: Any) -> "FlatLayout":
        names, shapes, offsets, dtypes = [], [], [], set()
        total = 0
        for name, p in model.named_params():
            names.append(name)
            shapes.append(tuple(p.data.shape))
            offsets.append(total)
            dtypes.add(str(p.data.dtype))
            total += int(p.data.size)
        if len(dtypes) != 1:
            raise TypeError(f"process executor: all parameters need one dtype, got {sorted(dtypes)}")
        return cls(tuple(names), tuple(shapes), tuple(offsets), total, dtypes.pop())

    def views(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        """Parameter name -> a view of its slice of ``flat``, shaped like the parameter."""
        return {name: flat[o:o + int(np.prod(shape, dtype=np.int64))].reshape(shape)
                for name, shape, o in zip(self.names, self.shapes, self.offsets)}


# -- the messages between master and worker ------------------------------------------------
@dataclass(frozen=True)
class ShardLocation:
    """Where the master put a worker's shard: a segment, and the shapes and dtypes of x and y in it."""

    segment: str
    x_shape: tuple[int, ...]
    x_dtype: str
    y_shape: tuple[int, ...]
    y_dtype: str
    y_offset: int

    def arrays(self, segment: shared_memory.SharedMemory) -> tuple[np.ndarray, np.ndarray]:
        x = np.ndarray(self.x_shape, dtype=self.x_dtype, buffer=segment.buf)
        y = np.ndarray(self.y_shape, dtype=self.y_dtype, buffer=segment.buf, offset=self.y_offset)
        return x, y


@dataclass(frozen=True)
class ShardTask:
    """Master -> worker: compute the gradients of rows start:stop of a batch of ``total``."""

    where: ShardLocation
    total: int
    start: int
    stop: int
    shards: int
    rng_state: dict
    buffers: dict
    training: bool


@dataclass(frozen=True)
class RunTask:
    """Master -> worker: call ``fn(WorkerContext, *args)`` (``Executor.run``)."""

    fn: Callable[..., Any]
    args: tuple


@dataclass(frozen=True)
class Ready:
    """Worker -> master, once: the replica is loaded and the worker waits for tasks."""

    pid: int


@dataclass(frozen=True)
class ShardDone:
    """Worker -> master: the gradients are in the worker's gradient buffer."""

    loss: float
    batch_size: int
    rng_state: dict
    buffers: dict
    prediction: Any


@dataclass(frozen=True)
class RunDone:
    """Worker -> master: what ``fn`` returned."""

    value: Any


@dataclass(frozen=True)
class Failed:
    """Worker -> master: the task raised; the exception's type, message and traceback as text."""

    batch_size: int
    type_name: str
    message: str
    traceback: str


# -- the worker process ----------------------------------------------------------------------
def _attach(name: str) -> shared_memory.SharedMemory:
    """Open a segment created by the master.

    Spawned workers share the master's resource tracker, so attaching only
    re-registers a name the tracker already knows; the master unlinks.
    """
    return shared_memory.SharedMemory(name=name)


def _watch_parent(parent_pid: int, segments: list) -> None:
    """A daemon thread: when the master dies, unlink its shared memory and end this worker."""
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_CHECK_SECONDS)
        for segment in list(segments):
            with contextlib.suppress(Exception):
                segment.unlink()
        os._exit(3)

    threading.Thread(target=watch, name="tinyai-parent-watch", daemon=True).start()


def _worker_main(worker_id: int, conn: Any, payload: bytes, layout: FlatLayout, param_name: str,
                 grad_name: str, world: ProcessWorld, parent_pid: int) -> None:
    """The loop of one worker process: wait for a task, do it, reply."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the master's to handle
    use_one_blas_thread_for_good()  # a forked worker inherits the master's BLAS threads
    # The communicator's block is attached too, so that the parent watch unlinks it with the others.
    segments = [_attach(name) for name in (param_name, grad_name, world.segment_name)]
    _watch_parent(parent_pid, segments)
    try:
        _serve(worker_id, conn, payload, layout, segments, world)
    except (EOFError, KeyboardInterrupt):
        pass
    finally:
        for segment in segments:
            with contextlib.suppress(BufferError):  # arrays still point into it; the process ends anyway
                segment.close()


def _serve(worker_id: int, conn: Any, payload: bytes, layout: FlatLayout, segments: list,
           world: ProcessWorld) -> None:
    from tinyai.backend import using_communicator, using_rng
    from tinyai.parallel.shard_random import ShardRandom
    from tinyai.parallel.sharding import copy_buffers

    param_segment, grad_segment = segments[:2]
    try:
        model, loss = pickle.loads(payload)
    except Exception as exc:  # a class the worker cannot import: say so instead of just dying
        conn.send(Failed(0, type(exc).__name__, str(exc), "".join(traceback.format_exception(exc))))
        return
    params = np.ndarray((layout.size,), dtype=layout.dtype, buffer=param_segment.buf)
    grads = np.ndarray((layout.size,), dtype=layout.dtype, buffer=grad_segment.buf)
    named = dict(model.named_params())
    for name, view in layout.views(params).items():
        named[name].data = view  # the replica reads the master's values in place
    grad_views = layout.views(grads)
    context = WorkerContext(worker_id, model, loss,
                            peers=lambda count: world.communicator(worker_id, members=range(count)),
                            world=world.communicator(worker_id), shared=grad_views)
    inbox: shared_memory.SharedMemory | None = None
    conn.send(Ready(os.getpid()))
    while True:
        message = conn.recv_bytes()
        try:
            task = pickle.loads(message)
        except Exception as exc:  # e.g. a function of __main__ that this process cannot import
            conn.send(Failed(0, type(exc).__name__, f"the task could not be unpickled in the worker: {exc}",
                             "".join(traceback.format_exception(exc))))
            continue
        if task is None:
            _close(inbox)
            return
        if isinstance(task, RunTask):
            try:
                conn.send(RunDone(task.fn(context, *task.args)))
            except Exception as exc:
                conn.send(Failed(0, type(exc).__name__, str(exc), "".join(traceback.format_exception(exc))))
            continue
        if model.training != task.training:
            model.train(task.training)
        if inbox is None or inbox.name != task.where.segment:
            _close(inbox)
            if inbox is not None:
                segments.remove(inbox)
            inbox = _attach(task.where.segment)
            segments.append(inbox)  # the parent watch unlinks it too
        x, y = task.where.arrays(inbox)
        copy_buffers(_Buffers(task.buffers), model)
        rng = ShardRandom(task.rng_state, task.start, task.stop, task.total)
        # Batch norm's statistics: a step with fewer shards than workers talks among the first ones only.
        group = world.communicator(worker_id, members=range(task.shards))
        with using_rng(rng), using_communicator(group):
            result = ParallelBatchProcessor(model, loss, x, y, worker_id, total_batch_size=task.total).run()
        del x, y
        if result.success:
            for name, view in grad_views.items():
                g = result.gradients.get(name)
                view[...] = 0 if g is None else g
            conn.send(ShardDone(result.loss, result.batch_size, rng.state, dict(model.named_buffers()),
                                result.prediction))
        else:
            # peers waiting for batch statistics give up at once
            world.abort(worker_id, f"{type(result.exception).__name__}: {result.exception}")
            conn.send(Failed(result.batch_size, type(result.exception).__name__, str(result.exception),
                             "".join(traceback.format_exception(result.exception))))


def _close(segment: shared_memory.SharedMemory | None) -> None:
    if segment is not None:
        with contextlib.suppress(BufferError):  # an array still points into it; the process ends anyway
            segment.close()


class _Buffers:
    """A dict of buffers seen through the ``named_buffers()`` interface of a model."""

    def __init__(self, buffers: dict) -> None:
        self.buffers = buffers

    def named_buffers(self):
        return iter(self.buffers.items())


def _release(processes: list, connections: list, segments: list, timeout: float) -> bool:
    """Stop the workers (politely, then by SIGKILL after ``timeout``) and free every shared segment.

    Returns within ``timeout`` plus about half a second; True if every worker stopped by itself.
    """
    for conn in connections:
        with contextlib.suppress(Exception):
            conn.send(None)
    deadline = time.monotonic() + max(0.0, timeout)
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    polite = True
    for process in processes:
        if process.is_alive():
            polite = False
            process.kill()
    kill_deadline = time.monotonic() + 0.5
    for process in processes:
        process.join(max(0.0, kill_deadline - time.monotonic()))
    for conn in connections:
        conn.close()
    for segment in segments:
        with contextlib.suppress(FileNotFoundError):
            segment.close()
            segment.unlink()
    processes.clear()
    connections.clear()
    segments.clear()
    return polite


class ProcessExecutor(Executor):
    """Runs the shards of each step on persistent worker processes.

    Args:
        model: the master model (sent once to every worker).
        loss: a loss object with ``loss(target, prediction)``; must pickle.
        workers: number of worker processes.
        start_method: "auto" (see the module docstring), "spawn", "fork" or "forkserver".
        step_timeout: seconds a step may take before the workers still busy
            are reported as hung (``WorkerError``); None waits for ever.

    Raises:
        ValueError: the model lives on a device (processes cannot share it),
            or its classes are in a script without a ``__main__`` guard.
    """

    kind = "process"
    shares_device = False

    def __init__(self, model: Any, loss: Any, workers: int, start_method: str = "auto",
                 step_timeout: float | None = None) -> None:
        from tinyai.parallel.executor.thread import model_array_module

        xp = model_array_module(model)
        if xp is not np:
            raise ValueError(f"process executor: the model's parameters live on a device ({xp.__name__} "
                             "arrays); worker processes cannot share device memory, so the process backend "
                             "cannot train it; use backend='thread'")
        self.workers = workers
        self.step_timeout = step_timeout
        self.layout = FlatLayout.of(model)
        itemsize = np.dtype(self.layout.dtype).itemsize
        nbytes = max(1, self.layout.size * itemsize)
        self._processes: list = []
        self._connections: list = []
        self._segments: list = []
        self._world: ProcessWorld | None = None
        self._broken: str | None = None
        self._closing = False
        self._step_lock = threading.Lock()
        # The finalizer holds the lists, not self: it frees everything even if
        # the executor is dropped without shutdown(), and at interpreter exit.
        self._finalizer = weakref.finalize(self, _release, self._processes, self._connections,
                                           self._segments, 2.0)
        atexit.register(self._finalizer)
        try:
            payload = _pickled_without_grads(model, loss)
            if start_method == "auto":
                start_method = choose_start_method(payload)
            context = mp.get_context(start_method)
            self._param_segment = shared_memory.SharedMemory(create=True, size=nbytes)
            self._segments.append(self._param_segment)
            self.params = np.ndarray((self.layout.size,), dtype=self.layout.dtype, buffer=self._param_segment.buf)
            self._grad_segments = []
            self.grads = []
            for _ in range(workers):
                segment = shared_memory.SharedMemory(create=True, size=nbytes)
                self._segments.append(segment)
                self._grad_segments.append(segment)
                self.grads.append(np.ndarray((self.layout.size,), dtype=self.layout.dtype, buffer=segment.buf))
            self._inboxes: list[shared_memory.SharedMemory | None] = [None] * workers
            self._param_views = self.layout.views(self.params)
            self._grad_views = [self.layout.views(g) for g in self.grads]
            self._write_parameters(model)
            # The workers' communicator (shared memory) for synchronised batch norm, and the
            # messages of strategies whose workers talk to each other (ring all-reduce) or to
            # the master while they run (asynchronous parameter servers): the master is rank
            # ``workers``, the last one (``run(..., serve=)``).
            self._world = ProcessWorld(workers + 1, context=context, messages=True)
            hide_main = start_method != "fork" and b"__main__" not in payload
            with _blas_environment(), (_main_module_hidden() if hide_main else contextlib.nullcontext()):
                for k in range(workers):
                    parent_end, child_end = context.Pipe()
                    process = context.Process(
                        target=_worker_main, name=f"tinyai-worker-{k}", daemon=True,
                        args=(k, child_end, payload, self.layout, self._param_segment.name,
                              self._grad_segments[k].name, self._world, os.getpid()))
                    process.start()
                    child_end.close()
                    self._processes.append(process)
                    self._connections.append(parent_end)
            # Wait until every replica is loaded, so that start-up never counts against step_timeout
            # and a worker that cannot load the model fails here, saying why.
            for k, reply in sorted(self._collect(workers, None, step_timeout=None).items()):
                if isinstance(reply, Failed):
                    raise WorkerError(f"process executor: worker {k} could not load the model: "
                                      f"{_remote_error(k, reply)}", k)
            self._broken = None
        except BaseException:
            self.shutdown(1.0)
            raise

    @property
    def alive(self) -> bool:
        return (bool(self._processes) and self._broken is None and not self._closing
                and all(p.is_alive() for p in self._processes))

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._processes]

    @property
    def segment_names(self) -> list[str]:
        world = [self._world.segment_name] if self._world is not None else []
        return [s.name for s in self._segments] + world

    def worker_buffers(self, k: int) -> dict[str, np.ndarray]:
        """Worker k's gradient buffer in shared memory, as parameter name -> view (``WorkerContext.shared``
        on the worker). Between steps a strategy may use it to move numbers without pickling them, when
        its own messages say who writes when (asynchronous parameter servers)."""
        return self._grad_views[k]

    def _write_parameters(self, master: Any) -> None:
        for name, p in master.named_params():
            self._param_views[name][...] = p.data

    def _check_usable(self) -> None:
        if self._broken is not None:
            raise WorkerError(f"process executor: unusable after an earlier failure ({self._broken})")
        if not self._processes or self._closing:
            raise WorkerError("process executor: the workers have been shut down")

    def compute(self, master: Any, x: Any, y: Any) -> list[BatchProcessResult]:
        """Each worker's loss and gradients on its shard of (x, y), master parameters in force."""
        from tinyai.backend import get_rng
        from tinyai.parallel.sharding import copy_buffers, shard_bounds

        with self._step_lock:
            self._check_usable()
            self._write_parameters(master)
            bounds = shard_bounds(len(x), self.workers)
            if self._world.failure is not None:  # a failed shard of the last step aborted it
                self._world.reset()
            master_rng = get_rng()
            state = master_rng.bit_generator.state
            buffers = dict(master.named_buffers()) if hasattr(master, "named_buffers") else {}
            training = getattr(master, "training", True)
            for k, (a, b) in enumerate(bounds):
                where = self._stage_shard(k, x[a:b], y[a:b])
                self._send(k, ShardTask(where, len(x), a, b, len(bounds), state, buffers, training))
            replies = self._collect(len(bounds), self._world)
            results = []
            for k in range(len(bounds)):
                reply = replies[k]
                if isinstance(reply, ShardDone):
                    gradients = {name: view.copy() for name, view in self._grad_views[k].items()}
                    results.append(BatchProcessResult(k, reply.loss, reply.batch_size, True, None, gradients,
                                                      reply.prediction))
                else:
                    results.append(BatchProcessResult(k, float("nan"), reply.batch_size, False,
                                                      _remote_error(k, reply)))
            if all(r.success for r in results):
                # Every worker replayed the same draws and computed the same statistics.
                master_rng.bit_generator.state = replies[0].rng_state
                copy_buffers(_Buffers(replies[0].buffers), master)
            return results

    def run(self, fn: Callable[..., Any], args: Sequence[tuple] | None = None,
            serve: Callable[[Any], None] | None = None) -> list[Any]:
        """``fn(WorkerContext, *args[k])`` on every worker process k; ``fn`` and the args must pickle.

        ``serve``: a function of one argument, the master's communicator over
        the workers and itself (it is rank ``workers``, the last), run in a
        thread of this process while the workers run ``fn``; the workers reach
        it through ``WorkerContext.world``. That is how asynchronous parameter
        servers answer workers mid-epoch. It must return once the workers are
        done with it. If it raises, the workers waiting for it are released
        (the world is aborted) and its error is raised here; if a worker dies,
        ``serve`` is released the same way and the ``WorkerError`` names the worker.
        """
        args = list(args) if args is not None else [()] * self.workers
        if len(args) > self.workers:
            raise ValueError(f"ProcessExecutor.run: {len(args)} argument tuples for {self.workers} workers")
        with self._step_lock:
            self._check_usable()
            if self._world.failure is not None:  # an earlier step's failed shard aborted it
                self._world.reset()
            server = _Serving(serve, self._world) if serve is not None else None
            try:
                for k, a in enumerate(args):
                    self._send(k, RunTask(fn, tuple(a)))
                replies = self._collect(len(args), self._world)
            finally:
                if server is not None:
                    server.join()
            if server is not None and server.error is not None:
                raise server.error
        for k in range(len(args)):
            if isinstance(replies[k], Failed):
                error = _remote_error(k, replies[k])
                raise WorkerError(f"process executor: worker {k} raised {error}", k, error)
        return [replies[k].value for k in range(len(args))]

    def _send(self, k: int, task: Any) -> None:
        try:
            self._connections[k].send(task)
        except OSError:  # a broken pipe: the worker is gone
            self._broken = f"worker {k} died"
            raise WorkerError(self._death_message(k), k) from None

    def _stage_shard(self, k: int, x: Any, y: Any) -> ShardLocation:
        """Copy worker k's shard into its input segment (a larger one if it does not fit)."""
        x, y = np.ascontiguousarray(x), np.ascontiguousarray(y)
        y_offset = -(-x.nbytes // 64) * 64  # y starts on a 64-byte boundary
        needed = max(1, y_offset + y.nbytes)
        inbox = self._inboxes[k]
        if inbox is None or inbox.size < needed:
            grown = shared_memory.SharedMemory(create=True, size=max(needed, 2 * inbox.size if inbox else 0))
            self._segments.append(grown)
            if inbox is not None:  # the worker still maps it until its next message; the name can go now
                self._segments.remove(inbox)
                inbox.close()
                inbox.unlink()
            self._inboxes[k] = inbox = grown
        where = ShardLocation(inbox.name, x.shape, x.dtype.str, y.shape, y.dtype.str, y_offset)
        target_x, target_y = where.arrays(inbox)
        target_x[...] = x
        target_y[...] = y
        del target_x, target_y  # no view may outlive the step, or the segment could not close
        return where

    def _collect(self, count: int, world: ProcessWorld | None,
                 step_timeout: float | None | str = "default") -> dict[int, Any]:
        """Wait for ``count`` replies; fail fast if a worker dies, hangs, or shutdown() is called."""
        try:
            return self._wait_replies(count, self.step_timeout if step_timeout == "default" else step_timeout)
        except BaseException as error:
            # A dead, hung or interrupted step: peers waiting for batch statistics are released,
            # and the pipes may still hold replies of this step, so the executor cannot go on.
            if world is not None:
                with contextlib.suppress(Exception):
                    world.abort(getattr(error, "worker_id", None), str(error).splitlines()[0] if str(error) else "")
            if self._broken is None:
                self._broken = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise

    def _wait_replies(self, count: int, step_timeout: float | None) -> dict[int, Any]:
        pending = {self._connections[k]: k for k in range(count)}
        sentinels = {self._processes[k].sentinel: k for k in range(count)}
        replies: dict[int, Any] = {}
        started = time.monotonic()
        while pending:
            if self._closing:
                raise WorkerError("process executor: shutdown() was called during the step")
            ready = wait(list(pending) + list(sentinels), timeout=0.2)
            for item in ready:
                if item in pending:
                    k = pending.pop(item)
                    try:
                        replies[k] = item.recv()
                    except (EOFError, OSError):  # the worker's end closed: it died
                        raise WorkerError(self._death_message(k), k) from None
            for sentinel, k in list(sentinels.items()):
                if k in replies:
                    del sentinels[sentinel]
                elif sentinel in ready and not self._connections[k].poll():
                    raise WorkerError(self._death_message(k), k)
            if step_timeout is not None and pending and time.monotonic() - started > step_timeout:
                missing = sorted(pending.values())
                raise WorkerError(f"process executor: worker {missing[0]} sent no reply within "
                                  f"step_timeout={step_timeout:g} s (busy workers: {missing})", missing[0])
        return replies

    def _death_message(self, k: int) -> str:
        process = self._processes[k]
        process.join(0.2)
        return (f"process executor: worker {k} (pid {process.pid}) died with exit code {process.exitcode} "
                "during the step")

    def shutdown(self, timeout: float = 30) -> bool:
        """Stop the workers and free the shared memory, within about ``timeout`` + 0.5 seconds.

        Safe to call twice and from another thread while a step runs (that
        step then raises ``WorkerError``). True if every worker stopped by itself.
        """
        self._closing = True
        # A step running in another thread notices _closing within 0.2 s and lets go of the lock.
        got_lock = self._step_lock.acquire(timeout=1.0)
        try:
            self.params = None
            self.grads = []
            self._param_views = {}
            self._grad_views = []
            self._inboxes = []
            polite = _release(self._processes, self._connections, self._segments, timeout)
            if self._world is not None:
                self._world.close()
        finally:
            if got_lock:
                self._step_lock.release()
        atexit.unregister(self._finalizer)
        self._finalizer.detach()
        if not polite:
            logger.warning("process executor: workers did not stop within %g s and were killed", timeout)
        return polite


class _Serving:
    """``serve(communicator)`` on the master's rank of the world, in a thread, while the workers run."""

    def __init__(self, serve: Callable[[Any], None], world: ProcessWorld) -> None:
        self.world = world
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, args=(serve, world.communicator(world.size - 1)),
                                       name="tinyai-master-serve", daemon=True)
        self.thread.start()

    def _main(self, serve: Callable[[Any], None], comm: Any) -> None:
        try:
            serve(comm)
        except BaseException as error:  # workers waiting for an answer must not wait for ever
            self.error = error
            with contextlib.suppress(Exception):
                self.world.abort(self.world.size - 1, f"the master's server failed: {type(error).__name__}: {error}")

    def join(self) -> None:
        """Wait for ``serve`` to return; if the workers are gone, release it (abort the world) first."""
        self.thread.join(5.0)
        if self.thread.is_alive():  # it waits for workers that will not come: wake it up
            with contextlib.suppress(Exception):
                self.world.abort(None, "the workers stopped while the master was serving them")
            self.thread.join(5.0)


def _remote_error(k: int, reply: Failed) -> RuntimeError:
    return RuntimeError(f"{reply.type_name}: {reply.message}\n--- worker {k} traceback ---\n{reply.traceback}")


_BLAS_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def _blas_environment() -> Iterator[None]:
    """Workers started inside the block use one BLAS thread each (the variables are read at start-up)."""
    saved = {k: os.environ.get(k) for k in _BLAS_VARIABLES}
    os.environ.update({k: "1" for k in _BLAS_VARIABLES})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


_main_lock = threading.Lock()


@contextlib.contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Start processes inside the block without their importing the user's script again.

    multiprocessing tells a spawned child to import the parent's ``__main__``
    file (as ``__mp_main__``) so that classes defined there can be unpickled;
    that runs every unguarded line of the script again. When nothing sent to
    the workers refers to ``__main__``, they do not need it: for the moment
    of ``Process.start()`` the parent shows multiprocessing a main module with
    no file.
    """
    with _main_lock:
        main = sys.modules.get("__main__")
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            yield
        finally:
            sys.modules["__main__"] = main


def script_has_main_guard(path: str) -> bool:
    """True when the script at ``path`` has a top-level ``if __name__ == "__main__":`` block."""
    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
    except (OSError, SyntaxError, ValueError):
        return True  # cannot tell: do not refuse
    for node in tree.body:
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test) and "__name__" in ast.unparse(node.test):
            return True
    return False


def choose_start_method(payload: bytes) -> str:
    """'spawn' (a fresh interpreter per worker: safe with threads around), unless
    the pickled model refers to classes of an interactive ``__main__`` (a
    notebook or the REPL) that a fresh interpreter cannot import: then 'fork',
    which copies the running interpreter, classes included.

    Raises ValueError when the classes are in a script without a ``__main__``
    guard: every worker would run the script's body again to import them."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None) if main is not None else None
    if b"__main__" not in payload:
        return "spawn"
    if path is None:
        if "fork" not in mp.get_all_start_methods():
            raise RuntimeError("process executor: the model uses classes defined interactively (in a notebook "
                               "or the REPL), which worker processes can only get by 'fork', and this system "
                               "has no fork; move the classes into a module, or use backend='thread'")
        logger.info("process executor: the model's classes live in an interactive __main__; starting "
                    "workers with 'fork'")
        return "fork"
    if not script_has_main_guard(path):
        raise ValueError(
            f"process executor: the model's classes are defined in the script {path}, which every worker "
            "process must import again, and the script has no 'if __name__ == \"__main__\":' guard, so its "
            "whole body would run again in each worker. Put the training code under that guard (see "
            "docs/data-parallel.md), move the classes into a module, or use backend='thread'")
    return "spawn"


def _pickled_without_grads(model: Any, loss: Any) -> bytes:
    """The pickled (model, loss), gradients left out (not worth sending); the model keeps its own."""
    grads = [(p, p.grad) for p in model.params()]
    for p, _ in grads:
        p.grad = None
    try:
        return pickle.dumps((model, loss), protocol=pickle.HIGHEST_PROTOCOL)
    finally:
        for p, grad in grads:
            p.grad = grad
