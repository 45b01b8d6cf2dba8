"""Parameter servers: workers pull parameters, push gradients; servers own the update.

TinyAI's documents describe the architecture: N workers and M servers; each
worker computes the gradient of its data, the servers combine the workers'
gradients (grad L = (1/N) sum_i grad L_i), update the parameters they keep
and send them back. Here:

* the parameters are *partitioned* across the M servers by name, balanced by
  size (``partition_parameters``: largest first, each to the server holding
  the fewest values so far);
* each server owns the optimizer state of its partition (``ServerShard``: a
  copy of the Trainer's optimizer restricted to those parameters) and applies
  every update to them; its ``version`` counts the updates it applied;
* ``ps_mode`` says when a server applies an update:

  - ``"sync"`` (bulk-synchronous): every step, each worker computes its shard
    of the batch and pushes its gradient; the servers wait for every push,
    take the size-weighted mean and update once. This is exactly synchronous
    all-reduce training (tested in float64).
  - ``"async"``: the data of an epoch are partitioned across the workers
    (whole batches, round-robin: every sample is seen once per epoch); each
    worker loops over its batches on its own: pull, compute, push. A server
    applies each push as it arrives, one at a time (a lock), so a gradient
    may have been computed from parameters that other workers' pushes have
    since changed. That lag, in updates, is its *staleness* (recorded in
    ``parallel_stats()["staleness_histogram"]``).
  - ``"stale"`` (stale-synchronous parallel): like "async", but a worker may
    run at most ``staleness`` updates ahead of the slowest worker still
    training; a faster one waits (``wait_time_s``). ``staleness=0`` is
    lock-step. With W workers the lag of a gradient is then at most
    (W - 1)(2 s + 1): while one worker computes, each other can finish at
    most 2 s + 1 steps.

Where they run: "sync" on threads and worker processes (the servers live
with the master model) and on MPI, where server s is rank s (s < M): every
rank sends its gradient of partition s to rank s, which adds them in rank
order, updates with its own optimizer state and broadcasts the new values.
"async" and "stale" run everywhere too. On threads the workers call the
servers directly (the servers' locks order the pushes). On worker processes
and MPI the same conversation travels as messages (``ps_remote.py``): on
processes the M servers answer in a thread of the master, over the workers'
shared-memory world, and update the master model and the Trainer's
optimizer state in place; on MPI server s is rank s and the first M ranks
only serve (the other ranks are the workers), and each server broadcasts its
partition at the end of the epoch so that every rank ends it with the same
parameters.

With ``compression`` each worker compresses its pushes with its own copy of
the compressor (``compressor.for_worker(k)``: its own error-feedback
residuals) and each server decodes its part; pulls stay dense. Under MPI the
bytes (``encode_arrays``) are what rank k sends rank s: the payloads of
partition s's parameters.

A worker that fails in an asynchronous mode stops the others at their next
step (nobody waits for it) and is reported as ``WorkerError`` naming it; a
worker process that dies (SIGKILL) is noticed by the process executor, which
releases the servers and the other workers, and reported the same way.
"""
from __future__ import annotations

import copy
import logging
import threading
import time
from typing import Any, Sequence

from tinyai.autograd import Variable
from tinyai.backend import get_array_module
from tinyai.parallel.compression import decode_arrays, encode_arrays, get_compressor
from tinyai.parallel.stats import DENSE_ITEMSIZE
from tinyai.parallel.strategy.base import StepOutcome, Strategy
from tinyai.parallel.utils import apply_aggregated_gradients

logger = logging.getLogger(__name__)

__all__ = ["ParameterServer", "ServerShard", "partition_parameters", "PS_MODES"]

#: When the servers apply updates (see the module docstring).
PS_MODES = ("sync", "async", "stale")


