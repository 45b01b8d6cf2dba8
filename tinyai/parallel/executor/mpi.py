"""Data parallelism across processes and machines with MPI: the ranks are the workers.

Threads share one process and processes share one machine; MPI connects
processes that may run anywhere, started together by a launcher:

    mpiexec -n 4 python train.py

This is the SPMD style (single program, multiple data). Every process (a
*rank*, numbered 0 .. size-1) runs the *same* script from the top: it builds
the same model from the same seed, loads the same data and draws the same
batches. Nobody sends the model or the batches around. In each step rank k
takes its own shard of the global batch of N examples and computes the
gradient of its share n_k / N of the batch loss; ``allreduce_gradients`` adds
the shares up in one all-reduce, so every rank holds the gradient of the
whole batch:

    g = sum_k (n_k / N) g_k        (g_k: gradient of the mean loss on shard k)

Every rank then runs its own optimizer on that same gradient. The ranks
started with identical parameters and apply identical updates, so they stay
identical without any broadcast of parameters: SPMD replaces "master and
replicas" by "everyone is a replica" — here ``master`` is this rank's model.
(That relies on the all-reduce handing every rank the same bits, which the
MPI standard asks of implementations and MPICH and Open MPI do; the tests
check it.)

What travels per step:

* one small float64 all-reduce of status numbers: which ranks failed, each
  rank's shard size and loss, which parameters received a gradient;
* one all-reduce of all gradients flattened into a single buffer;
* with batch normalisation, the statistics of ``tinyai.functions.batch_norm``
  (a few numbers per channel, several times per step), on a communicator
  of their own;
* unless turned off, an all-gather of the predictions, so the training
  metric is computed on the whole batch as in single-thread training.

Dropout uses ``ShardRandom``: every rank replays the draws single-thread
training would make for the whole batch and keeps its rows, so masks and the
random stream afterwards do not depend on the number of ranks.

When a rank fails. A shard that raises is reported to every rank through the
status all-reduce, so every rank sees the same failed results (and the
strategy raises the same ``WorkerError`` everywhere, or skips the shard).
That works because the failed rank still joins the status exchange. With
layers that exchange data *during* the step (synchronised batch norm), a rank
that fails mid-forward or mid-backward leaves its peers waiting inside a
collective it will never join; nothing can release them, so such a failure is
logged and the whole job is ended with ``comm.Abort`` (mpiexec then exits
with a non-zero status). The same happens if the failed rank's peers do not
reach the status exchange within ``failure_timeout`` seconds.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable, Sequence

import numpy as np

from tinyai.backend import get_array_module, get_rng, using_communicator, using_rng
from tinyai.parallel.shard_random import ShardRandom
from tinyai.parallel.executor.base import Executor, WorkerContext
from tinyai.parallel.mpi import MpiCommunicator, load_mpi, to_host
from tinyai.parallel.processor import BatchProcessResult, ParallelBatchProcessor
from tinyai.parallel.sharding import shard_bounds

logger = logging.getLogger(__name__)


class MpiExecutor(Executor):
    """The ranks of an MPI job as the workers of synchronous data-parallel steps.

    Create it in every rank at the same point of the script (it duplicates
    the communicator, a collective call) and call every method in every rank
    with the same arguments (the same global batch).

    Args:
        model: this rank's model (identical on all ranks: same seed, same code).
        loss: a loss object with ``loss(target, prediction)``.
        comm: an mpi4py communicator; ``MPI.COMM_WORLD`` if None.
        gather_predictions: all-gather the shards' predictions so every
            result carries its prediction (for the training metric); False
            saves that exchange.
        failure_timeout: seconds a failed rank waits for its peers to join
            the status exchange before aborting the job.
    """

    kind = "mpi"
    shares_device = True  # each rank keeps its own model on its own device

    def __init__(self, model: Any, loss: Any, comm: Any = None, gather_predictions: bool = True,
                 failure_timeout: float = 30.0) -> None:
        MPI = load_mpi()
        base = MPI.COMM_WORLD if comm is None else comm
        self.model = model
        self.loss = loss
        self.gather_predictions = gather_predictions
        self.failure_timeout = failure_timeout
        # Private copies: the step's own exchanges on one, the model's (batch
        # norm) on the other, so a failed rank's status can never be paired
        # with a peer's batch statistics, nor the user's own messages with ours.
        self._comm: Any = base.Dup()
        self.communicator = MpiCommunicator(base.Dup())
        # The gradients' all-reduce goes through the Communicator interface (rank-order sums: the
        # same bits on every rank and on every transport).
        self.gradient_communicator = MpiCommunicator(base.Dup())
        self.rank: int = self._comm.Get_rank()
        self.size: int = self._comm.Get_size()
        self.workers = self.size
        self.is_root = self.rank == 0
        self._coupled = False  # has a step of this model made collectives of its own?
        self._whole = False  # was the last step computed whole on every rank?
        self._local: dict[str, Any] = {}  # this rank's share-weighted gradients of the last step
        self._has_grad: list[tuple[str, bool]] = []
        self._state: dict = {}

    @property
    def alive(self) -> bool:
        return self._comm is not None

    def compute(self, master: Any, x: Any, y: Any) -> list[BatchProcessResult]:
        """The results of every rank's shard: this rank's own with gradients, the others'
        with loss, size and success (learnt in the status exchange) and no gradients."""
        if self._comm is None:
            raise RuntimeError("MpiExecutor: compute after shutdown()")
        total = len(x)
        self._whole = total < self.size
        if self._whole:
            # Fewer examples than ranks: every rank computes the whole batch alone (identical results).
            result = ParallelBatchProcessor(master, self.loss, x, y, self.rank).run()
            return [result]
        start, stop = shard_bounds(total, self.size)[self.rank]
        master_rng = get_rng()
        rng = ShardRandom(master_rng.bit_generator.state, start, stop, total)
        calls_before = self.communicator.calls
        with using_rng(rng), using_communicator(self.communicator):
            result = ParallelBatchProcessor(master, self.loss, x[start:stop], y[start:stop], self.rank,
                                            total_batch_size=total).run()
        talked = self.communicator.calls > calls_before
        if not result.success and (talked or self._coupled):
            self._abort(f"rank {self.rank} failed inside a step whose layers exchange data with the other "
                        f"ranks (synchronised batch norm); they wait for it inside a collective, so the job "
                        f"is aborted: {type(result.exception).__name__}: {result.exception}", result.exception)
        self._coupled = self._coupled or talked
        # The share-weighted gradient, before the processor's division by the share.
        self._local = {name: p.grad.data for name, p in master.named_params() if p.grad is not None}
        failed, sizes, losses, has_grad = self._exchange_status(master, result, total)
        self._has_grad = has_grad
        messages = self._comm.allgather(None if result.success else f"{type(result.exception).__name__}: "
                                        f"{result.exception}") if failed else [None] * self.size
        if not result.success:
            # Every rank must see the same words for a failure: the failed rank too.
            own = RuntimeError(messages[self.rank])
            own.__cause__ = result.exception
            result.exception = own
        results = []
        for k in range(self.size):
            if k == self.rank:
                results.append(result)
            elif k in failed:
                results.append(BatchProcessResult(k, float("nan"), sizes[k], False, RuntimeError(messages[k])))
            else:
                results.append(BatchProcessResult(k, losses[k], sizes[k], True))
        if not failed:
            master_rng.bit_generator.state = rng.state  # every rank replayed the same draws
            if self.gather_predictions and result.prediction is not None:
                rows = self._gather_rows(result.prediction, total)
                for k, (a, b) in enumerate(shard_bounds(total, self.size)):
                    results[k].prediction = rows[a:b]
        return results

    def _exchange_status(self, master: Any, result: BatchProcessResult,
                         total: int) -> tuple[list[int], list[int], list[float], list[tuple[str, bool]]]:
        """One small all-reduce: failed ranks, shard sizes and losses, parameters with a gradient anywhere."""
        size = self.size
        names = [name for name, _ in master.named_params()]
        status = np.zeros(3 * size + len(names), dtype=np.float64)
        status[size + self.rank] = result.batch_size
        if result.success:
            status[2 * size + self.rank] = result.loss
            status[3 * size:] = [name in self._local for name in names]
        else:
            status[self.rank] = 1.0
        summed = np.empty_like(status)
        # Non-blocking on every rank (a blocking all-reduce never matches a non-blocking one), so
        # that a failed rank can stop waiting for peers stuck in a collective of the model.
        request = self._comm.Iallreduce(status, summed, op=load_mpi().SUM)
        if result.success:
            request.Wait()
        else:
            deadline = time.monotonic() + self.failure_timeout
            while not request.Test():
                if time.monotonic() > deadline:
                    self._abort(f"rank {self.rank} failed on its shard and its peers did not answer within "
                                f"{self.failure_timeout:g} s (waiting inside a collective of the model?), so "
                                f"the job is aborted: {result.exception}", result.exception)
                time.sleep(0.001)
        failed = [k for k in range(size) if summed[k] > 0]
        sizes = [int(round(v)) for v in summed[size:2 * size]]
        losses = [float(v) for v in summed[2 * size:3 * size]]
        has_grad = [(name, bool(v > 0)) for name, v in zip(names, summed[3 * size:])]
        return failed, sizes, losses, has_grad

    def allreduce_gradients(self, results: Sequence[BatchProcessResult]) -> dict[str, Any]:
        """Sum the share-weighted gradients of all ranks in one all-reduce of a flat buffer,
        then divide by the share of the examples that succeeded."""
        if self._whole:
            return dict(results[0].gradients)
        names = [name for name, has in self._has_grad if has]
        if not names:
            return {}
        params = dict(self.model.named_params())
        arrays = [params[name].data for name in names]
        dtype = np.result_type(*[a.dtype for a in arrays])
        flat = np.zeros(sum(a.size for a in arrays), dtype=dtype)
        if results[self.rank].success:
            offset = 0
            for name, a in zip(names, arrays):
                grad = self._local.get(name)
                if grad is not None:
                    flat[offset:offset + a.size] = to_host(grad).reshape(-1)
                offset += a.size
        summed = self.gradient_communicator.allreduce(flat)
        total = sum(r.batch_size for r in results)
        ok_share = sum(r.batch_size for r in results if r.success) / total
        gradients, offset = {}, 0
        for name, a in zip(names, arrays):
            xp = get_array_module(a)
            part = summed[offset:offset + a.size].reshape(a.shape).astype(a.dtype, copy=False)
            if ok_share != 1.0:
                part = part / ok_share
            gradients[name] = part if xp is np else xp.asarray(part)
            offset += a.size
        return gradients

    def _gather_rows(self, local: Any, total: int) -> Any:
        """The whole batch's rows, from every rank's shard (an all-gather)."""
        host = to_host(local)
        row = int(np.prod(host.shape[1:], dtype=np.int64))
        counts = [(b - a) * row for a, b in shard_bounds(total, self.size)]
        gathered = np.empty((total,) + host.shape[1:], dtype=host.dtype)
        self._comm.Allgatherv(host, [gathered, counts])
        xp = get_array_module(local)
        return gathered if xp is np else xp.asarray(gathered)

    def run(self, fn: Callable[..., Any], args: Sequence[tuple] | None = None) -> list[Any]:
        """``fn(WorkerContext, *args[rank])`` on this rank; every rank's return value, all-gathered.

        The context's ``world`` is the gradients' communicator (every rank), for
        functions whose ranks message each other (asynchronous parameter servers)."""
        args = list(args) if args is not None else [()] * self.size
        context = WorkerContext(self.rank, self.model, self.loss, self._state, world=self.gradient_communicator)
        mine = fn(context, *args[self.rank])
        return self._comm.allgather(mine)

    def _abort(self, message: str, cause: BaseException | None) -> None:
        """Log why, then end every rank of the job (mpiexec exits non-zero)."""
        logger.critical("mpi executor: %s", message, exc_info=cause)
        for handler in logging.getLogger().handlers + [logging.lastResort]:
            if handler is not None:
                handler.flush()
        self._comm.Abort(1)

    def shutdown(self, timeout: float = 30) -> bool:
        """Release the duplicated communicators. Safe to call twice."""
        if self._comm is not None:
            comm, self._comm = self._comm, None
            comm.Free()
            self.communicator.comm.Free()
            self.gradient_communicator.comm.Free()
        return True
