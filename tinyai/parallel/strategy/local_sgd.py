"""Local SGD: every worker trains its own replica; the replicas are averaged every H steps.

Each step the batch is split into one shard per worker, as in synchronous
data parallelism, but nobody exchanges gradients: worker k computes the
gradient of its own shard and updates its *own* replica with its own
optimizer. Every ``sync_every`` = H steps the replicas' parameters are
averaged, weighted by the number of examples each worker trained on since
the last average, and every replica starts again from that average (which is
also what the master model holds).

Optimizer state is averaged too (the documented choice here): momentum or
Adam's moments of the replicas are averaged with the same weights at each
synchronisation and every replica continues from the averaged state, which
the master optimizer also holds (so checkpoints have it, and the replicas of
a run resumed from one start from it). Keeping each
replica's state private instead would let the replicas' momenta drift apart
between averages for no gain in traffic that matters here.

Why it is exact for H = 1 with plain SGD: one step moves each replica to
p - lr g_k; the weighted average is p - lr sum_k (n_k / N) g_k, which is the
synchronous all-reduce step on the whole batch. For H > 1 (or an optimizer
with state) it is an approximation that exchanges H times fewer bytes.

Runs on threads, worker processes and MPI ranks (``Executor.run``; the
workers keep their replica optimizers in their ``state``; under MPI each rank
is a worker and ``run`` all-gathers what the ranks return, so every rank
computes the same average in the same order). At the end of an epoch the
replicas are averaged whatever the count, so evaluation sees one model.

**With compression** (``compression=``) what crosses is each worker's
parameter *delta*: the change of its replica since the last average,
weighted by its share of the examples, w_k (p_k - p_avg). Each worker
compresses it with its own compressor (``compressor.for_worker(k)``, kept in
its state, so error-feedback residuals carry what one average dropped into
the next), the payloads' bytes are gathered (an all-gather under MPI), and
every rank decodes them in worker order and adds them to the last average:

    p_avg' = p_avg + sum_k decode(compress(w_k (p_k - p_avg)))

which is sum_k w_k p_k when nothing is dropped. Why deltas and not the
parameters themselves: a parameter is not small, and compressing it throws
away the model (top-k of a weight matrix zeroes 99% of the weights; int8
rounds every weight to 1/127 of the largest); the delta is the sum of a few
local updates, gradient-like and small, where dropped or rounded entries
cost what they cost for gradients, and error feedback sends them later.

Under compression the optimizer state is *not* exchanged: each replica
keeps its own momentum or Adam moments, as in DiLoCo-style training. Sent
dense it would cost as much as the uncompressed parameters (twice that for
Adam) and undo the compression; compressed, Adam's second moment could
average to a negative value. For momentum SGD on equal shards nothing is
lost at H = 1 (momentum is linear in the gradients, so the replicas' average
momentum is the all-reduce one); the master optimizer then holds no state,
so a checkpoint of compressed local SGD restarts the replicas' state on resume.
"""
from __future__ import annotations

import copy
import logging
from typing import Any

import numpy as np

from tinyai.backend import get_array_module
from tinyai.backend.settings import is_int
from tinyai.parallel.compression import Compressor, decode_arrays, encode_arrays, get_compressor
from tinyai.parallel.processor import BatchProcessResult, ParallelBatchProcessor
from tinyai.parallel.sharding import shard_bounds
from tinyai.parallel.stats import DENSE_ITEMSIZE, allgather_wire_bytes, allreduce_wire_bytes
from tinyai.parallel.strategy.base import StepOutcome, Strategy

logger = logging.getLogger(__name__)

__all__ = ["LocalSGD"]


def check_sync_every(sync_every: Any) -> int:
    """``sync_every`` as an int >= 1, or a ValueError."""
    if not is_int(sync_every) or sync_every < 1:
        raise ValueError(f"local_sgd: sync_every must be an int >= 1 (steps between averages), got {sync_every!r}")
    return int(sync_every)


