"""Asynchronous parameter servers over messages: worker processes and MPI ranks.

On threads an asynchronous worker calls the servers directly (``ServerShard``
in ``parameter_server.py``). Worker processes and MPI ranks share no memory
with the servers, so there the same conversation travels as messages over a
``Communicator`` (``send``, ``recv``, and ``recv_any`` for a server that
answers whoever asks first). One step of worker k, with M servers:

    worker k                                       the rank that serves partition s
    PULL s                          -------->       VALUES s: its version, its parameters
                                    <--------       (stale mode: the clock keeper may hold this back)
    ... forward and backward on k's batch ...
    PUSH s, version read, gradient  -------->       applied at once, one push at a time
                                    <--------       ACK: the lag (updates since the read)
    DONE (or DONE failed)           -------->       once per server rank, after k's last batch

The same code runs in both places; only where the servers sit differs:

* **Worker processes** (``ProcessExecutor``): all M servers live in one
  thread of the master, the Trainer's process, on the master's own rank of
  the workers' shared-memory world (``ProcessExecutor.run(..., serve=)``).
  They update the master model and the Trainer's optimizer state in place,
  exactly as on threads, so evaluation and checkpoints see them.
* **MPI**: server s is rank s (s < M), and the other N - M ranks are the
  workers. The server ranks do not train: a rank that also trained would
  answer pushes only between its own steps (or from a thread sharing the
  interpreter lock with its training), so every worker would wait for it.
  After the epoch each server broadcasts its partition, so every rank ends
  the epoch with the same parameters; partition s's optimizer state stays on
  rank s (as in sync mode).

Stale-synchronous waiting. The rank that serves partition 0 keeps the clocks:
worker k's clock is the number of its pushes that partition 0 has applied.
Every step starts with a PULL of partition 0, and the keeper holds back its
answer while k is more than ``staleness`` steps ahead of the slowest worker
that has not finished (the thread version's ``_Clocks``, as messages). The
time a reply was held back travels with it (``wait_time_s``).

Failures. A worker whose step raises sends DONE marked failed and returns
its error; the keeper then answers every PULL with STOP, so the other workers
finish at their next step instead of waiting for the failed one, and the
strategy raises ``WorkerError`` naming the worker (under MPI on every rank:
every rank receives every worker's summary). A worker process that dies
(SIGKILL) is noticed by the process executor within a fraction of a second;
it aborts the world, which releases the servers' thread and the other workers.

Every message is one uint8 array: a header of four int64 (kind, partition,
two numbers) and a body (parameter or gradient bytes; a push's body starts
with one byte per parameter of the partition saying whether it has a
gradient, then the gradients: raw, or the bytes of ``encode_arrays`` when the
workers compress).
"""
from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from tinyai.autograd import Variable
from tinyai.parallel.compression import decode_arrays, encode_arrays

__all__ = ["ServerRank", "WorkerPlan", "work", "run_rank"]

#: Message tags: requests to a server rank, and its replies.
REQUEST_TAG = 71
REPLY_TAG = 72

#: Message kinds.
PULL, PUSH, DONE, VALUES, ACK, STOP = 1, 2, 3, 4, 5, 6
_HEADER = 4  # int64 fields


def message(kind: int, part: int = 0, a: int = 0, b: int = 0, body: Sequence[Any] = ()) -> np.ndarray:
    """One message: the header (kind, partition, a, b) and the bytes of ``body``'s arrays, as uint8."""
    pieces = [np.array([kind, part, a, b], dtype=np.int64).view(np.uint8)]
    pieces += [np.ascontiguousarray(piece).reshape(-1).view(np.uint8) for piece in body]
    return np.concatenate(pieces)


def read_message(raw: Any) -> tuple[int, int, int, int, np.ndarray]:
    """(kind, partition, a, b, body bytes) of a message."""
    raw = np.asarray(raw, dtype=np.uint8).reshape(-1)
    kind, part, a, b = (int(v) for v in raw[:_HEADER * 8].copy().view(np.int64))
    return kind, part, a, b, raw[_HEADER * 8:]


def _values(pairs: Sequence[tuple[str, Any]]) -> list[Any]:
    return [p.data for _, p in pairs]


def _load(body: np.ndarray, targets: Sequence[Any]) -> None:
    """Copy the bytes of ``body`` into ``targets`` (arrays), one after another."""
    offset = 0
    for target in targets:
        size = target.nbytes
        target[...] = body[offset:offset + size].view(target.dtype).reshape(target.shape)
        offset += size
    if offset != body.size:
        raise ValueError(f"parameter server: a message of {body.size} bytes for parameters of {offset} bytes")


