"""Data parallelism on processes: persistent workers and shared memory.

Threads share one interpreter lock, so the Python half of autograd runs one
thread at a time; processes do not have that limit. Each worker process holds
a replica for the whole of training. Two kinds of shared memory carry the
numbers, so nothing large is pickled per step:

* one flat parameter buffer, written by the master before each step; every
  replica's parameters *are* views into it, so a worker sees the new values
  without copying;
* one flat gradient buffer per worker, which the worker fills and the master
  reads;
* one input buffer per worker, into which the master copies the worker's
  shard of the batch (grown when a larger shard comes along).

Only a few bytes of control travel through a pipe.
Workers start with 'spawn' (a fresh interpreter), or with 'fork' when the
model's classes were defined in a notebook, where a fresh interpreter could
not import them. Every worker and segment is released by ``shutdown()``, which also runs when
the executor is garbage-collected and at interpreter exit; a worker that dies
is noticed within a second, and the step fails with an error instead of
waiting for ever.
"""
from __future__ import annotations

import atexit
import logging
import multiprocessing as mp
import os
import pickle
import signal
import sys
import time
import traceback
import weakref
from dataclasses import dataclass
from multiprocessing import shared_memory
from multiprocessing.connection import wait
from typing import Any

import numpy as np

from tinyai.parallel.processor import BatchProcessResult, ParallelBatchProcessor

logger = logging.getLogger(__name__)


COLLECTIVE_CAPACITY = 1 << 16  # float64 values per worker in one all-reduce


class WorkerFailedError(RuntimeError):
    """A worker process died or stopped answering."""


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


def _attach(name: str) -> shared_memory.SharedMemory:
    """Open a segment created by the master.

    Spawned workers share the master's resource tracker, so attaching only
    re-registers a name the tracker already knows; the master alone unlinks.
    """
    return shared_memory.SharedMemory(name=name)