def _optimizer_template(optimizer: Any) -> Any:
    """A picklable copy of ``optimizer``'s settings, without parameters or state."""
    template = copy.copy(optimizer)
    template._source, template._fixed = None, []
    template.state, template.steps = {}, {}
    return template


class LocalSGD(Strategy):
    """Each worker updates its own replica; parameters (and optimizer state) averaged every ``sync_every`` steps.

    Args:
        sync_every: H, the number of local steps between two averages (>= 1).
        on_error: only "raise": a replica that misses a step cannot be averaged.
        compression: None, a name ("fp16", "int8", "topk", "signsgd") or a
            ``Compressor``: the workers send their compressed parameter deltas
            (module docstring) instead of their parameters and optimizer state.
    """

    name = "local_sgd"

    def __init__(self, sync_every: int = 1, on_error: str = "raise", compression: Any = None) -> None:
        super().__init__(on_error)
        if self.on_error != "raise":
            raise ValueError("local_sgd: on_error must be 'raise' (a replica that misses a step cannot be averaged "
                             f"with the others), got {on_error!r}")
        self.sync_every = check_sync_every(sync_every)
        #: How the deltas travel (None: parameters and optimizer state are averaged dense).
        self.compressor: Compressor | None = get_compressor(compression)
        self._anchor: dict[str, Any] = {}  # with compression: the last average, which the deltas start from
        self._synced_state: tuple[dict, dict] | None = None  # the averaged optimizer state and step counts
        self._since_sync = 0
        self._fresh = True          # the workers must load the master's parameters and state
        self._sizes: list[int] = []  # examples per worker since the last average
        self._active = 0             # workers with a shard in the current step
        self._first_update = True    # the replicas may have to adopt the Trainer's optimizer state (a resume)

    @property
    def exact(self) -> bool:  # type: ignore[override]
        """Exact (with plain SGD) only when the replicas are averaged, uncompressed, after every step."""
        return self.sync_every == 1 and self.compressor is None

    def compute_gradients(self, x: Any, y: Any) -> StepOutcome:
        """Each worker's gradient of its own shard, left on its own replica."""
        workers = self.executor.workers
        bounds = shard_bounds(len(x), workers)
        start = self._master_arrays() if self._fresh else None
        if start is not None and self.compressor is not None:
            # Under MPI the master is this rank's replica, which trains on: keep the average apart.
            self._anchor = {name: p.data.copy() for name, p in self.model.named_params()}
        # A batch smaller than the workers leaves some without a shard: they only load a fresh start.
        args = [(x[a:b], y[a:b], start) for a, b in bounds] + [(None, None, start)] * (workers - len(bounds))
        results = self.executor.run(_local_gradients, args)[:len(bounds)]
        self._fresh = False
        if len(self._sizes) != workers:
            self._sizes = [0] * workers
        self._active = len(bounds)
        for k, (a, b) in enumerate(bounds):
            self._sizes[k] += b - a
        self.check_failures(results)
        outcome = self.outcome_of(results)
        return StepOutcome(outcome.loss, outcome.batch_size, outcome.ok_shards, outcome.failed_shards)

    def apply_update(self, optimizer: Any) -> None:
        """Every worker steps its own replica; every ``sync_every`` steps the replicas are averaged."""
        self._since_sync += 1
        average = self._since_sync >= self.sync_every
        workers = len(self._sizes)
        template = _optimizer_template(optimizer)
        reports = self._reports() if average else [None] * workers
        adopt = None
        if self._first_update and self.compressor is None and self._synced_state is None and optimizer.state:
            # The Trainer's optimizer has state before the replicas have any: a run resumed from a
            # checkpoint. The replicas continue from it, as they would from an average.
            adopt = ({name: dict(slots) for name, slots in optimizer.state.items()}, dict(optimizer.steps))
            self._synced_state = adopt
        self._first_update = False
        returned = self.executor.run(_local_update, [(template, optimizer.lr, reports[k], k < self._active, adopt)
                                                     for k in range(workers)])
        optimizer.iterations += 1
        self.stats.record_update(self._active)
        if average:
            self._average(returned, optimizer)

    def end_epoch(self, optimizer: Any) -> None:
        """Average whatever the count, so the master holds one model to evaluate."""
        if self._since_sync and not self._fresh:
            returned = self.executor.run(_local_report, [(report,) for report in self._reports()])
            self._average(returned, optimizer)

    def _reports(self) -> list[Any]:
        """What each worker sends for an average: "snapshot" (dense) or its delta's weight and the compressor."""
        if self.compressor is None:
            return ["snapshot"] * len(self._sizes)
        total = sum(self._sizes)
        names = sorted(name for name, _ in self.model.named_params())
        return [("delta", self.compressor, names, n / total) for n in self._sizes]

    def _average(self, returned: list[Any], optimizer: Any) -> None:
        if self.compressor is not None:
            self._add_deltas(returned)
            return
        total = sum(self._sizes)
        weights = [n / total for n in self._sizes]
        params = dict(self.model.named_params())
        nbytes = 0
        entries = 0
        synced: dict[str, dict] = {}
        for name, p in params.items():
            p.data[...] = sum(w * r[0][name] for w, r in zip(weights, returned))
            nbytes += p.data.nbytes
            entries += p.data.size
        for name in returned[0][1]:
            slots = returned[0][1][name]
            state = {slot: sum(w * r[1][name][slot] for w, r in zip(weights, returned)) for slot in slots}
            optimizer.state[name] = state
            optimizer.steps[name] = returned[0][2].get(name, 0)
            synced[name] = state
            nbytes += sum(v.nbytes for v in state.values())
            entries += sum(v.size for v in state.values())
        workers = len(returned)
        if workers > 1:
            self.stats.record_exchange(allreduce_wire_bytes(nbytes, workers, "direct"),
                                       allreduce_wire_bytes(entries * DENSE_ITEMSIZE, workers, "direct"))
        self._synced_state = (synced, dict(returned[0][2])) if synced else None
        self._since_sync = 0
        self._sizes = [0] * workers
        self._fresh = True

    def _add_deltas(self, wires: list[Any]) -> None:
        """The new average: the last one plus every worker's decoded delta, added in worker order."""
        params = dict(self.model.named_params())
        names = sorted(params)
        like = {name: params[name].data for name in names}
        xp = get_array_module(like[names[0]])
        total = {name: self._anchor[name].copy() for name in names}
        for wire in wires:  # worker order: the same sum on every rank
            if wire is None:  # a worker without examples since the last average sends nothing
                continue
            wire = xp.asarray(wire) if get_array_module(wire) is not xp else wire
            decode_arrays(self.compressor, wire, like, names, out=total)
        for name in names:
            params[name].data[...] = total[name]
        workers = len(wires)
        if workers > 1:  # each worker's payload reaches every other (an all-gather)
            per_worker = sum(self.compressor.payload_nbytes(like[name].shape, like[name].dtype) for name in names)
            entries = sum(like[name].size for name in names)
            self.stats.record_exchange(allgather_wire_bytes(per_worker, workers),
                                       allgather_wire_bytes(entries * DENSE_ITEMSIZE, workers))
        self._since_sync = 0
        self._sizes = [0] * workers
        self._fresh = True

    def _master_arrays(self) -> tuple[dict, tuple[dict, dict] | None, bool]:
        """What a fresh start loads: the master's parameters, the averaged optimizer state, and
        whether the workers keep a copy of the parameters to send their change later (compression)."""
        return {name: p.data for name, p in self.model.named_params()}, self._synced_state, \
            self.compressor is not None

    def __repr__(self) -> str:
        return f"LocalSGD(sync_every={self.sync_every}, compression={self.compressor!r})"


