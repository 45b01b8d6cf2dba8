"""Pipeline runtime: a model cut into stages, one thread per stage, running the GPipe schedule.

Data parallelism gives every worker a whole copy of the model and a slice of
the batch. Pipeline parallelism cuts the *model* instead: stage k owns a run
of consecutive layers (and only their parameters), and activations travel
forward from stage to stage while gradients travel back. That is how a model
too large for one device is trained on several.

A naive pipeline keeps only one stage busy at a time. The GPipe schedule cuts
the batch into M micro-batches so that, while stage 1 works on micro-batch 0,
stage 0 already works on micro-batch 1. For S stages (one tick per stage and
micro-batch, forward and backward alike)::

    tick     0  1  2  3  4  5  6  7  8  9
    stage 0  F0 F1 F2 F3 .. .. B3 B2 B1 B0
    stage 1  .. F0 F1 F2 F3 B3 B2 B1 B0 ..

Every stage is idle (``..``) for S-1 of its M+S-1 ticks in each direction:
the *bubble*, a fraction (S-1)/(M+S-1) of the step (``bubble_fraction``).

The result is exact, not an approximation. With micro-batch m of n_m of the
batch's N examples and L_m its mean loss, the batch's mean loss is
L = sum_m (n_m / N) L_m. The last stage starts the backward of micro-batch m
with the output gradient n_m / N instead of 1, and ``backward`` adds into
each parameter's ``grad``, so after all M backwards the parameters hold
dL/dp: the same gradient as one pass over the whole batch, up to rounding.
(Layers that look at the whole batch, such as batch normalisation, see each
micro-batch's statistics instead; that is the one exception.)

At a stage boundary the graph is cut on purpose: stage k+1 receives a plain
array and wraps it in a fresh leaf Variable x with ``requires_grad=True``; its
backward leaves dL/dx in ``x.grad``, which goes back to stage k as the output
gradient for ``output.backward(gy)``. Each stage thus walks only its own
graph, in its own thread.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any, Iterator, Sequence

import numpy as np

from tinyai.autograd import Variable, no_grad, test_mode
from tinyai.backend import get_array_module, is_array, using_rng
from tinyai.backend.settings import is_int
from tinyai.nn import Layer, Parameter
from tinyai.parallel.pipeline.messages import (
    Backward,
    BackwardDone,
    Forward,
    Infer,
    LossReady,
    Output,
    StageFailed,
    Stop,
    Targets,
)
from tinyai.parallel.sharding import shard_bounds

logger = logging.getLogger(__name__)

#: Where pipeline stages can run (data-parallel backends are ``tinyai.parallel.options.BACKENDS``).
PIPELINE_BACKENDS = ("thread",)


class PipelineStageError(RuntimeError):
    """A stage raised during a pipeline step; ``stage``, ``phase`` and ``micro_batch`` say where.

    ``phase`` is "forward", "loss", "backward" or "inference"; the stage's own
    exception is ``cause`` (and ``__cause__``, with its traceback).
    """

    def __init__(self, message: str, stage: int, phase: str, micro_batch: int, cause: BaseException) -> None:
        super().__init__(message)
        self.stage = stage
        self.phase = phase
        self.micro_batch = micro_batch
        self.cause = cause


def _as_array(value: Any, what: str) -> Any:
    if isinstance(value, Variable):
        return value.data
    if is_array(value):
        return value
    try:
        return np.asarray(value)
    except Exception as exc:  # a ragged list, an object NumPy cannot hold
        raise TypeError(f"PipelineParallel: {what} must be an array or a Variable, "
                        f"got {type(value).__name__}") from exc


class PipelineParallel:
    """Trains a model cut into stages, one worker thread per stage, on the GPipe schedule.

    Args:
        stages: the model's consecutive parts, a list of Layers or Blocks
            (``split_into_stages(block, n)`` makes one); stage k's output is
            stage k+1's input. Each must return a single Variable.
        micro_batches: M, the number of micro-batches a batch is cut into
            (fewer when the batch has fewer examples). Sizes differ by at most one.
        backend: "thread" (the only one: stages share one process's memory).
        timeout: seconds a step may wait for the stages before it gives up,
            stops them, and raises TimeoutError.
        seed: stage k draws its random numbers (dropout) from a stream seeded
            with (seed, k).

    ``step(x, y, loss)`` leaves on every parameter the gradient of the mean
    loss over the whole batch, as ``loss.backward()`` on the whole model
    would; the caller's optimizer then updates. The pipeline has
    ``named_params()``, so ``SGD(pipeline, lr)`` works too.

    Use it as a context manager, or call ``shutdown()``, so its threads end.

    >>> import numpy as np, tinyai as ta
    >>> from tinyai.nn import Linear, Tanh
    >>> from tinyai.losses import MeanSquaredLoss
    >>> with PipelineParallel([Linear(3, 4), Tanh(), Linear(4, 1)], micro_batches=2) as pipe:
    ...     value = pipe.step(np.ones((5, 3), np.float32), np.zeros((5, 1), np.float32), MeanSquaredLoss())
    ...     pipe.forward(np.ones((5, 3), np.float32)).shape
    (5, 1)
    """

    def __init__(self, stages: Sequence[Layer], micro_batches: int = 4, backend: str = "thread",
                 timeout: float = 300.0, seed: int = 0) -> None:
        if backend not in PIPELINE_BACKENDS:
            raise ValueError(f"PipelineParallel: unknown backend {backend!r}; choose one of {PIPELINE_BACKENDS}")
        if isinstance(stages, Layer) or not isinstance(stages, (list, tuple)) or not stages:
            raise TypeError(f"PipelineParallel: stages must be a non-empty list of Layers "
                            f"(see split_into_stages), got {type(stages).__name__}")
        for k, stage in enumerate(stages):
            if not isinstance(stage, Layer):
                raise TypeError(f"PipelineParallel: stage {k} is a {type(stage).__name__}, not a Layer")
        owner: dict[int, int] = {}
        for k, stage in enumerate(stages):
            for name, p in stage.named_params():
                if id(p) in owner and owner[id(p)] != k:
                    # Two threads would add into the same grad at once.
                    raise ValueError(f"PipelineParallel: parameter {name!r} of stage {k} is also in stage "
                                     f"{owner[id(p)]}; a parameter may belong to one stage only")
                owner[id(p)] = k
        if not is_int(micro_batches) or micro_batches < 1:
            raise ValueError(f"PipelineParallel: micro_batches must be an int >= 1, got {micro_batches!r}")
        if not timeout > 0:
            raise ValueError(f"PipelineParallel: timeout must be positive, got {timeout!r}")
        self.stages = list(stages)
        self.micro_batches = micro_batches
        self.backend = backend
        self.timeout = timeout
        #: (stage, "F" or "B", micro-batch, start s, end s) of the last step, times from its start.
        self.last_events: list[tuple[int, str, int, float, float]] = []
        self._inboxes: list[queue.Queue] = [queue.Queue() for _ in self.stages]
        self._results: queue.Queue = queue.Queue()
        self._abort = threading.Event()
        self._events: list[list[tuple]] = [[] for _ in self.stages]
        self._t0 = 0.0
        self._threads: list[threading.Thread] = []
        for k in range(len(self.stages)):
            thread = threading.Thread(target=self._worker, args=(k, seed), name=f"tinyai-pipeline-stage{k}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)

    # -- what the caller sees -----------------------------------------------------------
    @property
    def alive(self) -> bool:
        """True until ``shutdown()`` (or a failed step) has stopped the stage threads."""
        return bool(self._threads)

    @property
    def thread_ids(self) -> list[int | None]:
        """``threading.get_ident()`` of each stage's thread, in stage order."""
        return [t.ident for t in self._threads]

    def named_params(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """(name, Parameter) of every stage, named "stage<k>.<name within the stage>"."""
        for k, stage in enumerate(self.stages):
            yield from stage.named_params(f"{prefix}stage{k}.")

    def params(self) -> Iterator[Parameter]:
        for _, p in self.named_params():
            yield p

    def clear_grads(self) -> None:
        """Forget every stage's parameter gradients (``step`` adds to what is there)."""
        for stage in self.stages:
            stage.clear_grads()

    def step(self, x: Any, y: Any, loss: Any) -> float:
        """Forward and backward of one batch through the pipeline; returns the batch's mean loss.

        Args:
            x: inputs, shape (N, ...), the first stage's input.
            y: targets, shape (N, ...), given to the loss with the last stage's output.
            loss: a loss object (``loss.loss(target, prediction)``) or a
                function ``loss(prediction, target)``; it must return the
                *mean* over its examples as a one-element Variable.

        The gradients of the mean loss over all N examples are *added* to the
        parameters' ``grad`` (call ``clear_grads()`` first, as with
        ``backward``). If a stage raises, every thread is stopped and a
        PipelineStageError naming the stage is raised here; the gradients are
        then incomplete.
        """
        self._check_alive("step")
        x, y = _as_array(x, "x"), _as_array(y, "y")
        if x.ndim == 0 or y.ndim == 0 or len(x) != len(y):
            raise ValueError(f"PipelineParallel.step: x and y need the same number of examples, "
                             f"got shapes {tuple(x.shape)} and {tuple(y.shape)}")
        if len(x) == 0:
            raise ValueError("PipelineParallel.step: the batch is empty")
        bounds = shard_bounds(len(x), self.micro_batches)
        n = len(x)
        weights = [(b - a) / n for a, b in bounds]
        self._start_clock()
        # FIFO inboxes: the last stage has the targets before any activation of this step arrives.
        self._inboxes[-1].put(Targets([y[a:b] for a, b in bounds], weights, loss))
        for m, (a, b) in enumerate(bounds):
            self._inboxes[0].put(Forward(m, len(bounds), x[a:b]))
        replies = self._wait({LossReady: 1, BackwardDone: len(bounds)}, "step")
        self._stop_clock()
        return replies[LossReady][0].value

    def forward(self, x: Any) -> Variable:
        """Inference through the pipeline (no graph, test mode), micro-batch by micro-batch.

        Returns a Variable without gradient holding the outputs of all N
        examples, in order.
        """
        self._check_alive("forward")
        x = _as_array(x, "x")
        if x.ndim == 0 or len(x) == 0:
            raise ValueError(f"PipelineParallel.forward: x needs a batch axis with examples, got shape "
                             f"{tuple(x.shape)}")
        bounds = shard_bounds(len(x), self.micro_batches)
        self._start_clock()
        for m, (a, b) in enumerate(bounds):
            self._inboxes[0].put(Infer(m, x[a:b]))
        replies = self._wait({Output: len(bounds)}, "forward")
        self._stop_clock()
        outputs = [reply.data for reply in sorted(replies[Output], key=lambda reply: reply.micro_batch)]
        xp = get_array_module(outputs[0])
        return Variable(xp.concatenate(outputs, axis=0), requires_grad=False)

    __call__ = forward

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop and join the stage threads. Safe to call more than once."""
        if not self._threads:
            return
        self._abort.set()  # drop any work still queued
        for inbox in self._inboxes:
            inbox.put(Stop())
        for thread in self._threads:
            thread.join(timeout)
            if thread.is_alive():  # a stage stuck in user code; it is a daemon and dies with the process
                logger.warning("pipeline: %s did not stop within %.1f s", thread.name, timeout)
        self._threads = []

    def __enter__(self) -> "PipelineParallel":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        sizes = ", ".join(f"{stage.num_params():,}" for stage in self.stages)
        state = "running" if self.alive else "shut down"
        return (f"PipelineParallel({len(self.stages)} stages with {sizes} params, "
                f"micro_batches={self.micro_batches}, {state})")

    # -- the caller's side of the queues ----------------------------------------------------
    def _check_alive(self, what: str) -> None:
        if not self._threads:
            raise RuntimeError(f"PipelineParallel.{what}: the pipeline has been shut down")

    def _start_clock(self) -> None:
        # Stages are idle between calls, so resetting their logs here is race-free.
        self._events = [[] for _ in self.stages]
        self._t0 = time.perf_counter()

    def _stop_clock(self) -> None:
        events = [(k, phase, m, a - self._t0, b - self._t0)
                  for k, log in enumerate(self._events) for phase, m, a, b in log]
        self.last_events = sorted(events, key=lambda e: e[3])

    def _wait(self, expected: dict[type, int], what: str) -> dict[type, list]:
        """Collect the replies (by message type) the stages owe this call, or stop everything and raise."""
        replies: dict[type, list] = {kind: [] for kind in expected}
        deadline = time.monotonic() + self.timeout
        while any(len(replies[kind]) < count for kind, count in expected.items()):
            remaining = deadline - time.monotonic()
            try:
                # A blocking get wakes as soon as a reply arrives; the timeout only bounds the wait.
                message = self._results.get(timeout=max(0.0, min(remaining, 1.0)))
            except queue.Empty:
                dead = [k for k, t in enumerate(self._threads) if not t.is_alive()]
                if dead or remaining <= 0:
                    self.shutdown()
                    reason = f"stage thread(s) {dead} ended" if dead else f"no reply within {self.timeout} s"
                    raise TimeoutError(f"PipelineParallel.{what}: {reason}; the pipeline has been shut down")
                continue
            if isinstance(message, StageFailed):
                k, phase, m, exc = message.stage, message.phase, message.micro_batch, message.error
                self.shutdown()
                raise PipelineStageError(
                    f"pipeline: stage {k} ({self.stages[k]._label()}) failed in the {phase} of "
                    f"micro-batch {m}: {type(exc).__name__}: {exc}", k, phase, m, exc) from exc
            replies[type(message)].append(message)
        return replies

    # -- a stage's thread -------------------------------------------------------------------
    def _worker(self, k: int, seed: int) -> None:
        """Stage k's loop: take a message, do its part, pass the result on."""
        last = k == len(self.stages) - 1
        saved: dict[int, tuple[Variable | None, Variable]] = {}  # micro-batch -> (input leaf, output or loss)
        targets: list = []
        weights: list[float] = []
        loss_fn: Any = None
        losses: list[float] = []
        with using_rng(np.random.default_rng([seed, k])):
            while True:
                message = self._inboxes[k].get()
                if isinstance(message, Stop):
                    return
                if self._abort.is_set():
                    continue  # a stage failed: drain until told to stop
                phase, m = "forward", -1  # what the error report says, refined below
                try:
                    if isinstance(message, Targets):
                        targets, weights, loss_fn = message.targets, message.weights, message.loss
                        losses = [0.0] * len(targets)
                        saved.clear()
                    elif isinstance(message, Forward):
                        m, count = message.micro_batch, message.count
                        start = time.perf_counter()
                        x = Variable(message.data, requires_grad=k > 0)
                        out = self._run_stage(k, x)
                        if last:
                            phase = "loss"
                            out = self._compute_loss(loss_fn, targets[m], out)
                            losses[m] = float(out.data.reshape(-1)[0])
                        self._events[k].append(("F", m, start, time.perf_counter()))
                        saved[m] = (x, out)
                        if not last:
                            self._inboxes[k + 1].put(Forward(m, count, out.data))
                        elif len(saved) == count:
                            # The flush: every forward is done, the backwards begin, last micro-batch first.
                            self._results.put(LossReady(sum(w * v for w, v in zip(weights, losses))))
                            for m in reversed(range(count)):
                                phase = "backward"
                                xp = get_array_module(out.data)
                                self._backward(k, m, saved, xp.full_like(saved[m][1].data, weights[m]))
                    elif isinstance(message, Backward):
                        phase, m = "backward", message.micro_batch
                        self._backward(k, m, saved, message.grad)
                    elif isinstance(message, Infer):
                        phase, m = "inference", message.micro_batch
                        with no_grad(), test_mode():
                            out = self._run_stage(k, Variable(message.data, requires_grad=False))
                        if last:
                            self._results.put(Output(m, out.data))
                        else:
                            self._inboxes[k + 1].put(Infer(m, out.data))
                    else:
                        raise TypeError(f"pipeline: stage {k} got an unknown message {message!r}")
                except BaseException as exc:  # reported to the caller, who re-raises it
                    self._abort.set()
                    self._results.put(StageFailed(k, phase, m, exc))

    def _run_stage(self, k: int, x: Variable) -> Variable:
        out = self.stages[k](x)
        if not isinstance(out, Variable):
            raise TypeError(f"stage {k} must return one Variable, got {type(out).__name__}")
        return out

    @staticmethod
    def _compute_loss(loss_fn: Any, target: Any, prediction: Variable) -> Variable:
        target = Variable(target, requires_grad=False)
        value = loss_fn.loss(target, prediction) if hasattr(loss_fn, "loss") else loss_fn(prediction, target)
        if not isinstance(value, Variable) or value.data.size != 1:
            shape = tuple(value.shape) if isinstance(value, Variable) else type(value).__name__
            raise ValueError(f"the loss must return a one-element Variable (the mean over the "
                             f"micro-batch), got {shape}")
        return value

    def _backward(self, k: int, m: int, saved: dict, gy: Any) -> None:
        """Backward of micro-batch m through stage k; hands dL/d(input) to stage k-1."""
        start = time.perf_counter()
        x, out = saved.pop(m)
        out.backward(gy)
        if k > 0:
            gx = x.grad.data if x.grad is not None else get_array_module(x.data).zeros_like(x.data)
        self._events[k].append(("B", m, start, time.perf_counter()))
        if k > 0:
            self._inboxes[k - 1].put(Backward(m, gx))
        else:
            self._results.put(BackwardDone(m))
