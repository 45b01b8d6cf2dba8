"""Data parallelism across processes and machines with MPI.

Threads share one process and processes share one machine; MPI connects
processes that may run anywhere, started together by a launcher:

    mpiexec -n 4 python train.py

This is the SPMD style (single program, multiple data). Every process (a
*rank*, numbered 0 .. size-1) runs the *same* script from the top: it builds
the same model from the same seed, loads the same data and draws the same
batches. Nobody sends the model or the batches around. In each step rank k
takes its own shard of the global batch of N examples, computes the gradient
of its share n_k / N of the batch loss, and one all-reduce adds the shares
up, so every rank holds the gradient of the whole batch:

    g = sum_k (n_k / N) g_k        (g_k: gradient of the mean loss on shard k)

Every rank then runs its own optimizer on that same gradient. The ranks
started with identical parameters and apply identical updates, so they stay
identical without any broadcast of parameters: SPMD replaces "master and
replicas" by "everyone is a replica". (That relies on the all-reduce handing
every rank the same bits, which the MPI standard asks of implementations and
MPICH and Open MPI do; the tests check it.)

What travels per step:

* one small float64 all-reduce of status numbers: which ranks failed, which
  parameters received a gradient, the share-weighted loss;
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
status all-reduce, and every rank raises the same ``ShardError`` naming the
failed rank (or, with ``on_error="skip"``, averages the other shards). That
works because the failed rank still joins the status exchange. With layers
that exchange data *during* the step (synchronised batch norm), a rank that
fails mid-forward or mid-backward leaves its peers waiting inside a
collective it will never join; nothing can release them, so such a failure
is logged and the whole job is ended with ``comm.Abort`` (mpiexec then exits
with a non-zero status). The same happens if the failed rank's peers do not
reach the status exchange within ``failure_timeout`` seconds.
"""
from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from tinyai.backend import get_array_module, get_rng, using_communicator, using_rng
from tinyai.parallel.collective import ShardRandom
from tinyai.parallel.engine import ShardError, StepOutcome
from tinyai.parallel.processor import BatchProcessResult, ParallelBatchProcessor
from tinyai.parallel.sharding import shard_bounds
from tinyai.parallel.utils import apply_aggregated_gradients

logger = logging.getLogger(__name__)


def load_mpi() -> Any:
    """The ``mpi4py.MPI`` module, or an ImportError that says what to install."""
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise ImportError("tinyai's MPI backend needs mpi4py and an MPI library: "
                          "pip install 'tinyai-numpy[mpi]' (installs mpi4py and mpich)") from error
    return MPI


def _to_host(array: Any) -> np.ndarray:
    """A C-contiguous NumPy array with the values of ``array`` (a CuPy array is copied to the host)."""
    if get_array_module(array) is not np:
        array = array.get()
    return np.ascontiguousarray(array)


class MpiCommunicator:
    """``allreduce_sum`` over the ranks of an MPI communicator (TinyAI's Communicator protocol).

    Ints (Python or NumPy) are summed exactly as 64-bit integers and come back
    as the same type; floats as float64. Arrays are summed elementwise in
    their own dtype and shape; a CuPy array travels through a host copy and
    comes back on the GPU. ``calls`` counts the collectives made, so that a
    failed rank can tell whether its peers may be waiting inside one.

    >>> # in every rank of mpiexec -n 3:  MpiCommunicator(MPI.COMM_WORLD).allreduce_sum(2) == 6
    """

    def __init__(self, comm: Any) -> None:
        self.comm = comm
        self.calls = 0

    @property
    def rank(self) -> int:
        return self.comm.Get_rank()

    @property
    def size(self) -> int:
        return self.comm.Get_size()

    def allreduce(self, value: Any, op: str = "sum") -> Any:
        """The elementwise sum of ``value`` over all ranks; every rank gets the same result."""
        if op != "sum":
            raise ValueError(f"allreduce: this communicator only sums, got op={op!r}")
        return self.allreduce_sum(value)

    def allreduce_sum(self, value: Any) -> Any:
        """The elementwise sum of ``value`` over all ranks; every rank gets the same result."""
        MPI = load_mpi()
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
                and not hasattr(value, "dtype"):
            raise TypeError(f"MpiCommunicator.allreduce_sum: expected a number or an array, "
                            f"got {type(value).__name__}")
        self.calls += 1
        if isinstance(value, (int, float, np.number)):
            dtype = np.int64 if isinstance(value, (int, np.integer)) else np.float64
            total = np.zeros(1, dtype=dtype)
            self.comm.Allreduce(np.array([value], dtype=dtype), total, op=MPI.SUM)
            return type(value)(total[0].item()) if isinstance(value, (int, float)) else value.dtype.type(total[0])
        if value.dtype.kind not in "iuf":
            raise TypeError(f"MpiCommunicator.allreduce_sum: cannot sum an array of dtype {value.dtype}")
        host = _to_host(value)
        total = np.empty_like(host)
        self.comm.Allreduce(host, total, op=MPI.SUM)
        xp = get_array_module(value)
        return total if xp is np else xp.asarray(total)


