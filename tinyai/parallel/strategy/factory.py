"""The strategy a set of options asks for: one place that maps Trainer settings to a Strategy.

``make_strategy(options, stats)`` is what the Trainer (through
``ParallelTraining``) and ``DataParallel`` call. Every strategy it returns
records into ``stats`` (``Trainer.parallel_stats()``).
"""
from __future__ import annotations

from typing import Any

from tinyai.parallel.stats import ParallelStats
from tinyai.parallel.strategy.base import Strategy


def make_strategy(options: Any, stats: ParallelStats | None = None, backend: str | None = None) -> Strategy:
    """The strategy for ``options`` (a ``ParallelOptions``) on ``backend`` (the one actually used).

    ``parallel_strategy`` "parameter_server" gives ``ParameterServer``,
    "local_sgd" ``LocalSGD``; "allreduce" is synchronous all-reduce by the
    executor (``SynchronousAllReduce``) unless compression or the ring
    algorithm is asked for (``CompressedAllReduce``).
    Raises ValueError for a combination that cannot work, naming it.
    """
    from tinyai.parallel.strategy.allreduce import SynchronousAllReduce
    from tinyai.parallel.strategy.compressed import CompressedAllReduce

    backend = backend or options.backend
    if options.parallel_strategy == "parameter_server":
        from tinyai.parallel.strategy.parameter_server import ParameterServer

        strategy: Strategy = ParameterServer(options.ps_mode, options.staleness, options.num_servers,
                                             options.on_error, options.straggler, options.compression)
    elif options.parallel_strategy == "local_sgd":
        from tinyai.parallel.strategy.local_sgd import LocalSGD

        strategy = LocalSGD(options.sync_every, options.on_error, options.compression)
    elif options.compression is None and options.allreduce_algorithm == "direct":
        strategy = SynchronousAllReduce(options.on_error)
    else:
        strategy = CompressedAllReduce(options.compression, options.allreduce_algorithm, on_error=options.on_error)
    if stats is not None:
        strategy.stats = stats
    return strategy
