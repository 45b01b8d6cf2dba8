"""Hybrid parallelism in the Trainer: data-parallel replicas of a tensor- or pipeline-parallel model.

Every rank of a ``ProcessGrid`` runs the same script: it builds the same
model from the same seed, loads the same data, draws the same batches, and
calls ``Trainer(..., strategy=HybridParallel(grid)).train()``. One step of
a global batch of N examples:

1. Replica d (``grid.data_rank``) takes its shard of the batch (n_d of the
   N examples); the M ranks of a replica all see the same shard.
2. The replica computes the gradient of its share n_d / N of the batch
   loss together: with a tensor grid the split layers talk through
   ``grid.tensor`` inside forward and backward; with a pipeline grid the
   shard is cut into micro-batches that flow through the stages (GPipe: all
   forwards, then all backwards), activations sent forward and their
   gradients back over ``grid.pipeline``.
3. One all-reduce over ``grid.data`` sums those shares for the part of the
   model this rank holds: every rank then has the batch's mean gradient for
   its part, exactly as one process training on the whole batch would.
4. Every rank updates its part with its own optimizer. With a pipeline,
   each stage then broadcasts its updated parameters to the other stages of
   its replica, so every rank keeps the whole model current (for
   evaluation, prediction and checkpoints; it costs one model's worth of
   bytes per step, and a whole model's memory per rank).

So the result equals single-process training on the same batches, up to
rounding (the tests check it in float64). Only ``grid.data_rank == 0``
ranks print progress; global rank 0 writes checkpoints, which hold the
whole, unsplit model (tensor-parallel layers gathered).

Limits: a rank that fails ends the job (the others wait inside the step's
collectives until the communicator's timeout or MPI's abort); dropout and
batch normalisation are not split exactly, and gradient clipping by the
global norm (``max_grad_norm``) would see only this rank's part, so it is
refused.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import numpy as np

from tinyai.autograd import Variable
from tinyai.backend import get_array_module, to_cpu
from tinyai.parallel.executor.base import Executor, WorkerContext
from tinyai.parallel.grid import ProcessGrid, check_grid
from tinyai.parallel.pipeline.planning import split_into_stages
from tinyai.parallel.processor import BatchProcessResult
from tinyai.parallel.sharding import shard_bounds
from tinyai.parallel.strategy.allreduce import SynchronousAllReduce
from tinyai.parallel.tensor.checkpoint import full_optimizer_state, full_state_dict, split_layers

_FORWARD_TAG, _BACKWARD_TAG = 0, 1


class GridExecutor(Executor):
    """The replicas of a ``ProcessGrid`` as the workers of a data-parallel step (one per data rank).

    ``compute`` runs this rank's part of its replica's shard and learns the
    other replicas' losses, sizes and predictions; ``allreduce_gradients``
    sums the share-weighted gradients over ``grid.data``. After each step
    ``last_events`` holds (rank, phase, micro-batch, start s, end s) of
    what this rank did, in ``time.perf_counter`` seconds: one clock for all
    ranks of one machine, so the ranks' events can be drawn on one timeline
    (``tinyai.viz.timeline_figure``).
    """

    kind = "grid"
    shares_device = True

    def __init__(self, grid: ProcessGrid, model: Any, loss: Any, micro_batches: int = 4) -> None:
        self.grid = check_grid(grid, "GridExecutor")
        self.model = model
        self.loss = loss
        self.micro_batches = micro_batches
        self.workers = grid.data_size
        self.is_root = grid.data_rank == 0
        self.stage = split_into_stages(model, grid.model_size)[grid.model_rank] if grid.kind == "pipeline" else None
        self.last_events: list[tuple[int, str, int, float, float]] = []
        self._local: dict[str, Any] = {}
        self._state: dict = {}
        self._alive = True

    @property
    def alive(self) -> bool:
        return self._alive

    def _event(self, phase: str, micro_batch: int, start: float) -> None:
        self.last_events.append((self.grid.rank, phase, micro_batch, start, time.perf_counter()))

    def compute(self, master: Any, x: Any, y: Any) -> list[BatchProcessResult]:
        if not self._alive:
            raise RuntimeError("GridExecutor: compute after shutdown()")
        grid = self.grid
        total = len(x)
        if total < grid.data_size:
            raise ValueError(f"hybrid parallel: a batch of {total} examples cannot be split over "
                             f"{grid.data_size} data-parallel replicas (each needs one)")
        self.last_events = []
        start, stop = shard_bounds(total, grid.data_size)[grid.data_rank]
        share = (stop - start) / total
        master.clear_grads()
        if grid.kind == "tensor":
            began = time.perf_counter()
            prediction = master(Variable(x[start:stop], requires_grad=False))
            value = self.loss.loss(Variable(y[start:stop], requires_grad=False), prediction)
            loss = float(value.item())
            value.backward(np.asarray(share, dtype=value.data.dtype))
            prediction = prediction.data
            self._event("FB", 0, began)
        else:
            loss, prediction = self._pipeline_step(x[start:stop], y[start:stop], share)
        self._local = {name: p.grad.data for name, p in master.named_params() if p.grad is not None}
        # What the other replicas computed: sizes and losses, and their rows of the prediction.
        status = grid.data.allgather(np.array([[stop - start, loss]], dtype=np.float64))
        rows = grid.data.allgather(prediction)
        results = []
        for k, (a, b) in enumerate(shard_bounds(total, grid.data_size)):
            result = BatchProcessResult(k, float(status[k, 1]), int(status[k, 0]), True, prediction=rows[a:b])
            if k == grid.data_rank:
                result.gradients = self._local
            results.append(result)
        return results

    def _pipeline_step(self, x: Any, y: Any, share: float) -> tuple[float, Any]:
        """GPipe over ``grid.pipeline`` on this replica's shard; the shard's loss and prediction on every stage.

        Micro-batch m's loss is weighted n_m / n of the shard's, times the
        shard's share of the batch, so the stages' gradients add up to the
        share-weighted gradient of the shard's mean loss.
        """
        comm, stage = self.grid.pipeline, self.stage
        k, last = comm.rank, comm.size - 1
        bounds = shard_bounds(len(x), self.micro_batches)
        saved = []
        losses, outputs = [], []
        # Events are timed from the moment a stage has its input: waiting shows as a gap (the bubble).
        for m, (a, b) in enumerate(bounds):
            if k == 0:
                inputs = Variable(x[a:b], requires_grad=False)
            else:
                inputs = Variable(comm.recv(k - 1, _FORWARD_TAG))
            began = time.perf_counter()
            output = stage(inputs)
            if k == last:
                value = self.loss.loss(Variable(y[a:b], requires_grad=False), output)
                losses.append(float(value.item()) * (b - a) / len(x))
                outputs.append(output.data)
                saved.append((inputs, value, share * (b - a) / len(x)))
            else:
                comm.send(output.data, k + 1, _FORWARD_TAG)
                saved.append((inputs, output, None))
            self._event("F", m, began)
        for m in reversed(range(len(bounds))):
            inputs, output, weight = saved[m]
            if k == last:
                began = time.perf_counter()
                output.backward(np.asarray(weight, dtype=output.data.dtype))
            else:
                gy = Variable(comm.recv(k + 1, _BACKWARD_TAG))
                began = time.perf_counter()
                output.backward(gy)
            if k > 0:
                comm.send(inputs.grad.data, k - 1, _BACKWARD_TAG)
            saved[m] = None  # free the micro-batch's graph
            self._event("B", m, began)
        if k == last:
            xp = get_array_module(outputs[0])
            loss, prediction = np.array(sum(losses)), xp.concatenate(outputs)
        else:
            loss, prediction = None, None
        loss = float(comm.broadcast(loss, root=last))
        prediction = comm.broadcast(prediction, root=last)
        return loss, prediction

    def allreduce_gradients(self, results: Sequence[BatchProcessResult]) -> dict[str, Any]:
        """The batch's mean gradient of this rank's part: one all-reduce of a flat buffer over ``grid.data``."""
        began = time.perf_counter()
        names = list(self._local)
        if not names:
            return {}
        arrays = [self._local[name] for name in names]
        xp = get_array_module(arrays[0])
        flat = xp.concatenate([a.reshape(-1) for a in arrays])
        summed = self.grid.data.allreduce(flat)
        gradients, offset = {}, 0
        for name, a in zip(names, arrays):
            gradients[name] = summed[offset:offset + a.size].reshape(a.shape)
            offset += a.size
        self._event("AR", 0, began)
        return gradients

    def run(self, fn: Callable[..., Any], args: Sequence[tuple] | None = None) -> list[Any]:
        """``fn(WorkerContext, *args[data_rank])`` on this rank; the list holds only this rank's value."""
        args = list(args) if args is not None else [()] * self.workers
        return [fn(WorkerContext(self.grid.data_rank, self.model, self.loss, self._state),
                   *args[self.grid.data_rank])]

    def shutdown(self, timeout: float = 30) -> bool:
        """Stop taking steps; the grid's communicators belong to the caller and stay open."""
        self._alive = False
        return True


