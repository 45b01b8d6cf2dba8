"""What a parallel training run exchanged and did: bytes, updates, waiting, staleness.

``Trainer.parallel_stats()`` returns ``ParallelStats.as_dict()``. Every
strategy records into one ``ParallelStats``:

* ``record_exchange(sent, dense)`` for each exchange between workers (or
  between workers and servers): ``sent`` is the bytes that crossed as encoded
  (after compression), ``dense`` what the same exchange would have been with
  every value sent uncompressed as float32;
* ``record_update()`` for each optimizer update applied;
* ``record_wait(seconds)`` for time a worker spent waiting for others;
* ``record_staleness(s)`` for each gradient applied ``s`` updates after the
  parameters it was computed from were read (asynchronous modes).

Byte counts are totals over all workers, computed from the exchange's wire
model below (every rank computes the same totals, so the statistics agree on
every rank of an MPI job without another message).

Wire models, for N ranks each holding an array of ``nbytes`` bytes:

* all-gather (every rank's array reaches every other rank): N (N - 1) nbytes;
* ring all-reduce (reduce-scatter then all-gather, see ``ring.py``): each
  rank sends every chunk but one in each of the two phases, 2 (N - 1) nbytes
  in all, i.e. 2 (N - 1) / N nbytes per rank;
* direct all-reduce (every rank sends its whole array to every other rank):
  N (N - 1) nbytes.
"""
from __future__ import annotations

import threading
from collections import Counter
from typing import Any

__all__ = ["ParallelStats", "allgather_wire_bytes", "allreduce_wire_bytes", "DENSE_ITEMSIZE"]

#: Bytes per value of the dense reference encoding (float32).
DENSE_ITEMSIZE = 4


def allgather_wire_bytes(nbytes: int, world_size: int) -> int:
    """Bytes sent in all by an all-gather in which each of ``world_size`` ranks contributes ``nbytes``."""
    _check_world(world_size, "allgather_wire_bytes")
    return world_size * (world_size - 1) * int(nbytes)


def allreduce_wire_bytes(nbytes: int, world_size: int, algorithm: str = "ring") -> int:
    """Bytes sent in all by an all-reduce of an ``nbytes`` array over ``world_size`` ranks.

    ``algorithm`` is "ring" (2 (N - 1) nbytes) or "direct" (N (N - 1) nbytes).
    """
    _check_world(world_size, "allreduce_wire_bytes")
    if algorithm == "ring":
        return 2 * (world_size - 1) * int(nbytes)
    if algorithm == "direct":
        return world_size * (world_size - 1) * int(nbytes)
    raise ValueError(f"allreduce_wire_bytes: unknown algorithm {algorithm!r}; choose 'ring' or 'direct'")


def _check_world(world_size: int, where: str) -> None:
    if int(world_size) < 1:
        raise ValueError(f"{where}: world_size must be at least 1, got {world_size}")


class ParallelStats:
    """Thread-safe counters of one parallel training run (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Start counting from zero (the Trainer does it when training starts)."""
        with getattr(self, "_lock", threading.Lock()):
            self._counters: dict[str, float] = {"bytes_sent": 0, "bytes_dense": 0, "updates": 0,
                                                "exchanges": 0, "wait_time_s": 0.0}
            self._staleness: Counter[int] = Counter()

    def record_exchange(self, sent: int, dense: int) -> None:
        """One exchange: ``sent`` bytes as encoded, ``dense`` bytes had it been float32."""
        with self._lock:
            self._counters["bytes_sent"] += int(sent)
            self._counters["bytes_dense"] += int(dense)
            self._counters["exchanges"] += 1

    def record_update(self, count: int = 1) -> None:
        """``count`` optimizer updates were applied."""
        with self._lock:
            self._counters["updates"] += int(count)

    def record_wait(self, seconds: float) -> None:
        """A worker waited ``seconds`` for its peers (or servers)."""
        with self._lock:
            self._counters["wait_time_s"] += float(seconds)

    def record_staleness(self, staleness: int) -> None:
        """A gradient was applied ``staleness`` updates after its parameters were read."""
        with self._lock:
            self._staleness[int(staleness)] += 1

    def add(self, key: str, amount: float) -> None:
        """Add to a strategy-specific counter ``key`` (created at zero)."""
        with self._lock:
            self._counters[key] = self._counters.get(key, 0) + amount

    def as_dict(self) -> dict[str, Any]:
        """A snapshot: the counters, ``compression_ratio`` (dense / sent) and ``staleness_histogram``."""
        with self._lock:
            result: dict[str, Any] = dict(self._counters)
            staleness = dict(sorted(self._staleness.items()))
        sent = result["bytes_sent"]
        result["compression_ratio"] = result["bytes_dense"] / sent if sent else None
        result["staleness_histogram"] = staleness
        return result
