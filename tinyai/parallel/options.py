"""The options of data-parallel training, checked in one place.

The Trainer, ``configure_parallel_training`` and ``DataParallel`` all take
the same few options; each passes them through ``ParallelOptions``, so every
one is validated once, with one message, whichever door it came in by.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tinyai.backend.settings import is_int, is_number
from tinyai.parallel.compression import get_compressor
from tinyai.parallel.gradient_exchange import ALLREDUCE_ALGORITHMS

#: Where shards may run: "auto" measures and picks (never "mpi").
BACKENDS = ("auto", "thread", "process", "mpi")
#: What a failed shard does: stop the step, or leave it out of the average.
ON_ERROR = ("raise", "skip")


def check_thread_count(thread_count: Any, where: str = "data parallel") -> int:
    """``thread_count`` as an int >= 0, or a ValueError naming ``where``."""
    if not is_int(thread_count) or thread_count < 0:
        raise ValueError(f"{where}: thread_count must be an int >= 0 (0 = the recommended count), "
                         f"got {thread_count!r}")
    return int(thread_count)


@dataclass(frozen=True)
class ParallelOptions:
    """How to train data-parallel.

    Attributes:
        backend: one of ``BACKENDS``.
        thread_count: workers per step; 0 means the recommended count (one
            per core, at most the samples of a batch).
        on_error: "raise" or "skip" (see ``SynchronousAllReduce``).
        step_timeout: seconds one step may take before a worker still busy
            is reported as hung (``WorkerError``); None waits for ever.
        compression: None, a name ("fp16", "int8", "topk", "signsgd") or a
            ``Compressor``: the workers exchange compressed gradients (see
            ``tinyai.parallel.compression``).
        allreduce_algorithm: "direct" (the executor adds the gradients) or
            "ring" (the workers add them among themselves by ring all-reduce).
    """

    backend: str = "auto"
    thread_count: int = 0
    on_error: str = "raise"
    step_timeout: float | None = None
    compression: Any = None
    allreduce_algorithm: str = "direct"

    def __post_init__(self) -> None:
        object.__setattr__(self, "thread_count", check_thread_count(self.thread_count))
        if self.backend not in BACKENDS:
            raise ValueError(f"data parallel: backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.on_error not in ON_ERROR:
            raise ValueError(f"data parallel: on_error must be one of {ON_ERROR}, got {self.on_error!r}")
        if self.allreduce_algorithm not in ALLREDUCE_ALGORITHMS:
            raise ValueError(f"data parallel: allreduce_algorithm must be one of {ALLREDUCE_ALGORITHMS}, "
                             f"got {self.allreduce_algorithm!r}")
        get_compressor(self.compression)  # a clear error now for an unknown name, not at the first step
        timeout = self.step_timeout
        if timeout is not None and not (is_number(timeout) and timeout > 0):
            raise ValueError(f"data parallel: step_timeout must be a positive number of seconds or None, "
                             f"got {timeout!r}")
