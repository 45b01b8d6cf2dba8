"""GradientExchange: how the workers of a synchronous step add up their gradients.

Every worker holds one gradient per parameter; after the exchange every
worker holds the sum over workers (the strategy has already weighted each
worker's gradient by its share of the batch, so the sum is the average).
Three ways to do it, chosen by the Trainer's ``allreduce_algorithm`` and
``compression``:

* ``"direct"``, no compression: one ``comm.allreduce`` of all gradients
  flattened into one buffer (one collective per step, not one per parameter);
* ``"ring"``, no compression: the same buffer through ``ring_allreduce``,
  the textbook algorithm built on ``send``/``recv`` (``ring.py``);
* with a compressor: each worker compresses each parameter's gradient
  (``compress(g, key=name)``, so error feedback keeps one residual per
  parameter), packs the payloads into one byte buffer, and the buffers are
  exchanged with ``comm.allgather``; every worker then decodes every
  worker's payloads and adds them up in rank order. Compressed payloads
  cannot be added in their compressed form (two top-k payloads keep
  different entries; two int8 payloads have different scales), so they are
  gathered, not reduced: what crosses between workers is really the
  compressed bytes.

Every worker ends with the same bits: sums are taken in rank order from the
same gathered bytes, or by an all-reduce that guarantees it.

The byte counts go to a ``ParallelStats`` (see ``stats.py`` for the wire
models): ``bytes_sent`` as encoded, ``bytes_dense`` as the same exchange
of float32 values.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

from tinyai.backend import get_array_module
from tinyai.parallel.compression import Compressor, decode_arrays, encode_arrays, get_compressor
from tinyai.parallel.ring import ring_allreduce
from tinyai.parallel.stats import (
    DENSE_ITEMSIZE, ParallelStats, allgather_wire_bytes, allreduce_wire_bytes,
)

__all__ = ["GradientExchange", "ALLREDUCE_ALGORITHMS"]

#: The values of the Trainer's ``allreduce_algorithm``.
ALLREDUCE_ALGORITHMS = ("direct", "ring")


class GradientExchange:
    """Sums named gradients over the ranks of a communicator, optionally compressed.

    Args:
        algorithm: "direct" (the communicator's own all-reduce) or "ring".
            With a compressor the payloads are all-gathered whatever the
            algorithm.
        compression: None, a name ("fp16", "int8", "topk", "signsgd") or a
            ``Compressor``. Each worker must use its own exchange (its own
            compressor state): see ``for_worker``.
        stats: where the byte counts go (a fresh ``ParallelStats`` if None).
    """

    def __init__(self, algorithm: str = "direct", compression: Any = None,
                 stats: ParallelStats | None = None) -> None:
        if algorithm not in ALLREDUCE_ALGORITHMS:
            raise ValueError(f"allreduce_algorithm: unknown algorithm {algorithm!r}; "
                             f"choose one of {ALLREDUCE_ALGORITHMS}")
        self.algorithm = algorithm
        self.compressor: Compressor | None = get_compressor(compression)
        self.stats = stats if stats is not None else ParallelStats()

    def for_worker(self, rank: int, stats: ParallelStats | None = None) -> "GradientExchange":
        """The exchange of worker ``rank``: the same settings, its own compressor state and stream."""
        twin = GradientExchange(self.algorithm, None, stats if stats is not None else self.stats)
        twin.compressor = None if self.compressor is None else self.compressor.for_worker(rank)
        return twin

    def sum(self, comm: Any, gradients: Mapping[str, Any], record: bool = True) -> dict[str, Any]:
        """The sum over ranks of each named gradient, the same on every rank.

        Every rank must pass the same names, shapes and dtypes (in any
        order: they are exchanged sorted by name). ``record=False`` skips the
        byte counts (for the ranks other than the one that reports, when
        every rank shares one ``ParallelStats``).
        """
        names = sorted(gradients)
        if not names:
            return {}
        if self.compressor is None:
            return self._sum_dense(comm, names, gradients, record)
        return self._sum_compressed(comm, names, gradients, record)

    # -- uncompressed: one all-reduce of one flat buffer ---------------------------------------
    def _sum_dense(self, comm: Any, names: list[str], gradients: Mapping[str, Any], record: bool) -> dict:
        first = gradients[names[0]]
        xp = get_array_module(first)
        flat = xp.concatenate([gradients[name].reshape(-1) for name in names])
        if self.algorithm == "ring":
            total = ring_allreduce(comm, flat)
        else:
            total = comm.allreduce(flat)
        if record:
            self.stats.record_exchange(
                sent=allreduce_wire_bytes(flat.nbytes, comm.size, self.algorithm),
                dense=allreduce_wire_bytes(flat.size * DENSE_ITEMSIZE, comm.size, self.algorithm))
        result, offset = {}, 0
        for name in names:
            grad = gradients[name]
            result[name] = total[offset:offset + grad.size].reshape(grad.shape)
            offset += grad.size
        return result

    # -- compressed: all-gather the payloads, decode and add in rank order ------------------------
    def _sum_compressed(self, comm: Any, names: list[str], gradients: Mapping[str, Any], record: bool) -> dict:
        compressor = self.compressor
        wire = encode_arrays(compressor, gradients, names)
        gathered = comm.allgather(wire)  # every rank's bytes, in rank order
        per_rank = wire.size
        if gathered.size != per_rank * comm.size:
            raise RuntimeError(f"GradientExchange: gathered {gathered.size} bytes from {comm.size} ranks, "
                               f"expected {per_rank} each; do all ranks have the same parameters?")
        result = None
        for rank in range(comm.size):
            result = decode_arrays(compressor, gathered[rank * per_rank:(rank + 1) * per_rank], gradients, names,
                                   out=result)
        if record:
            entries = sum(math.prod(gradients[name].shape) for name in names)
            self.stats.record_exchange(sent=allgather_wire_bytes(per_rank, comm.size),
                                       dense=allgather_wire_bytes(entries * DENSE_ITEMSIZE, comm.size))
        return result

    def __repr__(self) -> str:
        return f"GradientExchange(algorithm={self.algorithm!r}, compression={self.compressor!r})"