def _local_gradients(worker: Any, x: Any, y: Any, start: tuple | None) -> Any:
    """On worker k: (when fresh) load the averaged parameters and state; its shard's gradient."""
    if not worker.state.get("local_sgd_private"):
        # Process workers' replicas read the master's parameters in shared memory (one segment for
        # all): a replica that trains on its own needs arrays of its own.
        for p in worker.model.params():
            p.data = p.data.copy()
        worker.state["local_sgd_private"] = True
    if start is not None:
        params, synced, keep_anchor = start
        for name, p in worker.model.named_params():
            p.data[...] = params[name]
        worker.state["local_sgd_state"] = synced
        if keep_anchor:  # where this period starts: a compressed average sends the change since then
            worker.state["local_sgd_anchor"] = {name: p.data.copy() for name, p in worker.model.named_params()}
    if x is None:  # no shard for this worker in this step
        return None
    result = ParallelBatchProcessor(worker.model, worker.loss, x, y, worker.worker_id).run()
    # The gradients stay on the replica for its own update: only the loss and the counts travel back.
    return BatchProcessResult(result.worker_id, result.loss, result.batch_size, result.success, result.exception)


def _local_update(worker: Any, template: Any, lr: float, report: Any, active: bool = True,
                  adopt: tuple[dict, dict] | None = None) -> Any:
    """On worker k: one step of its own optimizer on its replica (if it had a shard); what it
    sends if an average follows (``report``: None, "snapshot", or a delta's settings).
    ``adopt``: optimizer state and step counts to start from (the Trainer's, on a resume)."""
    optimizer = worker.state.get("local_sgd_optimizer")
    if optimizer is None or type(optimizer) is not type(template):
        optimizer = copy.copy(template)
        optimizer._source, optimizer._fixed = worker.model, None
        optimizer.state, optimizer.steps = {}, {}
        worker.state["local_sgd_optimizer"] = optimizer
    loaded = worker.state.pop("local_sgd_state", None)
    if adopt is not None:
        loaded = adopt
    if loaded:
        optimizer.state = {name: {slot: np.array(v, copy=True) for slot, v in slots.items()}
                           for name, slots in loaded[0].items()}
        optimizer.steps = dict(loaded[1])
    optimizer.lr = lr
    if active:
        optimizer.update()
    return _local_report(worker, report)


