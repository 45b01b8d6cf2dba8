"""Asynchronous parameter servers over messages: worker processes and MPI ranks.

On threads an asynchronous worker calls the servers directly (``ServerShard``
in ``parameter_server.py``). Worker processes and MPI ranks share no memory
with the servers, so there the same conversation travels as messages over a
``Communicator`` (``send``, ``recv``, and ``recv_any`` for a server that
answers whoever asks first). Worker k, with M servers:

    worker k                                   the rank that serves partition s
    PULL s                       -------->      (first step only)
                                 <--------      VALUES s: its version and parameters
    ... forward and backward on one batch ...
    PUSH s, version read, reply? -------->      applied at once, one push at a time;
                                 <--------      s = 0: VALUES (the next step's parameters),
                                                the last step: ACK; other s: no reply yet
    PULL s (s > 0)               -------->
                                 <--------      VALUES s, with the lag of k's last push to s
    DONE (or DONE failed)        -------->      once per server rank, after k's last batch

A push to partition 0 is answered with the values of the next step, so with
one server (the default) a step costs a single round trip. The other
partitions are pulled only after that answer: in stale mode the keeper may
hold it back, and what k reads of every partition must be read after the
wait, or other workers could move those partitions meanwhile and break the
bound. Each answer carries the *lag* of the push it follows: the number of
updates the server applied between k's read and k's push (its staleness).

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
It holds back the values it owes k (the answer to k's push or pull of
partition 0) while k is more than ``staleness`` steps ahead of the slowest
worker that has not finished: the thread version's ``_Clocks``, as messages.
How long an answer was held back travels with it (``wait_time_s``).

Failures. A worker whose step raises sends DONE marked failed and returns
its error; the keeper then answers with STOP instead of values, so the other
workers finish at their next step instead of waiting for the failed one, and
the strategy raises ``WorkerError`` naming the worker (under MPI on every
rank: every rank receives every worker's summary). A worker process that
dies (SIGKILL) is noticed by the process executor within a fraction of a
second; it aborts the world, which releases the servers' thread and the
other workers. Every wait is bounded by the communicator's time-out (60 s
on the process world, 300 s under MPI): a single step, or a wait held back
for a straggler, longer than that ends the epoch with ``CommunicatorError``
instead of waiting on.

Every message is one uint8 array: a header of five int64 (kind, partition
and three numbers) and a body: parameter bytes, or for a push one byte per
parameter of the partition saying whether it has a gradient, then the
gradients (raw, or the bytes of ``encode_arrays`` when the workers compress).
On worker processes the numbers need not travel inside the messages: each
worker has a buffer in shared memory that the master maps too (the
executor's gradient buffer, idle in asynchronous training), so a push's
gradients and the answer's values are written there and the messages only
carry the header (compressed pushes still carry their bytes). The messages
say who may touch the buffer when: the worker writes its gradients, then
pushes; the server reads them, writes the values, then answers; the worker
reads the values, and writes again only after the last answer of the step.
(Pickling 0.4 MB through a pipe each way cost several milliseconds a step,
more than the MNIST MLP's step itself.)
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
#: What a PUSH asks for in reply: nothing yet (the next PULL's answer carries its lag), the
#: next step's values, or an ACK (the last push of the epoch).
LATER, THEN_VALUES, THEN_ACK = 0, 1, 2
_HEADER = 5  # int64 fields: kind, partition, and three numbers


def message(kind: int, part: int = 0, a: int = 0, b: int = 0, c: int = 0, body: Sequence[Any] = ()) -> np.ndarray:
    """One message: the header (kind, partition, a, b, c) and the bytes of ``body``'s arrays, as uint8.

    Requests use a, b for (version read, reply wanted), DONE uses a for "failed";
    replies use a, b, c for (version, lag of the push answered, nanoseconds held back).
    """
    pieces = [np.array([kind, part, a, b, c], dtype=np.int64).view(np.uint8)]
    pieces += [np.ascontiguousarray(piece).reshape(-1).view(np.uint8) for piece in body]
    return np.concatenate(pieces)


def read_message(raw: Any) -> tuple[int, int, int, int, int, np.ndarray]:
    """(kind, partition, a, b, c, body bytes) of a message."""
    raw = np.asarray(raw, dtype=np.uint8).reshape(-1)
    kind, part, a, b, c = (int(v) for v in raw[:_HEADER * 8].copy().view(np.int64))
    return kind, part, a, b, c, raw[_HEADER * 8:]


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
        shared: worker rank -> its shared buffer (name -> array) when the numbers travel there
            (worker processes), or None when they travel inside the messages.
    """

    def __init__(self, comm: Any, shards: dict[int, Any], workers: Sequence[int], bound: int | None,
                 compressor: Any = None, shared: dict[int, dict[str, Any]] | None = None) -> None:
        self.comm = comm
        self.shared = shared
        self.shards = shards
        self.workers = list(workers)
        self.bound = bound
        self.compressor = compressor
        self.keeps_clocks = 0 in shards
        self.clock = {rank: 0 for rank in self.workers}
        self.done: set[int] = set()
        self.failed: int | None = None
        #: The values of partition 0 owed to a worker and held back (stale mode): (rank, lag, since).
        self.held: list[tuple[int, int, float]] = []
        #: (worker rank, partition) -> the lag of its last push, told with the next answer.
        self.untold: dict[tuple[int, int], int] = {}

    def serve(self) -> None:
        """Answer PULL, PUSH and DONE messages, one at a time, until every worker has sent DONE."""
        while len(self.done) < len(self.workers):
            source, raw = self.comm.recv_any(REQUEST_TAG)
            kind, part, a, b, _, body = read_message(raw)
            if source not in self.clock:
                raise ValueError(f"parameter server: a message from rank {source}, which is not a worker "
                                 f"(workers: {self.workers})")
            if kind == PULL:
                self._answer(source, part, self.untold.pop((source, part), 0))
            elif kind == PUSH:
                self._push(source, part, a, b, body)
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

    def _answer(self, source: int, part: int, lag: int) -> None:
        """Send ``source`` partition ``part``'s values, unless the keeper must stop or hold them back."""
        shard = self._shard(part, source)
        if part == 0 and self.keeps_clocks:
            if self.failed is not None:
                self.comm.send(message(STOP, part, 0, lag), source, REPLY_TAG)
                return
            if not self._may_go(source):
                self.held.append((source, lag, time.perf_counter()))
                return
        self._send_values(source, part, lag, 0)

    def _send_values(self, source: int, part: int, lag: int, waited_ns: int) -> None:
        shard = self.shards[part]
        values = [p.data for _, p in shard.pairs]
        if self.shared is not None:  # into the worker's buffer; the message only says they are there
            buffer = self.shared[source]
            for name, p in shard.pairs:
                buffer[name][...] = p.data
            values = []
        self.comm.send(message(VALUES, part, shard.version, lag, waited_ns, values), source, REPLY_TAG)

    def _may_go(self, rank: int) -> bool:
        """Stale mode: is worker ``rank`` at most ``bound`` steps ahead of the slowest still training?"""
        if self.bound is None:
            return True
        active = [clock for r, clock in self.clock.items() if r not in self.done]
        return self.clock[rank] - min(active) <= self.bound

    def _release(self) -> None:
        """Send the held-back values that may go now (STOP instead, after a failure)."""
        still = []
        for source, lag, since in self.held:
            if self.failed is not None:
                self.comm.send(message(STOP, 0, 0, lag), source, REPLY_TAG)
            elif self._may_go(source):
                self._send_values(source, 0, lag, int((time.perf_counter() - since) * 1e9))
            else:
                still.append((source, lag, since))
        self.held = still

    def _push(self, source: int, part: int, read: int, reply: int, body: np.ndarray) -> None:
        shard = self._shard(part, source)
        names = [name for name, _ in shard.pairs]
        present = [name for name, flag in zip(names, body[:len(names)]) if flag]
        like = {name: p.data for name, p in shard.pairs}
        wire = body[len(names):]
        if self.compressor is not None:  # the worker's bytes, decoded here
            gradients = decode_arrays(self.compressor, wire, like, present) if present else {}
        elif self.shared is not None:  # the worker wrote them into its buffer and waits for the answer
            gradients = {name: self.shared[source][name] for name in present}
        else:
            gradients = {name: np.empty_like(like[name]) for name in present}
            _load(wire, [gradients[name] for name in present])
        lag = shard.apply(gradients) - read
        if part == 0 and self.keeps_clocks:
            self.clock[source] += 1
        if reply == THEN_VALUES:
            self._answer(source, part, lag)
        elif reply == THEN_ACK:
            self.comm.send(message(ACK, part, shard.version, lag), source, REPLY_TAG)
        else:
            self.untold[(source, part)] = lag
        if part == 0 and self.keeps_clocks:
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
        shared: True when the numbers travel through the worker's shared buffer
            (``WorkerContext.shared``, worker processes), False when inside the messages.
    """

    index: int
    batches: list
    groups: list
    server_ranks: list
    delay: float = 0.0
    compressor: Any = None
    shared: bool = False


def _reply(comm: Any, rank: int, part: int) -> tuple[int, int, int, int, np.ndarray]:
    """(kind, version, lag, nanoseconds held back, body) of the next answer from ``rank`` about ``part``."""
    kind, got, version, lag, waited_ns, body = read_message(comm.recv(rank, REPLY_TAG))
    if got != part:
        raise RuntimeError(f"parameter server: expected an answer about partition {part} from rank {rank}, "
                           f"got one about partition {got}")
    return kind, version, lag, waited_ns, body


def work(worker: Any, plan: WorkerPlan) -> dict:
    """Worker k's epoch: for each batch pull, compute, push; a summary of what happened.

    Returns {"losses", "lags", "waits", "error", "traceback"}: each step's
    loss and staleness, the seconds each held-back answer waited, and None or
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
    ranks, groups = plan.server_ranks, plan.groups
    shared = worker.shared if plan.shared else None

    def load(part: int, body: np.ndarray) -> None:
        if shared is not None:
            for name in groups[part]:
                params[name].data[...] = shared[name]
        else:
            _load(body, [params[name].data for name in groups[part]])

    try:
        read = [0] * len(ranks)
        if plan.batches:
            comm.send(message(PULL, 0), ranks[0], REQUEST_TAG)
            kind, read[0], _, waited_ns, body = _reply(comm, ranks[0], 0)
        last = len(plan.batches) - 1
        for i, (x, y) in enumerate(plan.batches):
            # Partition 0's values (the answer to the previous push, or the first pull) come first:
            # the keeper may have held them back, and every other partition is read after that.
            if kind == STOP:  # another worker failed: stop, it is reported
                break
            if waited_ns:
                summary["waits"].append(waited_ns / 1e9)
            load(0, body)
            lags = [summary["lags"].pop()] if i else []  # the last step's lag, completed below
            for s in range(1, len(ranks)):
                comm.send(message(PULL, s), ranks[s], REQUEST_TAG)
            for s in range(1, len(ranks)):
                _, read[s], lag, _, part_body = _reply(comm, ranks[s], s)
                load(s, part_body)
                lags.append(lag)
            if i:
                summary["lags"].append(max(lags))
            if plan.delay:
                time.sleep(plan.delay)
            model.clear_grads()
            loss = worker.loss.loss(Variable(y, requires_grad=False), model(Variable(x, requires_grad=False)))
            loss.backward()
            loss.unchain_backward()
            grads = {name: p.grad.data.astype(p.data.dtype, copy=False)
                     for name, p in params.items() if p.grad is not None}
            summary["losses"].append(float(loss.item()))
            for s, names in enumerate(groups):
                reply = THEN_ACK if i == last else THEN_VALUES if s == 0 else LATER
                comm.send(_push_message(s, read[s], reply, names, grads, compressor, shared), ranks[s], REQUEST_TAG)
            if i == last:
                summary["lags"].append(max(_reply(comm, ranks[s], s)[2] for s in range(len(ranks))))
            else:  # partition 0's answer: the next step's values (or STOP), and this push's lag so far
                kind, read[0], lag, waited_ns, body = _reply(comm, ranks[0], 0)
                summary["lags"].append(lag)
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


def _push_message(part: int, read: int, reply: int, names: Sequence[str], grads: dict[str, Any],
                  compressor: Any, shared: dict[str, Any] | None) -> np.ndarray:
    """PUSH of partition ``part``: which names have a gradient, then the gradients (compressed, if asked;
    written into the shared buffer instead, if there is one)."""
    present = [name for name in names if name in grads]
    mask = np.array([name in grads for name in names], dtype=np.uint8)
    if compressor is not None:
        wire = encode_arrays(compressor, {name: grads[name] for name in present}, present)
        return message(PUSH, part, read, reply, body=[mask, wire])
    if shared is not None:
        for name in present:
            shared[name][...] = grads[name]
        return message(PUSH, part, read, reply, body=[mask])
    return message(PUSH, part, read, reply, body=[mask] + [grads[name] for name in present])


def run_rank(worker: Any, plan: WorkerPlan | None, server: ServerRank | None) -> dict | None:
    """One MPI rank's epoch: serve (the first M ranks) or work (the others)."""
    if server is not None:
        server.serve()
        return None
    return work(worker, plan)
