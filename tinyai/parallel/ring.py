"""Ring all-reduce, written once over a communicator's ``send`` and ``recv``.

The obvious all-reduce has every rank send its whole array to every other
rank: with N ranks and an array of B bytes, each rank sends (N - 1) B, and
the busiest link carries that much too. The ring does better. Arrange the
ranks in a circle (rank r sends only to r + 1 and receives only from r - 1)
and cut the array into N chunks of B / N bytes:

1. **Reduce-scatter**, N - 1 steps. At step s rank r sends chunk
   (r - s) mod N to its right neighbour and adds the chunk it receives from
   its left neighbour, (r - s - 1) mod N, into its own copy. A chunk picks up
   one more rank's contribution at every hop, so after N - 1 hops rank r
   holds the full sum of chunk (r + 1) mod N.
2. **All-gather**, N - 1 steps. At step s rank r sends chunk
   (r + 1 - s) mod N, which it has complete, and overwrites chunk
   (r - s) mod N with the complete chunk it receives. After N - 1 hops
   every rank holds every complete chunk.

Each rank sends one chunk per step, 2 (N - 1) steps: 2 (N - 1) / N * B
bytes. That is less than 2 B however many ranks there are, against (N - 1) B
for the direct exchange; and every link carries the same load, so the ring
uses all of them at once. The price is latency: 2 (N - 1) messages one after
the other, which is why MPI libraries switch to other algorithms for small
arrays.

Every rank ends with the same bits: each complete chunk is computed on one
rank and copied to the others. The order of the additions is the ring's
(chunk c is summed starting from rank c), not rank order, so the result can
differ from ``comm.allreduce`` in the last bits of floating-point values.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from tinyai.backend import get_array_module, is_array

__all__ = ["ring_allreduce", "ring_chunk_bounds", "RING_OPS"]

#: The reductions ``ring_allreduce`` knows ("mean" is the sum divided by the number of ranks).
RING_OPS = ("sum", "prod", "max", "min", "mean")


def ring_chunk_bounds(size: int, parts: int) -> list[tuple[int, int]]:
    """(start, stop) of ``parts`` nearly equal chunks of ``size`` entries (the first size % parts one longer)."""
    base, extra = divmod(size, parts)
    bounds, start = [], 0
    for index in range(parts):
        stop = start + base + (1 if index < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def ring_allreduce(comm: Any, array: Any, op: str = "sum", tag: int = 0) -> Any:
    """The elementwise reduction of ``array`` over every rank of ``comm``, by the ring algorithm.

    Args:
        comm: a communicator (``rank``, ``size``, ``send``, ``recv``); every
            rank must call ``ring_allreduce`` with an array of the same shape
            and dtype.
        array: a NumPy or device array; it is not modified.
        op: "sum", "prod", "max", "min" or "mean".
        tag: the message tag of the ring's sends, for programs that have
            other messages in flight between the same ranks.

    Returns:
        A new array of ``array``'s shape, dtype and device, the same on every rank.
    """
    if op not in RING_OPS:
        raise ValueError(f"ring_allreduce: unknown op {op!r}; choose one of {RING_OPS}")
    if not is_array(array):
        raise TypeError(f"ring_allreduce: expected an array, got {type(array).__name__}")
    xp = get_array_module(array)
    combine = {"sum": xp.add, "mean": xp.add, "prod": xp.multiply,
               "max": xp.maximum, "min": xp.minimum}[op]
    size, rank = comm.size, comm.rank
    flat = array.reshape(-1).copy()  # our working copy, reduced chunk by chunk
    if size > 1:
        chunks = ring_chunk_bounds(flat.size, size)
        right, left = (rank + 1) % size, (rank - 1) % size

        def chunk(index: int) -> slice:
            start, stop = chunks[index % size]
            return slice(start, stop)

        # Reduce-scatter: after step s, the chunk received holds s + 2 ranks' contributions.
        for step in range(size - 1):
            comm.send(flat[chunk(rank - step)], right, tag)
            received = _on_device(comm.recv(left, tag), xp)
            target = chunk(rank - step - 1)
            flat[target] = combine(flat[target], received)
        # All-gather: pass the complete chunks once round the ring.
        for step in range(size - 1):
            comm.send(flat[chunk(rank + 1 - step)], right, tag)
            flat[chunk(rank - step)] = _on_device(comm.recv(left, tag), xp)
    if op == "mean":
        flat = flat / size if flat.dtype.kind == "f" else flat.astype(np.float64) / size
    return flat.reshape(array.shape)


def _on_device(received: Any, xp: Any) -> Any:
    """A received chunk as an array of ``xp`` (transports return device arrays on the device already)."""
    return received if get_array_module(received) is xp else xp.asarray(received)