def _worker_main(worker_id: int, conn: Any, payload: bytes, layout: FlatLayout, param_name: str,
                 grad_name: str, collective_name: str, barriers: list) -> None:
    """The loop of one worker process: wait for a shard, compute, write gradients, reply."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the master's to handle
    segments = [_attach(name) for name in (param_name, grad_name, collective_name)]
    try:
        _serve(worker_id, conn, payload, layout, segments, barriers)
    except (EOFError, KeyboardInterrupt):
        pass
    finally:
        for segment in segments:
            try:
                segment.close()
            except BufferError:  # arrays still point into it; the process ends anyway
                pass


def _serve(worker_id: int, conn: Any, payload: bytes, layout: FlatLayout, segments: list, barriers: list) -> None:
    from tinyai.backend import using_communicator, using_rng
    from tinyai.parallel.collective import ProcessCommunicator, ShardRandom
    from tinyai.parallel.sharding import copy_buffers

    param_segment, grad_segment, collective_segment = segments
    model, loss = pickle.loads(payload)
    params = np.ndarray((layout.size,), dtype=layout.dtype, buffer=param_segment.buf)
    grads = np.ndarray((layout.size,), dtype=layout.dtype, buffer=grad_segment.buf)
    slots = np.ndarray((len(barriers), COLLECTIVE_CAPACITY), dtype=np.float64, buffer=collective_segment.buf)
    named = dict(model.named_params())
    for name, view in layout.views(params).items():
        named[name].data = view  # the replica reads the master's values in place
    grad_views = layout.views(grads)
    inbox: shared_memory.SharedMemory | None = None
    while True:
        message = conn.recv()
        if message is None:
            _close(inbox)
            return
        where, total, (start, stop), shards, rng_state, buffers, training = message
        if model.training != training:
            model.train(training)
        if inbox is None or inbox.name != where.segment:
            _close(inbox)
            inbox = _attach(where.segment)
        x, y = where.arrays(inbox)
        copy_buffers(_Buffers(buffers), model)
        rng = ShardRandom(rng_state, start, stop, total)
        group = ProcessCommunicator(slots, barriers[shards - 1], worker_id, shards)
        with using_rng(rng), using_communicator(group):
            result = ParallelBatchProcessor(model, loss, x, y, worker_id, total_batch_size=total).run()
        if result.success:
            for name, view in grad_views.items():
                g = result.gradients.get(name)
                if g is None:
                    view[...] = 0
                else:
                    view[...] = g
            conn.send(("ok", result.loss, result.batch_size, rng.state, dict(model.named_buffers()),
                       result.prediction))
        else:
            group.abort()  # peers waiting for batch statistics give up at once
            text = "".join(traceback.format_exception(result.exception))
            conn.send(("error", result.batch_size, type(result.exception).__name__,
                       str(result.exception), text))


def _close(segment: shared_memory.SharedMemory | None) -> None:
    if segment is not None:
        try:
            segment.close()
        except BufferError:  # an array still points into it; the process ends anyway
            pass


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


class _Buffers:
    """A dict of buffers seen through the ``named_buffers()`` interface of a model."""

    def __init__(self, buffers: dict) -> None:
        self.buffers = buffers

    def named_buffers(self):
        return iter(self.buffers.items())


def _release(processes: list, connections: list, segments: list, timeout: float) -> None:
    """Stop the workers (politely, then by force) and free every shared segment."""
    for conn in connections:
        try:
            conn.send(None)
        except Exception:
            pass
    deadline = time.monotonic() + timeout
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    for process in processes:
        if process.is_alive():
            process.terminate()
            process.join(2)
        if process.is_alive():
            process.kill()
            process.join(2)
    for conn in connections:
        conn.close()
    for segment in segments:
        try:
            segment.close()
            segment.unlink()
        except FileNotFoundError:
            pass
    processes.clear()
    connections.clear()
    segments.clear()


class ProcessExecutor:
    """Runs the shards of each step on persistent worker processes."""

    kind = "process"

    def __init__(self, model: Any, loss: Any, workers: int, start_method: str = "auto",
                 reply_timeout: float | None = None) -> None:
        self.workers = workers
        self.reply_timeout = reply_timeout
        self.layout = FlatLayout.of(model)
        itemsize = np.dtype(self.layout.dtype).itemsize
        nbytes = max(1, self.layout.size * itemsize)
        self._processes: list = []
        self._connections: list = []
        self._segments: list = []
        # The finalizer holds the lists, not self: it frees everything even if
        # the executor is dropped without shutdown(), and at interpreter exit.
        self._finalizer = weakref.finalize(self, _release, self._processes, self._connections,
                                           self._segments, 5.0)
        atexit.register(self._finalizer)
        try:
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
            collective = shared_memory.SharedMemory(create=True, size=workers * COLLECTIVE_CAPACITY * 8)
            self._segments.append(collective)

            payload = pickle.dumps((_without_grads(model), loss), protocol=pickle.HIGHEST_PROTOCOL)
            if start_method == "auto":
                start_method = choose_start_method(payload)
            context = mp.get_context(start_method)
            # One barrier for each possible number of shards in a step.
            self._barriers = [context.Barrier(k) for k in range(1, workers + 1)]
            saved = {k: os.environ.get(k) for k in _BLAS_VARIABLES}
            os.environ.update({k: "1" for k in _BLAS_VARIABLES})  # one BLAS thread per worker
            try:
                for k in range(workers):
                    parent_end, child_end = context.Pipe()
                    process = context.Process(
                        target=_worker_main, name=f"tinyai-worker-{k}", daemon=True,
                        args=(k, child_end, payload, self.layout, self._param_segment.name,
                              self._grad_segments[k].name, collective.name, self._barriers))
                    process.start()
                    child_end.close()
                    self._processes.append(process)
                    self._connections.append(parent_end)
            finally:
                for key, value in saved.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value
        except BaseException:
            self.shutdown()
            raise

    @property
    def alive(self) -> bool:
        return bool(self._processes) and all(p.is_alive() for p in self._processes)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._processes]

    @property
    def segment_names(self) -> list[str]:
        return [s.name for s in self._segments]

    def _write_parameters(self, master: Any) -> None:
        for name, p in master.named_params():
            self._param_views[name][...] = p.data

    def compute(self, master: Any, x: Any, y: Any) -> list[BatchProcessResult]:
        """Each worker's loss and gradients on its shard of (x, y), master parameters in force."""
        from tinyai.backend import get_rng
        from tinyai.parallel.sharding import copy_buffers, shard_bounds

        if not self._processes:
            raise RuntimeError("ProcessExecutor: the workers have been shut down")
        self._write_parameters(master)
        bounds = shard_bounds(len(x), self.workers)
        barrier = self._barriers[len(bounds) - 1]
        if barrier.broken:  # a failed shard of the last step aborted it
            barrier.reset()
        master_rng = get_rng()
        state = master_rng.bit_generator.state
        buffers = dict(master.named_buffers()) if hasattr(master, "named_buffers") else {}
        for k, (a, b) in enumerate(bounds):
            where = self._stage_shard(k, x[a:b], y[a:b])
            try:
                self._connections[k].send((where, len(x), (a, b), len(bounds), state, buffers,
                                           getattr(master, "training", True)))
            except OSError:  # a broken pipe: the worker is gone
                raise WorkerFailedError(self._death_message(k)) from None
        replies = self._collect(len(bounds))
        results = []
        for k in range(len(bounds)):
            reply = replies[k]
            if reply[0] == "ok":
                gradients = {name: view.copy() for name, view in self._grad_views[k].items()}
                results.append(BatchProcessResult(k, reply[1], reply[2], True, None, gradients, reply[5]))
            else:
                _, size, type_name, message, text = reply
                error = RuntimeError(f"{type_name}: {message}\n--- worker {k} traceback ---\n{text}")
                results.append(BatchProcessResult(k, float("nan"), size, False, error))
        if all(r.success for r in results):
            # Every worker replayed the same draws and computed the same statistics.
            master_rng.bit_generator.state = replies[0][3]
            copy_buffers(_Buffers(replies[0][4]), master)
        return results

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

    def _collect(self, count: int) -> dict[int, tuple]:
        """Wait for ``count`` replies; fail fast if a worker process dies."""
        pending = {self._connections[k]: k for k in range(count)}
        sentinels = {self._processes[k].sentinel: k for k in range(count)}
        replies: dict[int, tuple] = {}
        started = time.monotonic()
        while pending:
            ready = wait(list(pending) + list(sentinels), timeout=1.0)
            for item in ready:
                if item in pending:
                    k = pending.pop(item)
                    try:
                        replies[k] = item.recv()
                    except (EOFError, OSError):  # the worker's end closed: it died
                        raise WorkerFailedError(self._death_message(k)) from None
            for sentinel, k in list(sentinels.items()):
                if k in replies:
                    del sentinels[sentinel]
                elif sentinel in ready and not self._connections[k].poll():
                    raise WorkerFailedError(self._death_message(k))
            if self.reply_timeout is not None and time.monotonic() - started > self.reply_timeout:
                missing = sorted(pending.values())
                raise WorkerFailedError(f"process executor: workers {missing} sent no reply within "
                                        f"{self.reply_timeout} s")
        return replies

    def _death_message(self, k: int) -> str:
        process = self._processes[k]
        process.join(0.5)
        return (f"process executor: worker {k} (pid {process.pid}) died with exit code {process.exitcode} "
                "during the step")

    def shutdown(self, timeout: float = 30) -> None:
        """Stop the workers and free the shared memory. Safe to call twice."""
        self.params = None
        self.grads = []
        self._param_views = {}
        self._grad_views = []
        self._inboxes = []
        _release(self._processes, self._connections, self._segments, timeout)
        atexit.unregister(self._finalizer)
        self._finalizer.detach()


_BLAS_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def choose_start_method(payload: bytes) -> str:
    """'spawn' (a fresh interpreter per worker: safe with threads around), unless
    the pickled model refers to classes of an interactive ``__main__`` (a
    notebook or the REPL) that a fresh interpreter cannot import: then 'fork',
    which copies the running interpreter, classes included."""
    main = sys.modules.get("__main__")
    interactive = main is None or not getattr(main, "__file__", None)
    if interactive and b"__main__" in payload:
        if "fork" not in mp.get_all_start_methods():
            raise RuntimeError("process executor: the model uses classes defined interactively (in a notebook "
                               "or the REPL), which worker processes can only get by 'fork', and this system "
                               "has no fork; move the classes into a module, or use backend='thread'")
        logger.info("process executor: the model's classes live in an interactive __main__; starting "
                    "workers with 'fork'")
        return "fork"
    return "spawn"


def _without_grads(model: Any) -> Any:
    """The model itself, with gradients dropped (they are not worth pickling)."""
    for p in model.params():
        p.grad = None
    return model