def partition_parameters(sizes: Sequence[tuple[str, int]], num_servers: int) -> list[list[str]]:
    """Split named parameters over ``num_servers`` servers, balanced by size.

    ``sizes`` is [(name, number of values)] in the model's order. The largest
    parameter goes first, each to the server with the fewest values so far
    (the lowest index on a tie). Each server's names keep the model's order.
    Raises ValueError if there are fewer parameters than servers.
    """
    if num_servers < 1 or num_servers > len(sizes):
        raise ValueError(f"parameter_server: num_servers must be between 1 and the model's {len(sizes)} "
                         f"parameters, got {num_servers}")
    order = {name: i for i, (name, _) in enumerate(sizes)}
    loads = [0] * num_servers
    names: list[list[str]] = [[] for _ in range(num_servers)]
    for name, size in sorted(sizes, key=lambda item: (-item[1], order[item[0]])):
        target = min(range(num_servers), key=lambda s: (loads[s], s))
        loads[target] += size
        names[target].append(name)
    return [sorted(group, key=order.__getitem__) for group in names]


class ServerShard:
    """One parameter server: its parameters (the master's, by name), their optimizer state, a version.

    Args:
        index: the server's number.
        pairs: its (name, Parameter) pairs.
        optimizer: the Trainer's optimizer; the server updates with a copy
            restricted to ``pairs``, sharing the per-parameter state arrays
            with it (so checkpoints hold the servers' state) and following
            its learning rate (schedules change ``optimizer.lr``).
    """

    def __init__(self, index: int, pairs: list[tuple[str, Any]], optimizer: Any) -> None:
        self.index = index
        self.pairs = pairs
        self.master_optimizer = optimizer
        own = copy.copy(optimizer)
        own._source, own._fixed = None, list(pairs)
        own.state = {name: optimizer.state[name] for name, _ in pairs if name in optimizer.state}
        own.steps = {name: optimizer.steps.get(name, 0) for name, _ in pairs}
        self.optimizer = own
        #: Updates applied so far.
        self.version = 0
        self.lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        return sum(p.data.nbytes for _, p in self.pairs)

    @property
    def size(self) -> int:
        return sum(p.data.size for _, p in self.pairs)

    def pull_into(self, replica_params: dict[str, Any]) -> int:
        """Copy this server's parameters into a worker's replica; the version read."""
        with self.lock:
            for name, p in self.pairs:
                replica_params[name].data[...] = p.data
            return self.version

    def apply(self, gradients: dict[str, Any]) -> int:
        """One optimizer update of this partition with ``gradients`` (name -> array); the version it replaced."""
        with self.lock:
            return self._apply_locked(gradients)

    def _apply_locked(self, gradients: dict[str, Any]) -> int:
        own, master = self.optimizer, self.master_optimizer
        own.lr = master.lr  # a schedule sets the Trainer's optimizer
        for name, p in self.pairs:
            grad = gradients.get(name)
            p.grad = None if grad is None else Variable(grad, requires_grad=False)
        own.update()
        for name, p in self.pairs:
            p.grad = None
            if name in own.state:
                master.state[name] = own.state[name]
            master.steps[name] = own.steps.get(name, 0)
        version, self.version = self.version, self.version + 1
        return version


class _Clocks:
    """Each worker's count of completed steps; stale-synchronous waiting and failure news."""

    def __init__(self, workers: int, bound: int | None) -> None:
        self.clock = [0] * workers
        self.done = [False] * workers
        self.bound = bound
        self.failed: int | None = None
        self.cond = threading.Condition()
        self.started = 0

    def start(self) -> None:
        """Wait until every worker has started (the epoch starts for all at once)."""
        with self.cond:
            self.started += 1
            self.cond.notify_all()
            self.cond.wait_for(lambda: self.started >= len(self.clock) or self.failed is not None)

    def _ahead(self, k: int) -> int:
        active = [c for c, done in zip(self.clock, self.done) if not done]
        return self.clock[k] - min(active)

    def wait_turn(self, k: int) -> tuple[bool, float]:
        """(go on?, seconds waited): False once another worker failed."""
        started = time.perf_counter()
        with self.cond:
            if self.bound is not None:
                self.cond.wait_for(lambda: self.failed is not None or self._ahead(k) <= self.bound)
            return self.failed is None, time.perf_counter() - started

    def tick(self, k: int) -> None:
        with self.cond:
            self.clock[k] += 1
            self.cond.notify_all()

    def finish(self, k: int, failed: bool = False) -> None:
        with self.cond:
            self.done[k] = True
            if failed and self.failed is None:
                self.failed = k
            self.cond.notify_all()


