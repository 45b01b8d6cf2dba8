"""Data parallelism on threads: one replica per thread, one process.

NumPy releases the interpreter lock inside BLAS and large elementwise loops,
so two threads really do compute at once on two cores. Each thread keeps its
own replica (made once, re-synchronised each step by copying arrays);
autograd's configuration is per thread, so ``no_grad`` in one worker never
leaks into another. BLAS is limited to one thread per worker while they run,
or the workers would fight for the same cores.

Random draws (dropout) replay the master's stream for the whole batch
(``ShardRandom``), and batch statistics are summed over all shards
(a ``ThreadCommunicator`` per shard, from ``tinyai.parallel.comm``), so the step does not depend on the split.
"""
from __future__ import annotations

import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator

from tinyai.backend import get_rng, using_communicator, using_rng
from tinyai.parallel.collective import ShardRandom
from tinyai.parallel.comm.thread import ThreadWorld
from tinyai.parallel.processor import BatchProcessResult, ParallelBatchProcessor
from tinyai.parallel.sharding import copy_buffers, copy_mode, copy_parameters, shard_bounds
from tinyai.parallel.utils import deep_copy_model

logger = logging.getLogger(__name__)


_blas_controller: Any = None


@contextlib.contextmanager
def blas_threads(limit: int) -> Iterator[None]:
    """Limit BLAS to ``limit`` threads inside the block, when threadpoolctl is installed.

    The controller finds the loaded BLAS libraries once (that search takes
    most of a millisecond); each step then only sets the thread count.
    """
    global _blas_controller
    if _blas_controller is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # optional: without it, BLAS keeps its own setting
            _blas_controller = False
        else:
            _blas_controller = ThreadpoolController()
    if _blas_controller is False:
        yield
        return
    with _blas_controller.limit(limits=limit, user_api="blas"):
        yield


class ThreadExecutor:
    """Runs the shards of each step on a pool of threads, each with its own replica."""

    kind = "thread"

    def __init__(self, model: Any, loss: Any, workers: int) -> None:
        self.workers = workers
        self.loss = loss
        self.replicas = [deep_copy_model(model) for _ in range(workers)]
        self.pool: ThreadPoolExecutor | None = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="tinyai-worker")

    @property
    def alive(self) -> bool:
        return self.pool is not None

    def _run_shard(self, k: int, x: Any, y: Any, total: int, rng: ShardRandom,
                   world: ThreadWorld) -> BatchProcessResult:
        with using_rng(rng), using_communicator(world.communicator(k)):
            result = ParallelBatchProcessor(self.replicas[k], self.loss, x, y, k, total_batch_size=total).run()
        if not result.success:  # peers waiting for batch statistics give up at once
            world.abort(k, f"{type(result.exception).__name__}: {result.exception}")
        return result

    def compute(self, master: Any, x: Any, y: Any) -> list[BatchProcessResult]:
        """Each worker's loss and gradients on its shard of (x, y), master parameters in force."""
        if self.pool is None:
            raise RuntimeError("ThreadExecutor: the pool has been shut down")
        for replica in self.replicas:
            copy_parameters(master, replica)
            copy_buffers(master, replica)
            copy_mode(master, replica)
        bounds = shard_bounds(len(x), self.workers)
        world = ThreadWorld(len(bounds))
        master_rng = get_rng()
        rngs = [ShardRandom(master_rng.bit_generator.state, a, b, len(x)) for a, b in bounds]
        with blas_threads(1):
            futures = [self.pool.submit(self._run_shard, k, x[a:b], y[a:b], len(x), rngs[k], world)
                       for k, (a, b) in enumerate(bounds)]
            results = [f.result() for f in futures]
        if all(r.success for r in results):
            # Every worker replayed the same draws: carry on from where they ended.
            master_rng.bit_generator.state = rngs[0].state
            copy_buffers(self.replicas[0], master)
        return results

    def shutdown(self, timeout: float = 30) -> None:
        """Wait for running shards, then release the threads. Safe to call twice."""
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