class MpiDataParallel:
    """Synchronous data-parallel steps over the ranks of an MPI job (SPMD; see the module docstring).

    Create it in every rank at the same point of the script (it duplicates
    the communicator, a collective call), call ``compute_gradients`` with the
    same global batch in every rank, then step each rank's optimizer: the
    parameters stay identical on all ranks with no broadcast.

    Args:
        model: this rank's model (identical on all ranks: same seed, same code).
        loss: a loss object with ``loss(target, prediction)``.
        comm: an mpi4py communicator; ``MPI.COMM_WORLD`` if None.
        on_error: "raise" (every rank raises ``ShardError`` naming the failed
            rank) or "skip" (average the shards that succeeded). A failure in
            a step whose layers talk to the other ranks aborts the job.
        gather_predictions: all-gather the shards' predictions so
            ``StepOutcome.prediction`` is the whole batch's (for the training
            metric); False saves that exchange.
        failure_timeout: seconds a failed rank waits for its peers to join
            the status exchange before aborting the job.
    """

    def __init__(self, model: Any, loss: Any, comm: Any = None, on_error: str = "raise",
                 gather_predictions: bool = True, failure_timeout: float = 30.0) -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"MpiDataParallel: on_error must be 'raise' or 'skip', got {on_error!r}")
        MPI = load_mpi()
        base = MPI.COMM_WORLD if comm is None else comm
        self.model = model
        self.loss = loss
        self.on_error = on_error
        self.gather_predictions = gather_predictions
        self.failure_timeout = failure_timeout
        # Private copies: the step's own exchanges on one, the model's (batch
        # norm) on the other, so a failed rank's status can never be paired
        # with a peer's batch statistics, nor the user's own messages with ours.
        self._comm: Any = base.Dup()
        self.communicator = MpiCommunicator(base.Dup())
        self.rank: int = self._comm.Get_rank()
        self.size: int = self._comm.Get_size()
        self._coupled = False  # has a step of this model made collectives of its own?

    @property
    def is_root(self) -> bool:
        """True on rank 0, the rank that prints and writes files."""
        return self.rank == 0

    @property
    def alive(self) -> bool:
        return self._comm is not None

    def compute_gradients(self, x: Any, y: Any, scale: float = 1.0, accumulate: bool = False) -> StepOutcome:
        """Leave the global batch's mean-loss gradient on this rank's parameters (the same on every rank).

        ``x`` and ``y`` are the whole batch (identical on every rank); this
        rank computes only rows ``shard_bounds(len(x), size)[rank]``.
        ``scale`` and ``accumulate`` are as in ``DataParallel.compute_gradients``.
        """
        if self._comm is None:
            raise RuntimeError("MpiDataParallel: compute_gradients after shutdown()")
        previous = {name: p.grad for name, p in self.model.named_params()} if accumulate else None
        total = len(x)
        if total < self.size:
            outcome = self._whole_batch(x, y)
        else:
            outcome = self._shard_step(x, y, total)
        gradients, outcome = outcome
        if scale != 1.0:
            gradients = {name: g * scale for name, g in gradients.items()}
        if previous is not None:
            for name, p in self.model.named_params():
                p.grad = previous[name]
        apply_aggregated_gradients(self.model, gradients, accumulate=accumulate)
        return outcome

    def _whole_batch(self, x: Any, y: Any) -> tuple[dict[str, Any], StepOutcome]:
        """Fewer examples than ranks: every rank computes the whole batch alone (identical results)."""
        result = ParallelBatchProcessor(self.model, self.loss, x, y, self.rank).run()
        if not result.success:
            raise ShardError(f"mpi data parallel: rank {self.rank} failed on a batch of {len(x)} examples "
                             f"(fewer than the {self.size} ranks, so every rank computed it whole): "
                             f"{result.exception}", self.rank, result.exception)
        return result.gradients, StepOutcome(result.loss, len(x), 1, 0, result.prediction)

    def _shard_step(self, x: Any, y: Any, total: int) -> tuple[dict[str, Any], StepOutcome]:
        start, stop = shard_bounds(total, self.size)[self.rank]
        master_rng = get_rng()
        rng = ShardRandom(master_rng.bit_generator.state, start, stop, total)
        calls_before = self.communicator.calls
        with using_rng(rng), using_communicator(self.communicator):
            result = ParallelBatchProcessor(self.model, self.loss, x[start:stop], y[start:stop], self.rank,
                                            total_batch_size=total).run()
        talked = self.communicator.calls > calls_before
        if not result.success and (talked or self._coupled):
            self._abort(f"rank {self.rank} failed inside a step whose layers exchange data with the other "
                        f"ranks (synchronised batch norm); they wait for it inside a collective, so the job "
                        f"is aborted: {type(result.exception).__name__}: {result.exception}", result.exception)
        self._coupled = self._coupled or talked
        names = [name for name, _ in self.model.named_params()]
        failed, has_grad, loss_sum, ok_examples = self._exchange_status(result, names, total)
        if failed:
            self._report_failures(failed, result, total)
        # Only the ranks that succeeded contribute; their shares add up to ok_examples / total.
        share_sum = ok_examples / total
        params = dict(self.model.named_params())
        gradients = self._allreduce_gradients(result, [n for n, h in zip(names, has_grad) if h], params)
        if share_sum != 1.0:
            gradients = {name: g / share_sum for name, g in gradients.items()}
        prediction = None
        if not failed:
            master_rng.bit_generator.state = rng.state  # every rank replayed the same draws
            if self.gather_predictions and result.prediction is not None:
                prediction = self._gather_rows(result.prediction, total)
        outcome = StepOutcome(loss_sum / share_sum, ok_examples, self.size - len(failed), len(failed), prediction)
        return gradients, outcome

    def _exchange_status(self, result: BatchProcessResult, names: list[str],
                         total: int) -> tuple[list[int], list[bool], float, int]:
        """One small all-reduce: failed ranks, parameters with a gradient anywhere, loss, examples done."""
        size = self.size
        status = np.zeros(size + len(names) + 2, dtype=np.float64)
        if result.success:
            grads = {name: p.grad for name, p in self.model.named_params()}
            status[size:size + len(names)] = [grads[name] is not None for name in names]
            status[-2] = result.loss * result.batch_size / total
            status[-1] = result.batch_size
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
        has_grad = [bool(v > 0) for v in summed[size:size + len(names)]]
        return failed, has_grad, float(summed[-2]), int(round(summed[-1]))

    def _report_failures(self, failed: list[int], result: BatchProcessResult, total: int) -> None:
        """Raise the same ShardError on every rank (on_error="raise" or all failed), or log the skip."""
        mine = None if result.success else f"{type(result.exception).__name__}: {result.exception}"
        messages = self._comm.allgather(mine)  # only on failure: the failed ranks' own words for everyone
        bounds = shard_bounds(total, self.size)
        if self.on_error == "raise" or len(failed) == self.size:
            first = failed[0]
            a, b = bounds[first]
            raise ShardError(f"mpi data parallel: rank {first} failed on its shard of {b - a} examples: "
                             f"{messages[first]}", first, result.exception if first == self.rank else None)
        for k in failed:
            logger.warning("mpi data parallel: skipped the shard of rank %d (%s)", k, messages[k])

    def _allreduce_gradients(self, result: BatchProcessResult, names: list[str],
                             params: dict[str, Any]) -> dict[str, Any]:
        """Sum the share-weighted gradients of all ranks in one all-reduce of a flat buffer."""
        if not names:
            return {}
        arrays = [params[name].data for name in names]
        dtype = np.result_type(*[a.dtype for a in arrays])
        flat = np.zeros(sum(a.size for a in arrays), dtype=dtype)
        if result.success:
            offset = 0
            for name, a in zip(names, arrays):
                grad = params[name].grad  # the share-weighted gradient, before the processor's division
                if grad is not None:
                    flat[offset:offset + a.size] = _to_host(grad.data).reshape(-1)
                offset += a.size
        summed = np.empty_like(flat)
        self._comm.Allreduce(flat, summed, op=load_mpi().SUM)
        gradients, offset = {}, 0
        for name, a in zip(names, arrays):
            xp = get_array_module(a)
            part = summed[offset:offset + a.size].reshape(a.shape).astype(a.dtype, copy=False)
            gradients[name] = part if xp is np else xp.asarray(part)
            offset += a.size
        return gradients

    def _gather_rows(self, local: Any, total: int) -> Any:
        """The whole batch's rows, from every rank's shard (an all-gather)."""
        host = _to_host(local)
        row = int(np.prod(host.shape[1:], dtype=np.int64))
        counts = [(b - a) * row for a, b in shard_bounds(total, self.size)]
        gathered = np.empty((total,) + host.shape[1:], dtype=host.dtype)
        self._comm.Allgatherv(host, [gathered, counts])
        xp = get_array_module(local)
        return gathered if xp is np else xp.asarray(gathered)

    def _abort(self, message: str, cause: BaseException | None) -> None:
        """Log why, then end every rank of the job (mpiexec exits non-zero)."""
        logger.critical("mpi data parallel: %s", message, exc_info=cause)
        for handler in logging.getLogger().handlers + [logging.lastResort]:
            if handler is not None:
                handler.flush()
        self._comm.Abort(1)

    def shutdown(self, timeout: float = 30) -> None:
        """Release the duplicated communicators. Safe to call twice; ``timeout`` is for DataParallel's interface."""
        if self._comm is not None:
            comm, self._comm = self._comm, None
            comm.Free()
            self.communicator.comm.Free()


__all__ = ["MpiCommunicator", "MpiDataParallel", "load_mpi"]