class ParameterServer(Strategy):
    """Workers pull, compute and push; ``num_servers`` servers update their partitions (module docstring).

    Args:
        mode: "sync", "async" or "stale".
        staleness: for "stale", how many updates a worker may run ahead of the slowest (>= 0).
        num_servers: M, the number of servers (1 .. number of parameters).
        on_error: "raise" or "skip" (sync mode: a failed shard is left out of the average).
        compression: None, a name or a ``Compressor``: the workers push
            compressed gradients (the bytes of ``encode_arrays``), the servers
            decode them; pulls stay dense. On MPI too, in every mode.
        straggler: None, or (worker, seconds): a delay added to every step of
            that worker, to study what a slow worker costs (benchmarks).
    """

    name = "parameter_server"

    def __init__(self, mode: str = "sync", staleness: int | None = None, num_servers: int = 1,
                 on_error: str = "raise", straggler: tuple[int, float] | None = None, compression: Any = None) -> None:
        super().__init__(on_error)
        check_ps_settings(mode, staleness, num_servers)
        #: How pushes travel (None: dense); each worker compresses with its own ``for_worker(k)`` copy.
        self.compressor = get_compressor(compression)
        self.mode = mode
        self.staleness = staleness
        self.num_servers = num_servers
        self.straggler = straggler
        self.servers: list[ServerShard] | None = None
        self._optimizer: Any = None
        self._rank_compressor: Any = None  # under MPI: this rank's own copy of the compressor
        #: For each worker, the indices (in the epoch's batch order) of the batches it took last epoch.
        self.last_assignment: list[list[int]] = []

    @property
    def exact(self) -> bool:  # type: ignore[override]
        """Only bulk-synchronous mode equals single-process training."""
        return self.mode == "sync"

    @property
    def owns_epoch(self) -> bool:
        """Asynchronous modes run a whole epoch at once (``train_epoch``); sync goes batch by batch."""
        return self.mode != "sync"

    def bind(self, model: Any, loss: Any, executor: Any) -> None:
        super().bind(model, loss, executor)
        params = list(model.named_params())
        partition_parameters([(name, p.data.size) for name, p in params], self.num_servers)  # checks M now
        if executor.kind == "mpi":
            comm = executor.gradient_communicator
            if self.num_servers > comm.size:
                raise ValueError(f"parameter_server: num_servers={self.num_servers} servers on the first ranks of "
                                 f"an MPI job of {comm.size} ranks; launch more ranks or use fewer servers")
            if self.mode != "sync" and comm.size <= self.num_servers:
                raise ValueError(f"parameter_server: ps_mode={self.mode!r} on MPI makes the first num_servers="
                                 f"{self.num_servers} ranks servers, which do not train, and an MPI job of "
                                 f"{comm.size} ranks leaves no worker; launch at least {self.num_servers + 1} "
                                 "ranks or use fewer servers")

    def _servers_for(self, optimizer: Any) -> list[ServerShard]:
        if self.servers is None or self._optimizer is not optimizer:
            if getattr(optimizer, "max_grad_norm", None) is not None and self.num_servers > 1:
                raise ValueError("parameter_server: max_grad_norm clips the norm of the whole gradient, which no "
                                 f"one of {self.num_servers} servers sees; use num_servers=1 or no clipping")
            params = list(self.model.named_params())
            groups = partition_parameters([(name, p.data.size) for name, p in params], self.num_servers)
            lookup = dict(params)
            self.servers = [ServerShard(s, [(name, lookup[name]) for name in group], optimizer)
                            for s, group in enumerate(groups)]
            self._optimizer = optimizer
        return self.servers

    def _record_push_pull(self, workers: int) -> None:
        """Each worker pushes its gradient to the servers (compressed, if asked) and pulls the parameters back."""
        params = list(self.model.params())
        nbytes = sum(p.data.nbytes for p in params)
        entries = sum(p.data.size for p in params)
        push = nbytes
        if self.compressor is not None:
            push = sum(self.compressor.payload_nbytes(p.data.shape, p.data.dtype) for p in params)
        self.stats.record_exchange(workers * (push + nbytes), 2 * workers * entries * DENSE_ITEMSIZE)

    # -- sync: one batch, every worker's push, one update --------------------------------------
    def compute_gradients(self, x: Any, y: Any) -> StepOutcome:
        """Sync mode: the workers' pushes, averaged by the servers, on ``p.grad`` for ``apply_update``."""
        if self.mode != "sync":
            raise RuntimeError(f"parameter_server: ps_mode={self.mode!r} trains whole epochs (train_epoch), "
                               "not batch by batch")
        results = self.executor.compute(self.model, x, y)
        for r in self.check_failures(results):
            logger.warning("parameter server: skipped the push of worker %d (%s)", r.worker_id, r.exception)
        if self.executor.kind == "mpi" and len(results) > 1:
            self._push_to_rank_servers(results)
            self._record_push_pull(len(results))
            return self.outcome_of(results)
        ok = [r for r in results if r.success]
        total = sum(r.batch_size for r in ok)
        if self.compressor is not None and len(results) > 1:
            summed = self._compressed_pushes(results)
            share = total / sum(r.batch_size for r in results)
            apply_aggregated_gradients(self.model, {name: g / share for name, g in summed.items()})
            self._record_push_pull(len(results))
            return self.outcome_of(results)
        summed = {}
        for r in ok:  # the servers add the pushes in worker order, weighted by shard size
            for name, grad in r.gradients.items():
                part = grad * r.batch_size
                summed[name] = part if name not in summed else summed[name] + part
        apply_aggregated_gradients(self.model, {name: g / total for name, g in summed.items()})
        self._record_push_pull(len(results))
        return self.outcome_of(results)

    def _compressed_pushes(self, results: Sequence[Any]) -> dict[str, Any]:
        """Each worker's share-weighted gradient as compressed bytes; the servers decode and add them in worker order."""
        from tinyai.parallel.strategy.compressed import _compress_on_worker

        names = sorted(name for name, _ in self.model.named_params())
        wires = self.executor.run(_compress_on_worker, [(self.compressor, names, r.success) for r in results])
        like = {name: p.data for name, p in self.model.named_params()}
        summed = None
        for wire in wires:
            if wire is not None:
                summed = decode_arrays(self.compressor, wire, like, names, out=summed)
        return summed

    def apply_update(self, optimizer: Any) -> None:
        """Sync mode: each server updates its partition from ``p.grad`` (the averaged pushes).

        Under MPI server s is rank s: it alone updates (and keeps the optimizer
        state of) its partition, then sends the new values to every rank.
        """
        mpi = self.executor.kind == "mpi"
        for server in self._servers_for(optimizer):
            if not mpi or self.executor.gradient_communicator.rank == server.index:
                server.apply({name: None if p.grad is None else p.grad.data for name, p in server.pairs})
            if mpi:
                self._pull_from_rank_server(server)
        optimizer.iterations += 1
        self.stats.record_update()

    # -- MPI: server s is rank s ---------------------------------------------------------------
    def _push_to_rank_servers(self, results: Sequence[Any]) -> None:
        """Every rank sends its share-weighted gradient of partition s to rank s, which adds them in rank order."""
        comm = self.executor.gradient_communicator
        rank, total = comm.rank, sum(r.batch_size for r in results)
        ok_share = sum(r.batch_size for r in results if r.success) / total
        own = results[rank]
        params = dict(self.model.named_params())
        groups = partition_parameters([(name, p.data.size) for name, p in params.items()], self.num_servers)
        if self.compressor is not None:
            self._push_compressed_to_rank_servers(comm, own.success, params, groups, ok_share)
            return
        for p in params.values():
            p.grad = None
        for s, names in enumerate(groups):
            flat = _flat([own.gradients.get(name) if own.success else None for name in names],
                         [params[name].data for name in names], own.batch_size / total)
            if rank != s:
                comm.send(flat, s)
                continue
            summed = None
            for k in range(comm.size):  # rank order: the same sum whatever arrives first
                part = flat if k == rank else comm.recv(k)
                summed = part if summed is None else summed + part
            offset = 0
            for name in names:
                data = params[name].data
                grad = summed[offset:offset + data.size].reshape(data.shape) / ok_share
                params[name].grad = Variable(grad.astype(data.dtype, copy=False), requires_grad=False)
                offset += data.size

    def _push_compressed_to_rank_servers(self, comm: Any, success: bool, params: dict[str, Any],
                                         groups: list[list[str]], ok_share: float) -> None:
        """Every rank sends rank s the compressed bytes of its gradient of partition s; rank s decodes and adds.

        The rank compresses its whole share-weighted gradient in sorted-name
        order with its own compressor (as a thread or process worker does, so
        error-feedback residuals and random draws are the same whatever the
        transport) and sends each server the bytes of that server's
        parameters: the payloads are laid end to end, one per parameter. A
        rank whose shard failed sends no bytes.
        """
        import numpy as np

        from tinyai.parallel.strategy.compressed import _share_weighted_gradients

        rank = comm.rank
        if self._rank_compressor is None:  # this rank's own copy: its residuals carry over between steps
            self._rank_compressor = self.compressor.for_worker(rank)
        names = sorted(params)
        like = {name: params[name].data for name in names}
        wire = None
        if success:
            wire = encode_arrays(self._rank_compressor,
                                 dict(zip(names, _share_weighted_gradients(self.model, names))), names)
        sizes = [self.compressor.payload_nbytes(like[name].shape, like[name].dtype) for name in names]
        offsets = dict(zip(names, np.cumsum([0] + sizes[:-1]).tolist()))
        spans = dict(zip(names, sizes))
        for p in params.values():
            p.grad = None
        for s, group in enumerate(groups):
            own = sorted(group)
            if wire is None:
                part = np.zeros(0, dtype=np.uint8)
            else:
                xp = get_array_module(wire)
                part = xp.concatenate([wire[offsets[name]:offsets[name] + spans[name]] for name in own])
            if rank != s:
                comm.send(part, s)
                continue
            summed = None
            for k in range(comm.size):  # rank order: the same sum as the servers of threads or processes
                arrived = part if k == rank else comm.recv(k)
                if arrived.size:
                    summed = decode_arrays(self.compressor, arrived, like, own, out=summed)
            for name in own:
                grad = summed[name] / ok_share if ok_share != 1.0 else summed[name]
                params[name].grad = Variable(grad.astype(like[name].dtype, copy=False), requires_grad=False)

    def _pull_from_rank_server(self, server: ServerShard) -> None:
        """Rank ``server.index`` sends its partition's new values to every rank."""
        comm = self.executor.gradient_communicator
        arrays = [p.data for _, p in server.pairs]
        flat = _flat(arrays, arrays, 1.0)
        flat = comm.broadcast(flat, root=server.index)
        offset = 0
        for _, p in server.pairs:
            p.data[...] = flat[offset:offset + p.data.size].reshape(p.data.shape)
            offset += p.data.size

    def checkpoint_state(self, model: Any, optimizer: Any) -> tuple[Any, Any, bool] | None:
        """Under MPI with several servers: the whole optimizer state, gathered on rank 0, which writes.

        Server rank s alone keeps the optimizer state of its partition (the
        other ranks' copies of it never move), so each server sends rank 0
        the state and step count of each of its parameters. A collective
        call: every rank makes it (the Trainer's ``save_checkpoint`` does).
        Elsewhere (one server, threads, processes) the master already holds
        everything: None.
        """
        executor = self.executor
        if executor is None or executor.kind != "mpi" or self.num_servers == 1 or optimizer is None:
            return None
        import numpy as np

        comm = executor.gradient_communicator
        state = dict(optimizer.state_dict())
        params = list(model.named_params())
        groups = partition_parameters([(name, p.data.size) for name, p in params], self.num_servers)
        slots = tuple(getattr(optimizer, "slots", ()))
        for server, names in enumerate(groups[1:], start=1):
            if comm.rank not in (0, server):
                continue
            for name in names:
                prefix = f"state.{name}."
                if comm.rank == server:  # whether it has state yet (updated at least once), and the step
                    comm.send(np.array([prefix + "step" in state, state.get(prefix + "step", 0)]), 0)
                    for slot in slots if prefix + "step" in state else ():
                        comm.send(np.asarray(state[prefix + slot]), 0)
                    continue
                present, step = (int(v) for v in comm.recv(server))
                for slot in (*slots, "step"):
                    state.pop(prefix + slot, None)  # rank 0's copy of a partition it does not serve
                if present:
                    state[prefix + "step"] = step
                    for slot in slots:
                        state[prefix + slot] = comm.recv(server)
        return model, state, executor.is_root

    # -- async and stale: whole epochs --------------------------------------------------------
    def train_epoch(self, batches: Sequence[Any], optimizer: Any) -> list[float]:
        """Train one epoch asynchronously; the loss of each batch, in the order of ``batches``.

        Worker k takes batches k, k + W, k + 2W, ... (W workers): whole
        batches, every sample once per epoch.
        """
        servers = self._servers_for(optimizer)
        if self.executor.kind != "thread":  # worker processes and MPI ranks: messages (ps_remote.py)
            return self._train_epoch_by_messages(batches, optimizer, servers)
        workers = min(self.executor.workers, len(batches))
        assignment = [list(range(k, len(batches), workers)) for k in range(workers)]
        self.last_assignment = assignment
        clocks = _Clocks(workers, self.staleness if self.mode == "stale" else None)
        args = [(self, servers, [(batches[i].x, batches[i].y) for i in own], clocks) for own in assignment]
        per_worker = self.executor.run(_async_worker, args)
        losses = [float("nan")] * len(batches)
        for own, values in zip(assignment, per_worker):
            for i, value in zip(own, values):
                losses[i] = value
        optimizer.iterations += sum(len(values) for values in per_worker)
        return losses

    def _train_epoch_by_messages(self, batches: Sequence[Any], optimizer: Any,
                                 servers: list[ServerShard]) -> list[float]:
        """``train_epoch`` on worker processes (servers in a thread of this process) or MPI (servers on
        the first M ranks, which do not train): the conversation of ``ps_remote``."""
        from tinyai.parallel.executor.base import WorkerError
        from tinyai.parallel.strategy.ps_remote import ServerRank, WorkerPlan, run_rank, work

        executor = self.executor
        groups = [[name for name, _ in server.pairs] for server in servers]
        bound = self.staleness if self.mode == "stale" else None
        mpi = executor.kind == "mpi"
        if mpi:  # ranks 0 .. M-1 serve, the others work
            comm = executor.gradient_communicator
            worker_ranks = list(range(self.num_servers, comm.size))
            server_ranks = [server.index for server in servers]
        else:  # the master is the last rank of the workers' world
            worker_ranks = list(range(min(executor.workers, len(batches))))
            server_ranks = [executor.workers] * len(servers)
        workers = len(worker_ranks)
        assignment = [list(range(k, len(batches), workers)) for k in range(workers)]
        self.last_assignment = assignment
        plans = [WorkerPlan(k, [(batches[i].x, batches[i].y) for i in own], groups, server_ranks,
                            self.straggler[1] if self.straggler and self.straggler[0] == k else 0.0,
                            self.compressor, shared=not mpi)
                 for k, own in enumerate(assignment)]
        if mpi:
            rank = comm.rank
            args: list[tuple] = [(None, None)] * comm.size
            if rank < self.num_servers:
                args[rank] = (None, ServerRank(comm, {rank: servers[rank]}, worker_ranks, bound, self.compressor))
            else:
                args[rank] = (plans[rank - self.num_servers], None)
            summaries = executor.run(run_rank, args)[self.num_servers:]
            for server in servers:  # every rank ends the epoch with the servers' parameters
                self._pull_from_rank_server(server)
        else:
            def serve(comm: Any) -> None:
                buffers = {k: executor.worker_buffers(k) for k in worker_ranks}  # numbers travel there
                ServerRank(comm, dict(enumerate(servers)), worker_ranks, bound, self.compressor, buffers).serve()

            summaries = executor.run(work, [(plan,) for plan in plans], serve=serve)
        steps = 0
        for summary in summaries:
            for lag in summary["lags"]:
                self.stats.record_staleness(lag)
                self.stats.record_update()
                self._record_push_pull(1)
            for seconds in summary["waits"]:
                self.stats.record_wait(seconds)
            steps += len(summary["lags"])
        optimizer.iterations += steps
        for k, summary in enumerate(summaries):
            if summary["error"] is not None:
                where = f"worker {k} (rank {worker_ranks[k]})" if mpi else f"worker {k}"
                cause = RuntimeError(f"{summary['error']}\n--- {where}'s traceback ---\n{summary['traceback']}")
                raise WorkerError(f"parameter server (ps_mode={self.mode!r}): {where} failed: "
                                  f"{summary['error']}", worker_ranks[k] if mpi else k, cause)
        losses = [float("nan")] * len(batches)
        for own, summary in zip(assignment, summaries):
            for i, value in zip(own, summary["losses"]):
                losses[i] = value
        return losses

    def __repr__(self) -> str:
        return (f"ParameterServer(mode={self.mode!r}, staleness={self.staleness!r}, "
                f"num_servers={self.num_servers})")


