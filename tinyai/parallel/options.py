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
#: How the workers' work becomes an update (see ``tinyai.parallel.strategy``).
PARALLEL_STRATEGIES = ("allreduce", "parameter_server", "local_sgd")


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
            ``Compressor``: the workers exchange compressed gradients (or
            pushes to the servers, or local SGD's parameter deltas; see
            ``tinyai.parallel.compression``).
        allreduce_algorithm: "direct" (the executor adds the gradients) or
            "ring" (the workers add them among themselves by ring all-reduce;
            not with compression, whose payloads are gathered).
        parallel_strategy: one of ``PARALLEL_STRATEGIES``: synchronous
            all-reduce, parameter servers (``ParameterServer``) or local SGD
            (``LocalSGD``).
        ps_mode, staleness, num_servers: for "parameter_server": "sync",
            "async" or "stale"; for "stale" how many updates a worker may run
            ahead of the slowest; how many servers share the parameters.
        sync_every: for "local_sgd": local steps between two averages.
        straggler: None, or (worker, seconds): a delay added to each step of
            one worker (asynchronous parameter servers), to measure what a
            slow worker costs.
    """

    backend: str = "auto"
    thread_count: int = 0
    on_error: str = "raise"
    step_timeout: float | None = None
    compression: Any = None
    allreduce_algorithm: str = "direct"
    parallel_strategy: str = "allreduce"
    ps_mode: str = "sync"
    staleness: int | None = None
    num_servers: int = 1
    sync_every: int = 1
    straggler: tuple | None = None

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
        if self.compression is not None and self.allreduce_algorithm == "ring":
            raise ValueError(f"data parallel: compression={self.compression!r} cannot travel by "
                             "allreduce_algorithm='ring': the ring adds arrays chunk by chunk on the way, and "
                             "compressed payloads (other entries, other scales) cannot be added until decoded, so "
                             "they are gathered instead; use allreduce_algorithm='direct' with compression")
        self._check_strategy()
        timeout = self.step_timeout
        if timeout is not None and not (is_number(timeout) and timeout > 0):
            raise ValueError(f"data parallel: step_timeout must be a positive number of seconds or None, "
                             f"got {timeout!r}")

    def _check_strategy(self) -> None:
        """The strategy's own settings, and the ones that only another strategy takes."""
        from tinyai.parallel.strategy.local_sgd import check_sync_every
        from tinyai.parallel.strategy.parameter_server import check_ps_settings

        strategy = self.parallel_strategy
        if strategy not in PARALLEL_STRATEGIES:
            raise ValueError(f"data parallel: parallel_strategy must be one of {PARALLEL_STRATEGIES}, "
                             f"got {strategy!r}")
        check_sync_every(self.sync_every)
        if strategy == "parameter_server":
            check_ps_settings(self.ps_mode, self.staleness, self.num_servers)
        elif self.ps_mode != "sync" or self.staleness is not None or self.num_servers != 1:
            raise ValueError(f"data parallel: ps_mode, staleness and num_servers apply to "
                             f"parallel_strategy='parameter_server', not {strategy!r}")
        if strategy != "local_sgd" and self.sync_every != 1:
            raise ValueError(f"data parallel: sync_every applies to parallel_strategy='local_sgd', not {strategy!r}")
        if strategy != "allreduce":
            if self.allreduce_algorithm != "direct":
                raise ValueError(f"data parallel: allreduce_algorithm={self.allreduce_algorithm!r} applies to "
                                 f"parallel_strategy='allreduce', not {strategy!r}")
        if self.straggler is not None:
            ok = (isinstance(self.straggler, tuple) and len(self.straggler) == 2 and is_int(self.straggler[0])
                  and self.straggler[0] >= 0 and is_number(self.straggler[1]) and self.straggler[1] >= 0)
            if not ok:
                raise ValueError(f"data parallel: straggler must be None or (worker, seconds) with worker >= 0 "
                                 f"and seconds >= 0, got {self.straggler!r}")
            if strategy != "parameter_server" or self.ps_mode == "sync":
                raise ValueError("data parallel: straggler= is injected by the asynchronous parameter server "
                                 "(ps_mode='async' or 'stale') only")
