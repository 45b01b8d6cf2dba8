"""Synchronous all-reduce with a chosen exchange: gradient compression, or the ring algorithm.

``SynchronousAllReduce`` lets the executor average the shards' gradients
(into the master, or by MPI's own all-reduce). This strategy makes the
exchange itself visible and changeable, as the Trainer's
``compression=`` and ``allreduce_algorithm=`` ask:

* **compressed** (``compression`` set): after the shards' forward and
  backward, each worker compresses its share-weighted gradient
  (n_k / N * g_k, so the shares add up to the batch gradient) with its own
  compressor (``compressor.for_worker(k)``: its own error-feedback residuals
  and random stream, kept in the worker's state between steps) and sends the
  compressed bytes only. The bytes of every worker are gathered — through the
  executor's ``run``, which on MPI is a real all-gather among the ranks — and
  decoded and added up in worker order, the same on every rank. Compressed
  payloads must be gathered, not reduced: two top-k payloads keep different
  entries, two int8 payloads have different scales.
* **ring** (``allreduce_algorithm="ring"``, no compression): the workers add
  their share-weighted gradients by ``ring_allreduce`` over a communicator
  that connects them (a thread world for threads, the executor's process
  world for processes, the job's communicator under MPI), each one sending
  2 (N - 1) / N of the gradient bytes.

Without compression the result equals ``SynchronousAllReduce``'s up to
rounding (the ring adds in ring order): the strategy is exact. With
compression it is not: the update follows the decoded gradients.

The byte counts go to ``stats`` (``Trainer.parallel_stats()``), by the wire
models of ``tinyai.parallel.stats``.
"""
from __future__ import annotations

import logging
from typing import Any

from tinyai.backend import get_array_module
from tinyai.parallel.compression import Compressor, decode_arrays, encode_arrays, get_compressor
from tinyai.parallel.gradient_exchange import ALLREDUCE_ALGORITHMS
from tinyai.parallel.ring import ring_allreduce
from tinyai.parallel.stats import DENSE_ITEMSIZE, ParallelStats, allgather_wire_bytes, allreduce_wire_bytes
from tinyai.parallel.strategy.base import StepOutcome, Strategy
from tinyai.parallel.utils import apply_aggregated_gradients

logger = logging.getLogger(__name__)

__all__ = ["CompressedAllReduce"]