class ServerRank:
    """The servers one rank keeps, answering the workers' messages until every worker is done.

    Args:
        comm: this rank's communicator (the workers reach it through theirs).
        shards: partition number -> ``ServerShard`` kept here.
        workers: the ranks of the workers.
        bound: ``staleness`` in stale mode, None in async mode.
        compressor: the strategy's compressor if the workers compress their pushes, else None.
    """

    def __init__(self, comm: Any, shards: dict[int, Any], workers: Sequence[int], bound: int | None,
                 compressor: Any = None) -> None:
        self.comm = comm
        self.shards = shards
        self.workers = list(workers)
        self.bound = bound
        self.compressor = compressor
        self.keeps_clocks = 0 in shards
        self.clock = {rank: 0 for rank in self.workers}
        self.done: set[int] = set()
        self.failed: int | None = None
        self.held: list[tuple[int, float]] = []  # PULLs of partition 0 held back: (worker rank, since)

    def serve(self) -> None:
        """Answer PULL, PUSH and DONE messages, one at a time, until every worker has sent DONE."""
        while len(self.done) < len(self.workers):
            source, raw = self.comm.recv_any(REQUEST_TAG)
            kind, part, a, b, body = read_message(raw)
            if source not in self.clock:
                raise ValueError(f"parameter server: a message from rank {source}, which is not a worker "
                                 f"(workers: {self.workers})")
            if kind == PULL:
                self._pull(source, part)
            elif kind == PUSH:
                self._push(source, part, a, body)
            elif kind == DONE:
                self.done.add(source)
                if a and self.failed is None:
                    self.failed = source
                self._release()
            else:
                raise ValueError(f"parameter server: unknown message kind {kind} from rank {source}")

    def _shard(self, part: int, source: int) -> Any:
        if part not in self.shards:
            raise ValueError(f"parameter server: rank {source} asked for partition {part}, which rank "
                             f"{self.comm.rank} does not keep (it keeps {sorted(self.shards)})")
        return self.shards[part]

    def _pull(self, source: int, part: int) -> None:
        shard = self._shard(part, source)
        if part == 0 and self.keeps_clocks:
            if self.failed is not None:
                self.comm.send(message(STOP), source, REPLY_TAG)
                return
            if not self._may_go(source):
                self.held.append((source, time.perf_counter()))
                return
        self.comm.send(message(VALUES, part, shard.version, 0, _values(shard.pairs)), source, REPLY_TAG)

    def _may_go(self, rank: int) -> bool:
        """Stale mode: is worker ``rank`` at most ``bound`` steps ahead of the slowest still training?"""
        if self.bound is None:
            return True
        active = [clock for r, clock in self.clock.items() if r not in self.done]
        return self.clock[rank] - min(active) <= self.bound

    def _release(self) -> None:
        """Answer the held PULLs that may go now (all of them, with STOP, after a failure)."""
        still = []
        for source, since in self.held:
            if self.failed is not None:
                self.comm.send(message(STOP), source, REPLY_TAG)
            elif self._may_go(source):
                waited_ns = int((time.perf_counter() - since) * 1e9)
                shard = self.shards[0]
                self.comm.send(message(VALUES, 0, shard.version, waited_ns, _values(shard.pairs)), source, REPLY_TAG)
            else:
                still.append((source, since))
        self.held = still

    def _push(self, source: int, part: int, read: int, body: np.ndarray) -> None:
        shard = self._shard(part, source)
        names = [name for name, _ in shard.pairs]
        present = [name for name, flag in zip(names, body[:len(names)]) if flag]
        like = {name: p.data for name, p in shard.pairs}
        wire = body[len(names):]
        if self.compressor is not None:  # the worker's bytes, decoded here
            gradients = decode_arrays(self.compressor, wire, like, present) if present else {}
        else:
            gradients = {name: np.empty_like(like[name]) for name in present}
            _load(wire, [gradients[name] for name in present])
        replaced = shard.apply(gradients)
        self.comm.send(message(ACK, part, replaced - read, shard.version), source, REPLY_TAG)
        if part == 0 and self.keeps_clocks:
            self.clock[source] += 1
            self._release()


@dataclass
class WorkerPlan:
    """What one asynchronous worker does in an epoch.

    Attributes:
        index: the worker's number k (0 .. W-1), for its compressor and the straggler option.
        batches: its whole batches, (x, y) each.
        groups: the parameter names of each partition, in the servers' order.
        server_ranks: the rank that serves each partition.
        delay: seconds added to each of its steps (the ``straggler`` option), 0 for none.
        compressor: the strategy's compressor (the worker compresses with its own copy), or None.
    """

    index: int
    batches: list
    groups: list
    server_ranks: list
    delay: float = 0.0
    compressor: Any = None


