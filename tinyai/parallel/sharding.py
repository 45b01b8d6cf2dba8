"""Splitting a batch into shards, and keeping replicas in step with the master."""
from __future__ import annotations

from typing import Any


def shard_bounds(batch_size: int, workers: int) -> list[tuple[int, int]]:
    """(start, stop) of each non-empty shard: sizes differ by at most one.

    >>> shard_bounds(10, 3)
    [(0, 4), (4, 7), (7, 10)]
    """
    if workers < 1:
        raise ValueError(f"shard_bounds: workers must be at least 1, got {workers}")
    base, extra = divmod(batch_size, workers)
    bounds, start = [], 0
    for k in range(workers):
        stop = start + base + (1 if k < extra else 0)
        if stop > start:
            bounds.append((start, stop))
        start = stop
    return bounds


def copy_parameters(source: Any, target: Any) -> None:
    """Copy every parameter array of ``source`` into ``target``'s, in place (no re-pickling)."""
    target_params = dict(target.named_params())
    for name, p in source.named_params():
        q = target_params[name]
        if q.data.shape != p.data.shape:
            raise ValueError(f"copy_parameters: parameter {name!r} has shape {q.data.shape} in the replica "
                             f"but {p.data.shape} in the master")
        q.data[...] = p.data


def copy_buffers(source: Any, target: Any) -> None:
    """Copy every buffer (batch-norm running statistics, ...) of ``source`` into ``target``'s, in place."""
    if not hasattr(source, "named_buffers"):
        return
    target_buffers = dict(target.named_buffers())
    for name, array in source.named_buffers():
        target_buffers[name][...] = array


def copy_mode(source: Any, target: Any) -> None:
    """Put ``target`` in the train/eval mode of ``source`` (dropout and batch norm depend on it)."""
    mode = getattr(source, "training", True)
    if getattr(target, "training", True) != mode:
        target.train(mode)