class HybridParallel(SynchronousAllReduce):
    """The Trainer's strategy for a ``ProcessGrid``: ``Trainer(..., strategy=HybridParallel(grid)).train()``.

    Args:
        grid: the ``ProcessGrid`` of this rank.
        micro_batches: GPipe micro-batches per replica's shard (pipeline grids).

    With a tensor grid, the Trainer's model is the split model (e.g.
    ``tensor_parallel(model, grid.tensor)``); with a pipeline grid it is the
    whole model (a ``SequentialBlock`` or ``MlpBlock``), and stage
    ``grid.model_rank`` of ``split_into_stages(model, P)`` is this rank's.
    """

    name = "hybrid"
    exact = True

    def __init__(self, grid: ProcessGrid, micro_batches: int = 4, on_error: str = "raise") -> None:
        super().__init__(on_error)
        self.grid = check_grid(grid, "HybridParallel")
        self.micro_batches = micro_batches

    def make_executor(self, model: Any, loss: Any) -> GridExecutor:
        """The executor this strategy brings to the Trainer: the grid's replicas."""
        if self.grid.kind == "tensor":
            wrong = sorted({layer.comm.size for _, layer in split_layers(model)} - {self.grid.model_size})
            if wrong:
                raise ValueError(f"hybrid parallel: the model's split layers use a communicator of "
                                 f"{wrong[0]} ranks, but the grid's tensor groups have {self.grid.model_size}; "
                                 "split the model over grid.tensor (tensor_parallel(model, grid.tensor))")
        return GridExecutor(self.grid, model, loss, self.micro_batches)

    def apply_update(self, optimizer: Any) -> None:
        """Every rank updates its part; pipeline stages then share their new parameters within the replica."""
        if getattr(optimizer, "max_grad_norm", None) is not None:
            raise ValueError("hybrid parallel: max_grad_norm clips by the norm of all gradients, but each rank "
                             "holds only its part of the model; train without it")
        optimizer.update()
        if self.grid.kind == "pipeline":
            self._share_stages()

    def _share_stages(self) -> None:
        comm = self.grid.pipeline
        for k, stage in enumerate(split_into_stages(self.model, self.grid.model_size)):
            params = [p for p in stage.params()]
            if not params:
                continue
            mine = np.concatenate([to_cpu(p.data).reshape(-1) for p in params]) if k == comm.rank else None
            flat = comm.broadcast(mine, root=k)
            if k != comm.rank:
                offset = 0
                for p in params:
                    xp = get_array_module(p.data)
                    p.data = xp.asarray(flat[offset:offset + p.data.size].reshape(p.data.shape), dtype=p.data.dtype)
                    offset += p.data.size

    def checkpoint_state(self, model: Any, optimizer: Any) -> tuple[Any, Any, bool]:
        """(whole model state, whole optimizer state, whether this rank writes): a collective call.

        Tensor grids gather the split layers (``full_state_dict``); pipeline
        ranks already hold the whole model. Global rank 0 writes.
        """
        if self.grid.kind == "tensor":
            state = full_state_dict(model)
            optimizer_state = full_optimizer_state(model, optimizer) if optimizer is not None else None
        else:
            state = model.state_dict()  # every stage's parameters are current on every rank
            optimizer_state = self._pipeline_optimizer_state(optimizer) if optimizer is not None else None
        return state, optimizer_state, self.grid.rank == 0

    def _pipeline_optimizer_state(self, optimizer: Any) -> dict[str, Any]:
        """The optimizer state of every stage's parameters, each sent by the stage that updates them."""
        comm = self.grid.pipeline
        state = dict(optimizer.state_dict())
        stage_of = {id(p): k for k, stage in enumerate(split_into_stages(self.model, self.grid.model_size))
                    for p in stage.params()}
        slots = tuple(getattr(optimizer, "slots", ())) + ("step",)
        for name, p in self.model.named_params():
            owner = stage_of[id(p)]
            for slot in slots:
                key = f"state.{name}.{slot}"
                present = comm.broadcast(np.array(key in state) if comm.rank == owner else None, root=owner)
                if not present:
                    state.pop(key, None)
                    continue
                value = comm.broadcast(np.asarray(state[key]) if comm.rank == owner else None, root=owner)
                state[key] = int(value) if slot == "step" else value
        return state


__all__ = ["HybridParallel", "GridExecutor"]