def _local_report(worker: Any, report: Any) -> Any:
    """On worker k: nothing (None), its ``_local_snapshot``, or its compressed delta (``_local_delta``)."""
    if report is None:
        return None
    if report == "snapshot":
        return _local_snapshot(worker)
    _, compressor, names, weight = report
    return _local_delta(worker, compressor, names, weight)


def _local_delta(worker: Any, compressor: Compressor, names: list[str], weight: float) -> Any:
    """On worker k: the bytes of its compressed weighted delta, weight * (replica - last average).

    The worker's own compressor (``compressor.for_worker(k)``) lives in its
    state, so error-feedback residuals carry from one average to the next. A
    worker with no examples since the last average (weight 0) sends nothing.
    """
    if worker.state.get("local_sgd_compression") != repr(compressor):
        worker.state["local_sgd_compressor"] = compressor.for_worker(worker.worker_id)
        worker.state["local_sgd_compression"] = repr(compressor)
    if weight == 0:
        return None
    anchor = worker.state["local_sgd_anchor"]
    params = dict(worker.model.named_params())
    deltas = {name: (params[name].data - anchor[name]) * weight for name in names}
    return encode_arrays(worker.state["local_sgd_compressor"], deltas, names)


def _local_snapshot(worker: Any) -> tuple[dict, dict, dict]:
    """On worker k: copies of its replica's parameters, optimizer state and step counts."""
    optimizer = worker.state.get("local_sgd_optimizer")
    params = {name: p.data.copy() for name, p in worker.model.named_params()}
    if optimizer is None:
        return params, {}, {}
    state = {name: {slot: v.copy() for slot, v in slots.items()} for name, slots in optimizer.state.items()}
    return params, state, dict(optimizer.steps)