def _async_worker(worker: Any, strategy: ParameterServer, servers: list[ServerShard],
                  batches: list[tuple[Any, Any]], clocks: _Clocks) -> list[float]:
    """Worker k's epoch: for each of its batches pull, compute, push (servers apply at once)."""
    k = worker.worker_id
    model, stats = worker.model, strategy.stats
    params = dict(model.named_params())
    if hasattr(model, "train"):
        model.train()
    delay = strategy.straggler[1] if strategy.straggler and strategy.straggler[0] == k else 0.0
    compressor = None
    if strategy.compressor is not None:  # the worker's own copy: its residuals carry over between steps
        if worker.state.get("ps_compression") != repr(strategy.compressor):
            worker.state["ps_compressor"] = strategy.compressor.for_worker(k)
            worker.state["ps_compression"] = repr(strategy.compressor)
        compressor = worker.state["ps_compressor"]
    losses: list[float] = []
    try:
        clocks.start()
        for x, y in batches:
            go, waited = clocks.wait_turn(k)
            if waited:
                stats.record_wait(waited)
            if not go:  # another worker died: stop, it will be reported
                break
            read = [server.pull_into(params) for server in servers]
            if delay:
                time.sleep(delay)
            model.clear_grads()
            loss = worker.loss.loss(Variable(y, requires_grad=False), model(Variable(x, requires_grad=False)))
            loss.backward()
            loss.unchain_backward()
            grads = {name: p.grad.data for name, p in params.items() if p.grad is not None}
            lag = 0
            for server, version in zip(servers, read):
                push = {name: grads[name] for name, _ in server.pairs if name in grads}
                if compressor is not None:  # the bytes go to the server, which decodes them
                    names = sorted(push)
                    push = decode_arrays(compressor, encode_arrays(compressor, push, names), push, names)
                lag = max(lag, server.apply(push) - version)
            stats.record_staleness(lag)
            stats.record_update()
            strategy._record_push_pull(1)
            losses.append(float(loss.item()))
            clocks.tick(k)
            # Let a worker that waits for the interpreter lock in (one busy thread can otherwise
            # keep it for many steps while another, woken, waits its turn).
            time.sleep(0)
    except BaseException:
        clocks.finish(k, failed=True)
        raise
    clocks.finish(k)
    return losses