class CompressedAllReduce(Strategy):
    """Synchronous all-reduce whose gradient exchange is compressed or done by the ring algorithm.

    Args:
        compression: None, a name ("fp16", "int8", "topk", "signsgd") or a
            ``Compressor`` (see ``tinyai.parallel.compression``).
        algorithm: "direct" or "ring" (without compression: how the dense
            gradients are added; with compression the payloads are gathered).
        stats: where the byte counts go (a fresh ``ParallelStats`` if None).
        on_error: "raise" or "skip", as for ``SynchronousAllReduce``.
    """

    name = "allreduce"

    def __init__(self, compression: Any = None, algorithm: str = "direct",
                 stats: ParallelStats | None = None, on_error: str = "raise") -> None:
        super().__init__(on_error)
        if algorithm not in ALLREDUCE_ALGORITHMS:
            raise ValueError(f"allreduce_algorithm: unknown algorithm {algorithm!r}; "
                             f"choose one of {ALLREDUCE_ALGORITHMS}")
        self.compressor: Compressor | None = get_compressor(compression)
        self.algorithm = algorithm
        if stats is not None:
            self.stats = stats
        self._peers: list[Any] | None = None

    @property
    def exact(self) -> bool:  # type: ignore[override]
        """Exact (equal to single-process training up to rounding) only without compression."""
        return self.compressor is None

    def compute_gradients(self, x: Any, y: Any) -> StepOutcome:
        """Leave the batch's (decoded) mean-loss gradient on the master's parameters."""
        results = self.executor.compute(self.model, x, y)
        for r in self.check_failures(results):
            logger.warning("data parallel: skipped the shard of worker %d (%s)", r.worker_id, r.exception)
        if len(results) == 1:
            # One shard (a batch smaller than two workers): nothing to exchange.
            apply_aggregated_gradients(self.model, results[0].gradients)
            return self.outcome_of(results)
        names = sorted(name for name, _ in self.model.named_params())
        contribute = [r.success for r in results]
        if self.compressor is not None:
            summed = self._gather_compressed(names, contribute)
        else:
            summed = self._ring(names, contribute)
        total = sum(r.batch_size for r in results)
        ok_share = sum(r.batch_size for r in results if r.success) / total
        if ok_share != 1.0:  # the mean over the examples that were computed
            summed = {name: g / ok_share for name, g in summed.items()}
        apply_aggregated_gradients(self.model, summed)
        return self.outcome_of(results)

    # -- compressed: every worker's payload bytes, gathered, decoded, added ------------------------
    def _gather_compressed(self, names: list[str], contribute: list[bool]) -> dict[str, Any]:
        compressor = self.compressor
        payloads = self.executor.run(_compress_on_worker, [(compressor, names, ok) for ok in contribute])
        like = {name: p.data for name, p in self.model.named_params()}
        xp = get_array_module(like[names[0]])
        summed = None
        for wire in payloads:  # worker order: the same sum on every rank
            if wire is None:  # a skipped shard sends nothing
                continue
            wire = xp.asarray(wire) if get_array_module(wire) is not xp else wire
            summed = decode_arrays(compressor, wire, like, names, out=summed)
        per_worker = sum(compressor.payload_nbytes(like[name].shape, like[name].dtype) for name in names)
        entries = sum(like[name].size for name in names)
        workers = len(contribute)
        self.stats.record_exchange(sent=allgather_wire_bytes(per_worker, workers),
                                   dense=allgather_wire_bytes(entries * DENSE_ITEMSIZE, workers))
        return summed

    # -- ring: the workers add their gradients among themselves ------------------------------------
    def _ring(self, names: list[str], contribute: list[bool]) -> dict[str, Any]:
        peers = self._peer_communicators(len(contribute))
        if self.executor.kind == "mpi":
            # This rank is a worker: its share-weighted gradients are on its own model.
            flat = _ring_on_worker(self, peers[0], names, contribute[peers[0].rank])
        else:
            flat = self.executor.run(_ring_on_worker, [(peers[k], names, ok, len(contribute))
                                                       for k, ok in enumerate(contribute)])[0]
        params = dict(self.model.named_params())
        xp = get_array_module(params[names[0]].data)
        flat = xp.asarray(flat) if get_array_module(flat) is not xp else flat
        summed, offset = {}, 0
        for name in names:
            data = params[name].data
            summed[name] = flat[offset:offset + data.size].reshape(data.shape).astype(data.dtype, copy=False)
            offset += data.size
        workers = len(contribute)
        self.stats.record_exchange(sent=allreduce_wire_bytes(flat.nbytes, workers, "ring"),
                                   dense=allreduce_wire_bytes(flat.size * DENSE_ITEMSIZE, workers, "ring"))
        return summed

    def _peer_communicators(self, workers: int) -> list[Any]:
        """One communicator per worker connecting the workers of a step (made once per worker count)."""
        kind = self.executor.kind
        if kind == "mpi":
            comm = self.executor.communicator  # this rank's; the ring runs here, not through run()
            if not hasattr(comm, "send"):
                raise ValueError("allreduce_algorithm='ring': this MPI executor's communicator has no "
                                 "send/recv; use allreduce_algorithm='direct' (MPI's own Allreduce)")
            return [comm]
        if kind != "thread":
            return [None] * workers  # each worker asks its executor for its peers (``WorkerContext.peers``)
        if self._peers is None or len(self._peers) != workers:
            from tinyai.parallel.comm import ThreadWorld

            world = ThreadWorld(workers)
            self._peers = [world.communicator(k) for k in range(workers)]
        return self._peers

    def __repr__(self) -> str:
        return f"CompressedAllReduce(compression={self.compressor!r}, algorithm={self.algorithm!r})"


def _share_weighted_gradients(model: Any, names: list[str]) -> list[Any]:
    """The worker's gradients of ``names`` as its shard left them (share-weighted); zeros where none."""
    params = dict(model.named_params())
    grads = []
    for name in names:
        param = params[name]
        if param.grad is None:
            xp = get_array_module(param.data)
            grads.append(xp.zeros(param.data.shape, dtype=param.data.dtype))
        else:
            grads.append(param.grad.data)
    return grads


def _compress_on_worker(worker: Any, compressor: Compressor, names: list[str], contribute: bool) -> Any:
    """On worker k: compress its share-weighted gradients with its own compressor; return the bytes.

    The worker's compressor (``compressor.for_worker(k)``) lives in its state,
    so error-feedback residuals carry from step to step. A worker whose shard
    failed sends nothing (None), and leaves its residuals as they were.
    """
    # The first step (or a new compressor setting) gives this worker its own copy.
    if worker.state.get("compression") != repr(compressor):
        worker.state["compressor"] = compressor.for_worker(worker.worker_id)
        worker.state["compression"] = repr(compressor)
    own = worker.state["compressor"]
    if not contribute:
        return None
    return encode_arrays(own, dict(zip(names, _share_weighted_gradients(worker.model, names))), names)


def _ring_on_worker(worker: Any, comm: Any, names: list[str], contribute: bool, workers: int = 0) -> Any:
    """On worker k (anything with the worker's ``model``): its share-weighted gradients,
    flattened, summed over the workers by the ring. ``comm`` None: the worker's own
    ``peers(workers)`` communicator (process workers)."""
    if comm is None:
        peers = getattr(worker, "peers", None)
        if peers is None:
            raise ValueError("allreduce_algorithm='ring' needs workers that can message each other; this "
                             "executor's workers cannot (use allreduce_algorithm='direct')")
        comm = peers(workers)
    grads = _share_weighted_gradients(worker.model, names)
    xp = get_array_module(grads[0])
    flat = xp.concatenate([g.reshape(-1) for g in grads])
    if not contribute:
        flat = xp.zeros_like(flat)
    return ring_allreduce(comm, flat)