def _ask(comm: Any, rank: int, part: int) -> tuple[int, int, int, int, np.ndarray]:
    reply = read_message(comm.recv(rank, REPLY_TAG))
    if reply[0] != STOP and reply[1] != part:
        raise RuntimeError(f"parameter server: asked rank {rank} for partition {part}, got partition {reply[1]}")
    return reply


def work(worker: Any, plan: WorkerPlan) -> dict:
    """Worker k's epoch: for each batch pull, compute, push; a summary of what happened.

    Returns {"losses", "lags", "waits", "error", "traceback"}: each step's
    loss and staleness, the seconds each held-back pull waited, and None or
    the error that stopped the worker, as text (reported by the strategy).
    """
    comm, model = worker.world, worker.model
    if not worker.state.get("ps_private"):
        # Process replicas read the master's parameters in shared memory: a worker that loads
        # what it pulls needs arrays of its own.
        for p in model.params():
            p.data = p.data.copy()
        worker.state["ps_private"] = True
    params = dict(model.named_params())
    compressor = None
    if plan.compressor is not None:  # the worker's own copy: its residuals carry over between epochs
        if worker.state.get("ps_compression") != repr(plan.compressor):
            worker.state["ps_compressor"] = plan.compressor.for_worker(plan.index)
            worker.state["ps_compression"] = repr(plan.compressor)
        compressor = worker.state["ps_compressor"]
    if hasattr(model, "train"):
        model.train()
    summary: dict[str, Any] = {"losses": [], "lags": [], "waits": [], "error": None, "traceback": ""}
    ranks = plan.server_ranks
    try:
        for x, y in plan.batches:
            comm.send(message(PULL, 0), ranks[0], REQUEST_TAG)  # first: the keeper may hold it back
            kind, _, version, waited_ns, body = _ask(comm, ranks[0], 0)
            if kind == STOP:  # another worker failed: stop, it is reported
                break
            if waited_ns:
                summary["waits"].append(waited_ns / 1e9)
            read = [version]
            _load(body, [params[name].data for name in plan.groups[0]])
            for s in range(1, len(ranks)):
                comm.send(message(PULL, s), ranks[s], REQUEST_TAG)
            for s in range(1, len(ranks)):
                _, _, version, _, body = _ask(comm, ranks[s], s)
                read.append(version)
                _load(body, [params[name].data for name in plan.groups[s]])
            if plan.delay:
                time.sleep(plan.delay)
            model.clear_grads()
            loss = worker.loss.loss(Variable(y, requires_grad=False), model(Variable(x, requires_grad=False)))
            loss.backward()
            loss.unchain_backward()
            grads = {name: p.grad.data.astype(p.data.dtype, copy=False)
                     for name, p in params.items() if p.grad is not None}
            for s, names in enumerate(plan.groups):
                comm.send(_push_message(s, read[s], names, grads, compressor), ranks[s], REQUEST_TAG)
            lag = 0
            for s in range(len(ranks)):
                _, _, replaced_lag, _, _ = _ask(comm, ranks[s], s)
                lag = max(lag, replaced_lag)
            summary["lags"].append(lag)
            summary["losses"].append(float(loss.item()))
    except Exception as error:  # reported by the strategy, naming this worker
        summary["error"] = f"{type(error).__name__}: {error}"
        summary["traceback"] = "".join(traceback.format_exception(error))
    for rank in sorted(set(ranks)):
        try:
            comm.send(message(DONE, 0, int(summary["error"] is not None)), rank, REQUEST_TAG)
        except Exception:  # the world is already aborted: nobody waits for this DONE
            if summary["error"] is None:
                raise
    return summary


def _push_message(part: int, read: int, names: Sequence[str], grads: dict[str, Any], compressor: Any) -> np.ndarray:
    """PUSH of partition ``part``: which names have a gradient, then the gradients (compressed, if asked)."""
    present = [name for name in names if name in grads]
    mask = np.array([name in grads for name in names], dtype=np.uint8)
    if compressor is not None:
        wire = encode_arrays(compressor, {name: grads[name] for name in present}, present)
        return message(PUSH, part, read, 0, [mask, wire])
    return message(PUSH, part, read, 0, [mask] + [grads[name] for name in present])


def run_rank(worker: Any, plan: WorkerPlan | None, server: ServerRank | None) -> dict | None:
    """One MPI rank's epoch: serve (the first M ranks) or work (the others)."""
    if server is not None:
        server.serve()
        return None
    return work(worker, plan)