def _flat(arrays: list[Any], like: list[Any], scale: float) -> Any:
    """``arrays`` (None: zeros shaped like ``like``) flattened into one vector, times ``scale``."""
    import numpy as np

    parts = [np.zeros(b.size, dtype=b.dtype) if a is None else (np.asarray(a) * scale).reshape(-1)
             for a, b in zip(arrays, like)]
    return np.concatenate(parts)


def check_ps_settings(mode: Any, staleness: Any, num_servers: Any) -> None:
    """Clear errors for parameter-server settings that cannot work."""
    from tinyai.backend.settings import is_int

    if mode not in PS_MODES:
        raise ValueError(f"parameter_server: ps_mode must be one of {PS_MODES}, got {mode!r}")
    if mode == "stale":
        if not is_int(staleness) or staleness < 0:
            raise ValueError(f"parameter_server: ps_mode='stale' needs staleness=s, an int >= 0 (how many updates "
                             f"a worker may run ahead of the slowest), got {staleness!r}")
    elif staleness is not None:
        raise ValueError(f"parameter_server: staleness={staleness!r} applies to ps_mode='stale' only, "
                         f"not ps_mode={mode!r}")
    if not is_int(num_servers) or num_servers < 1:
        raise ValueError(f"parameter_server: num_servers must be an int >= 1, got {num_servers!r}")
