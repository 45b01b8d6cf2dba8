"""The Trainer: the loop that turns data, a model, a loss and an optimizer into a trained model.

One training step (TinyAI's ``singleThreadTrain``):

    prediction = model(x)                 forward: builds the graph
    loss = loss_fn.loss(y, prediction)    a scalar Variable
    model.clear_grads()                   gradients of the last step are gone
    loss.backward()                       d loss / d parameter in every p.grad
    optimizer.update()                    p <- p - lr * p.grad (or Adam's rule, ...)
    loss.unchain_backward()               free the graph now, and cut a recurrent
                                          state's link to the previous batches

Each epoch starts with ``model.reset_state()`` (a recurrent model forgets the
last epoch's hidden state), and ends with the evaluator run on the test split.
The Monitor collects the numbers; ``train()`` returns its history.

>>> # with Trainer(max_epoch=10, evaluator=AccuracyEval()) as trainer:
>>> #     trainer.init(dataset, model, loss, optimizer)
>>> #     history = trainer.train()
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from typing import Any, TextIO

from tinyai.autograd import Variable
from tinyai.backend import Device, as_device, get_state
from tinyai.backend.settings import bool_setting, int_setting
from tinyai.parallel.executor.base import WorkerError
from tinyai.parallel.options import ParallelOptions
from tinyai.training.checkpoint import load_checkpoint, save_checkpoint
from tinyai.training.checkpoint_restore import restore_checkpoint
from tinyai.training.evaluator import Evaluator, batch_variables
from tinyai.training.monitor import Monitor
from tinyai.training.nan_guard import NonFiniteLossError, check_on_nan, check_step  # noqa: F401 (NonFiniteLossError: its old home)
from tinyai.training.parallel_training import ParallelTraining, check_thread_count
from tinyai.training.placement import device_scope, place_on_device
from tinyai.training.precision import PRECISIONS, MixedPrecision
from tinyai.training.progress import TrainingProgress, resolve_mode
from tinyai.training.setup_checks import check_optimizer_matches, check_trainer_settings

logger = logging.getLogger(__name__)


def _with_context(error: Exception, context: str) -> Exception:
    """The same kind of error with ``context`` (epoch, batch) in front of its message."""
    if type(error) in (ValueError, TypeError):
        return type(error)(f"{context}: {error}")
    if hasattr(error, "add_note"):  # Python 3.11+: keep the error's own type
        error.add_note(context)
        return error
    return RuntimeError(f"{context}: {type(error).__name__}: {error}")


class Trainer:
    """Trains a model for ``max_epoch`` epochs (TinyAI's ``Trainer``).

    Args:
        max_epoch: number of epochs ``train()`` runs (counting epochs already
            done when resuming from a checkpoint).
        monitor: the ``Monitor`` that collects per-epoch history; a new one if None.
        evaluator: an ``Evaluator`` run on the test split after each epoch
            (every ``eval_every`` epochs); its model and data set default to
            the ones given to ``init``. None: no evaluation.
        enable_parallel: synchronous data-parallel training: each batch is split
            over ``thread_count`` workers, their gradients are averaged, and
            the optimizer updates once; the result equals single-thread
            training on the same batches (see ``tinyai.parallel``).
        thread_count: workers for data-parallel training (0: one per core;
            at most one per sample of the largest batch).
        progress: True (a tqdm bar per epoch where the output is a terminal
            or a notebook, else one line per epoch), False (one line per
            epoch), None (silent), or "auto"/"bar"/"line"/"off" ("bar" draws
            the bar on any stream, a log file too).
        on_nan: what a NaN or infinite loss, or a finite loss with NaN or
            infinite gradients, does (checked before every update, see
            ``tinyai.training.nan_guard``): "raise" (stop with
            ``NonFiniteLossError``, or its subclass ``NonFiniteGradientError``,
            naming epoch, batch, and the parameters and input at fault),
            "warn" (warn and skip that batch's update) or "skip" (skip it
            quietly). A skipped update leaves the model unchanged.
        eval_every: run the evaluator every this many epochs, and always after
            the last one; 0 runs it only when ``evaluate()`` is called.
        checkpoint_path: if given, a checkpoint is written there after each epoch.
        stream: where the progress display writes (stdout by default).
        parallel_backend: "auto" (time single-thread, threads and processes
            on the first batch and keep the fastest), "thread", "process", or
            "mpi" (the script runs in every rank of ``mpiexec -n K``; each
            batch is split over the K ranks, only rank 0 shows progress and
            writes checkpoints, every rank evaluates its identical model).
        on_error: in data-parallel training, what a shard that raises does:
            "raise" (stop, after releasing the workers, with an error naming
            epoch, batch and worker) or "skip" (average the other shards;
            the epoch's ``skipped_shards`` counts them).
        accumulate_steps: average the gradients of this many consecutive
            batches (weighted by their sizes) before each optimizer update.
        step_timeout: in data-parallel training, seconds one step may take
            before a worker still busy is reported as hung (``WorkerError``);
            None waits for ever.
        device: where to train: "cpu", "gpu" or "gpu:N". ``init`` moves the
            model (parameters, buffers) and the optimizer's state there, and
            every batch is copied there; checkpoints still hold host arrays.
            None (the default) leaves the model where it is.
        precision: "float32", or "mixed": float16 forward and backward with
            float32 master weights and dynamic loss scaling (see
            ``tinyai.training.precision.MixedPrecision``); a step whose
            gradients overflow is skipped and the scale halved, which is not
            a non-finite loss.
        compression: in data-parallel training, how the workers' gradients
            travel: None (dense), "fp16", "int8", "topk" (top 1% with error
            feedback), "signsgd" (scaled sign with error feedback) or a
            ``tinyai.parallel.compression.Compressor``. The workers exchange
            the compressed bytes (gradients; parameter-server pushes; local
            SGD's parameter deltas); training then no longer equals
            single-thread training exactly. See ``parallel_stats()``.
        allreduce_algorithm: "direct" (the executor adds the workers'
            gradients) or "ring" (the workers add them among themselves by
            ring all-reduce, 2 (N - 1) / N of the gradient bytes each).
        parallel_strategy: "allreduce" (synchronous data parallelism),
            "parameter_server" (with ``ps_mode`` "sync", "async" or "stale",
            ``staleness`` for "stale", ``num_servers``) or "local_sgd" (with
            ``sync_every``). See docs/beyond-sync.md and
            ``tinyai.parallel.strategy``.
        strategy: a strategy that brings its own ranks, such as
            ``tinyai.parallel.HybridParallel(grid)`` (data x tensor or data x
            pipeline parallelism; every rank of the grid runs this Trainer).
            Implies parallel training; only data-parallel rank 0 of each
            model group prints, and global rank 0 writes checkpoints.
        dataset, model, loss, optimizer: given together, ``init`` is done
            here, so ``Trainer(5, dataset=..., model=..., loss=..., optimizer=...).train()``
            is one line; left out, call ``init`` yourself (TinyAI's way).
    """

    def __init__(self, max_epoch: int, monitor: Monitor | None = None, evaluator: Evaluator | None = None,
                 enable_parallel: bool = False, thread_count: int = 0, *, progress: bool | str | None = True,
                 on_nan: str = "raise", eval_every: int = 1, checkpoint_path: str | os.PathLike | None = None,
                 stream: TextIO | None = None, parallel_backend: str = "auto", on_error: str = "raise",
                 accumulate_steps: int = 1, step_timeout: float | None = None, dataset: Any = None,
                 model: Any = None, loss: Any = None, optimizer: Any = None,
                 device: str | Device | None = None, precision: str = "float32", compression: Any = None,
                 allreduce_algorithm: str = "direct", strategy: Any = None,
                 parallel_strategy: str = "allreduce", ps_mode: str = "sync", staleness: int | None = None,
                 num_servers: int = 1, sync_every: int = 1) -> None:
        max_epoch = int_setting(max_epoch, "Trainer", "max_epoch", minimum=0)
        check_on_nan(on_nan, "Trainer")
        check_trainer_settings(checkpoint_path, enable_parallel, monitor, evaluator, stream)
        accumulate_steps = int_setting(accumulate_steps, "Trainer", "accumulate_steps")
        eval_every = int_setting(eval_every, "Trainer", "eval_every", minimum=0)
        if precision not in PRECISIONS:
            raise ValueError(f"Trainer: precision must be one of {PRECISIONS}, got {precision!r}")
        if precision == "mixed" and enable_parallel:
            raise ValueError("Trainer: precision='mixed' is not available with enable_parallel=True yet; "
                             "train mixed precision on one worker")
        #: Where training runs (None: wherever the model is).
        self.device = None if device is None else as_device(device)
        self.precision = precision
        #: The loss scaler of precision="mixed" (created by init), else None.
        self.mixed_precision: MixedPrecision | None = None
        self.max_epoch = max_epoch
        self.monitor = monitor if monitor is not None else Monitor()
        self.evaluator = evaluator
        self._parallel = ParallelTraining(enable_parallel or strategy is not None, ParallelOptions(
            parallel_backend, check_thread_count(thread_count, "Trainer"), on_error, step_timeout,
            compression, allreduce_algorithm, parallel_strategy, ps_mode, staleness, num_servers, sync_every),
            strategy=strategy)
        if accumulate_steps > 1 and (parallel_strategy == "local_sgd" or (
                parallel_strategy == "parameter_server" and ps_mode != "sync")):
            raise ValueError(f"Trainer: accumulate_steps={accumulate_steps} cannot be combined with "
                             f"parallel_strategy={parallel_strategy!r}, ps_mode={ps_mode!r}: its workers update "
                             "on their own, without the Trainer's accumulated gradient")
        self.accumulate_steps = accumulate_steps
        self._accumulated: dict[str, Any] = {}
        self._skipped_shards = 0
        self._failed_batches = 0
        self.progress = resolve_mode(progress)
        self.on_nan = on_nan
        self.eval_every = eval_every
        self.checkpoint_path = checkpoint_path
        self.stream = stream
        #: Epochs completed so far; ``train()`` continues from here.
        self.epoch = 0
        self.dataset: Any = None
        self.train_set: Any = None
        self.model: Any = None
        self.loss: Any = None
        self.optimizer: Any = None
        self._progress_bar: TrainingProgress | None = None
        parts = {"dataset": dataset, "model": model, "loss": loss, "optimizer": optimizer}
        missing = [name for name, value in parts.items() if value is None]
        if len(missing) < len(parts):
            if missing:
                raise TypeError(f"Trainer: dataset=, model=, loss= and optimizer= go together "
                                f"(init is done for you); missing {', '.join(missing)}")
            self.init(dataset, model, loss, optimizer)

    # -- set-up ------------------------------------------------------------------
    def init(self, dataset: Any, model: Any, loss: Any, optimizer: Any) -> "Trainer":
        """Attach the data set (prepared here), model, loss and optimizer. Returns self.

        ``dataset`` is a ``DataSet`` with a train/test split; a data set without
        ``get_train_dataset`` is trained on whole.
        """
        for name, value, needed in (("model", model, "__call__"), ("loss", loss, "loss"),
                                    ("optimizer", optimizer, "update")):
            if not hasattr(value, needed):
                raise TypeError(f"Trainer.init: {name} of type {type(value).__name__} has no {needed}()")
        check_optimizer_matches(model, optimizer)
        if hasattr(dataset, "prepare"):
            dataset.prepare()
        self.dataset = dataset
        self.train_set = dataset.get_train_dataset() if hasattr(dataset, "get_train_dataset") else dataset
        if self.train_set is None or not hasattr(self.train_set, "get_batches"):
            raise TypeError(f"Trainer.init: {type(dataset).__name__} does not provide training batches "
                            "(need get_train_dataset() or get_batches())")
        if self.device is not None:
            place_on_device(model, optimizer, self.device)
        self.model, self.loss, self.optimizer = model, loss, optimizer
        if self.precision == "mixed":
            self.mixed_precision = MixedPrecision(model, optimizer)
        if self.evaluator is not None:
            self.evaluator.bind(model, dataset, loss)
        self._parallel.start(model, loss, self.train_set)
        return self

    # -- data parallel (TinyAI's configureParallelTraining and friends) ---------------
    @property
    def enable_parallel(self) -> bool:
        """Whether data-parallel training is asked for (see ``is_parallel_training_enabled``)."""
        return self._parallel.enabled

    @property
    def thread_count(self) -> int:
        """The configured number of workers (0: automatic)."""
        return self._parallel.thread_count

    def configure_parallel_training(self, enable: bool, thread_count: int = 0, backend: str = "auto",
                                    **options: Any) -> None:
        """Turn data-parallel training on or off, at any time.

        Running workers are shut down first. With a model attached, it is
        checked again and the new workers start; a model that cannot be
        replicated falls back to single-thread training with a logged warning.
        ``options`` are the Trainer's other data-parallel keywords
        (``compression=``, ``allreduce_algorithm=``, ``on_error=``,
        ``step_timeout=``, ...); the ones not given keep their values.
        """
        self._parallel.configure(enable, thread_count, backend, **options)
        if self.model is not None:
            self._parallel.start(self.model, self.loss, self.train_set)

    def is_parallel_training_enabled(self) -> bool:
        """True when training is enabled to run data-parallel and its workers are alive."""
        return self._parallel.enabled and self._parallel.active

    def get_parallel_thread_count(self) -> int:
        """The number of workers each step is split over (1: single-thread)."""
        return self._parallel.workers if self.is_parallel_training_enabled() else 1

    def parallel_stats(self) -> dict[str, Any]:
        """What data-parallel training exchanged and did since ``init`` (or the last configure).

        Keys: ``bytes_sent`` (gradient bytes between workers as encoded, all
        workers together, by the exchange's wire model: see
        ``tinyai.parallel.stats``), ``bytes_dense`` (the same exchanges in
        float32), ``compression_ratio`` (dense / sent), ``updates``
        (optimizer updates), ``exchanges``, ``wait_time_s`` and
        ``staleness_histogram`` (asynchronous strategies).
        """
        return self._parallel.stats.as_dict()

    def _require_init(self, what: str) -> None:
        if self.model is None:
            raise ValueError(f"Trainer.{what}: call init(dataset, model, loss, optimizer) first")

    # -- training ----------------------------------------------------------------
    def train(self, shuffle: bool = True) -> dict[str, list]:
        """Train from epoch ``self.epoch`` up to ``max_epoch``; return the Monitor's history.

        Args:
            shuffle: draw a new sample order (from ``tinyai.backend.get_rng()``)
                at the start of each epoch. (TinyAI shuffles once, before the
                first epoch; a fresh order per epoch is the usual practice and
                keeps a resumed run identical to an uninterrupted one.)

        Returns:
            ``{"loss": [...], "train_accuracy": [...], "test_accuracy": [...],
            "test_loss": [...], "time": [...]}``: one entry per epoch
            (``None`` where a metric was not measured).
        """
        self._require_init("train")
        shuffle = bool_setting(shuffle, "Trainer.train", "shuffle")
        self._parallel.check_open("Trainer.train")
        try:
            with device_scope(self.model):  # new arrays and kernels on the model's GPU
                self._train_epochs(shuffle)
        except BaseException as error:
            # A failed shard, a dead worker, Ctrl-C: release every worker before the error travels on.
            self._parallel.stop_after_failure(error)
            raise
        return self.monitor.history

    def _train_epochs(self, shuffle: bool) -> None:
        # One display for the whole call: a bar restarted per epoch, one summary line per epoch.
        display = TrainingProgress(self.progress if self._parallel.is_root else "off", self.max_epoch, self.stream)
        self._progress_bar = display
        try:
            while self.epoch < self.max_epoch:
                self._train_epoch(self.epoch, shuffle, display)
                self.epoch += 1
                if self.checkpoint_path is not None:
                    self.save_checkpoint(self.checkpoint_path)
        finally:
            display.close()
            self._progress_bar = None

    def _train_epoch(self, epoch: int, shuffle: bool, display: TrainingProgress) -> None:
        model, monitor = self.model, self.monitor
        if shuffle and hasattr(self.train_set, "shuffle"):
            self.train_set.shuffle()
        batches = self.train_set.get_batches()
        if not batches:
            raise ValueError(f"Trainer.train: the training set of {type(self.dataset).__name__} has no batches")
        if hasattr(model, "train"):
            model.train()
        model.reset_state()
        monitor.start_new_epoch(epoch)
        self._group_sizes = self._accumulation_groups([batch.size for batch in batches])
        self._accumulated.clear()
        self._skipped_shards = 0
        self._failed_batches = 0
        started = time.perf_counter()
        display.start_epoch(epoch + 1, len(batches))
        score = self.evaluator.batch_score if self.evaluator is not None else None
        metric_name = self.evaluator.train_metric if self.evaluator is not None else None
        loss_sum = 0.0
        loss_count = 0
        metric_sum = 0.0
        metric_count = 0
        try:
            if self._parallel.owns_epoch:  # asynchronous workers take whole batches of their own
                steps: Any = [(value, None, None) for value in self._parallel.train_epoch(batches, self.optimizer)]
            else:
                steps = (self._step(epoch, index, len(batches), batch) for index, batch in enumerate(batches))
            for batch, (value, prediction, target) in zip(batches, steps):
                if value is None:
                    continue
                loss_sum += value
                loss_count += 1
                if metric_name is not None and prediction is not None:
                    result = score(prediction.data, target.data)
                    if result is not None:
                        metric_sum += result[0]
                        metric_count += result[1]
                display.update(batch.size, value)
            if self._parallel.running:
                self._parallel.end_epoch(self.optimizer)
        except BaseException:
            display.abort()
            raise
        monitor.collect("loss", loss_sum / loss_count if loss_count else math.nan)
        if self._parallel.running:
            monitor.collect("skipped_shards", self._skipped_shards)
        if metric_name is not None and metric_count:
            monitor.collect(metric_name, metric_sum / metric_count)
        last = epoch + 1 == self.max_epoch
        if self.evaluator is not None and self.eval_every and ((epoch + 1) % self.eval_every == 0 or last):
            for name, value in self.evaluator.evaluate().items():
                monitor.collect(name, value)
        monitor.end_epoch()
        shown = {name: values[-1] for name, values in monitor.history.items() if name != "time"}
        display.end_epoch(shown)
        if self._parallel.running:
            stats = self._parallel.stats_line(loss_count - self._failed_batches, len(batches),
                                              loss_sum / loss_count if loss_count else math.nan,
                                              (time.perf_counter() - started) * 1e3)
            logger.info("%s", stats)
            display.note(stats)

    def _step(self, epoch: int, index: int, count: int, batch: Any) -> tuple[float | None, Any, Any]:
        """One forward/backward/update on ``batch``; (loss value, prediction, target),
        or (None, None, None) when a non-finite loss was skipped."""
        where = f"Trainer: epoch {epoch + 1}/{self.max_epoch}, batch {index + 1}/{count}"
        if self._parallel.running:
            value, prediction, target = self._parallel_gradients(where, batch)
        else:
            value, prediction, target = self._gradients(where, batch)
        mixed = self.mixed_precision
        if mixed is not None and math.isfinite(value) and not mixed.grads_are_finite():
            # The loss scale was too large for float16: the scaler halves it and
            # this step is skipped. Expected now and then; not a diverging run.
            mixed.update_scale(False)
            self.model.clear_grads()
            self._update(index, batch.size, apply=False)
            return value, prediction, target
        if not check_step(where, value, self.model.named_params(), batch.x, self.on_nan, batch.y):
            self.model.clear_grads()
            self._update(index, batch.size, apply=False)  # an accumulation group still ends here
            return None, None, None
        self._update(index, batch.size)
        return value, prediction, target

    def _gradients(self, where: str, batch: Any) -> tuple[float, Any, Any]:
        """Single-thread: forward, loss, and (for a finite loss) backward into p.grad."""
        x, y = batch_variables(self.model, batch)
        mixed = self.mixed_precision
        with mixed.autocast() if mixed else contextlib.nullcontext():
            try:
                if mixed:  # float16 model, float32 loss
                    prediction = self.model(mixed.cast_input(x))
                    loss = self.loss.loss(y, mixed.to_float32(prediction))
                else:
                    prediction = self.model(x)
                    loss = self.loss.loss(y, prediction)
            except (ValueError, TypeError) as error:
                shapes = f"(batch x shape {tuple(batch.x.shape)}, y shape {tuple(batch.y.shape)})"
                raise _with_context(error, f"{where} {shapes}") from error
            value = float(loss.item())
            if math.isfinite(value):
                self.model.clear_grads()
                mixed.backward(loss) if mixed else loss.backward()
            loss.unchain_backward()
        return value, prediction, y

    def _parallel_gradients(self, where: str, batch: Any) -> tuple[float, Any, Any]:
        """Data-parallel: the workers' averaged gradient lands in p.grad."""
        try:
            outcome = self._parallel.step(batch.x, batch.y)
        except WorkerError as error:
            raise WorkerError(f"{where}: {error}", error.worker_id, error.cause) from error
        self._skipped_shards += outcome.failed_shards
        self._failed_batches += outcome.failed_shards > 0
        prediction = None if outcome.prediction is None else Variable(outcome.prediction, requires_grad=False)
        _, target = batch_variables(self.model, batch)  # on the model's device, like the prediction
        return outcome.loss, prediction, target

    def _accumulation_groups(self, sizes: list[int]) -> list[int]:
        """For each batch, the number of examples in its accumulation group."""
        steps, totals = self.accumulate_steps, []
        for start in range(0, len(sizes), steps):
            group = sizes[start:start + steps]
            totals.extend([sum(group)] * len(group))
        return totals

    def _update(self, index: int, size: int, apply: bool = True) -> None:
        """Update the parameters, or add this batch's share to the accumulated gradient
        (``apply=False``: a skipped batch adds nothing)."""
        steps = self.accumulate_steps
        if steps == 1:
            if apply:
                self._apply_update()
            return
        share = size / self._group_sizes[index]
        for name, p in self.model.named_params():
            if apply and p.grad is not None:
                previous = self._accumulated.get(name)
                part = p.grad.data * share
                self._accumulated[name] = part if previous is None else previous + part
        if (index + 1) % steps == 0 or index + 1 == len(self._group_sizes):
            if not self._accumulated:
                return  # every batch of the group was skipped
            for name, p in self.model.named_params():
                total = self._accumulated.get(name)
                p.grad = None if total is None else Variable(total, requires_grad=False)
            self._apply_update()
            self._accumulated.clear()

    def _apply_update(self) -> None:
        """One optimizer update: the strategy's in data-parallel training, the loss
        scaler's under mixed precision (which may skip it), else the optimizer's."""
        if self._parallel.running:
            self._parallel.apply_update(self.optimizer)
        elif self.mixed_precision is not None:
            # _step has checked these gradients (every batch of an accumulation group): finite.
            self.mixed_precision.update_scale(True)
            self.optimizer.update()
        else:
            self.optimizer.update()

    def evaluate(self) -> dict[str, float]:
        """Run the evaluator on the test split now and return its metrics
        (e.g. ``{"test_accuracy": 0.95}``)."""
        self._require_init("evaluate")
        if self.evaluator is None:
            raise ValueError("Trainer.evaluate: no evaluator (pass evaluator=AccuracyEval() or RegressEval(loss))")
        with device_scope(self.model):
            return self.evaluator.evaluate()

    # -- checkpoints -------------------------------------------------------------
    def save_checkpoint(self, path: str | os.PathLike, extra: dict | None = None) -> None:
        """Write model weights, optimizer state, epochs done, random state and history to ``path`` (atomically).

        In SPMD training (MPI, ``HybridParallel``) every rank calls it and one
        rank writes; a hybrid model is saved whole (its parts gathered).
        """
        self._require_init("save_checkpoint")
        if self.mixed_precision is not None:
            extra = {**(extra or {}), "mixed_precision": self.mixed_precision.state_dict()}
        # With a hybrid strategy every rank gathers its part and rank 0 writes; else the root writes.
        model, optimizer, writes = self._parallel.checkpoint_parts(self.model, self.optimizer)
        if writes:
            save_checkpoint(path, model, optimizer, epoch=self.epoch, monitor=self.monitor,
                            rng_state=get_state(), extra=extra)

    def load_checkpoint(self, path: str | os.PathLike) -> "Trainer":
        """Restore a checkpoint into the attached model and optimizer; ``train()``
        then continues with the next epoch. Returns self.

        All or nothing: the model weights, the optimizer state and the
        history are all checked against this Trainer before any of them
        changes (see ``tinyai.training.checkpoint_restore``).
        """
        self._require_init("load_checkpoint")
        checkpoint = load_checkpoint(path)
        if checkpoint.epoch > self.max_epoch:
            raise ValueError(f"Trainer.load_checkpoint: {os.fspath(path)!r} has {checkpoint.epoch} epochs done, "
                             f"more than max_epoch={self.max_epoch}")
        restore_checkpoint(checkpoint, self.model, self.optimizer, self.monitor,
                          f"Trainer.load_checkpoint: {os.fspath(path)!r}")
        if self.mixed_precision is not None and "mixed_precision" in checkpoint.extra:
            self.mixed_precision.load_state_dict(checkpoint.extra["mixed_precision"])
        self.epoch = checkpoint.epoch
        return self

    @classmethod
    def resume(cls, path: str | os.PathLike, *, dataset: Any, model: Any, loss: Any, optimizer: Any,
               max_epoch: int, **kwargs: Any) -> "Trainer":
        """A Trainer set up with ``init(dataset, model, loss, optimizer)`` and the
        checkpoint at ``path`` loaded; ``kwargs`` go to the constructor."""
        trainer = cls(max_epoch, **kwargs)
        trainer.init(dataset, model, loss, optimizer)
        return trainer.load_checkpoint(path)

    # -- resources ---------------------------------------------------------------
    def shutdown(self, timeout: float = 30) -> None:
        """Release what the Trainer holds: data-parallel workers (waiting up to
        ``timeout`` seconds for running work, then abandoning a hung thread or
        killing a process: it returns within about ``timeout`` + 1 s) and an
        open progress bar. Safe to call twice, and from another thread while
        ``train()`` runs (that step then raises ``WorkerError``); also run by
        ``with Trainer(...)``. A data-parallel Trainer is closed afterwards:
        ``train()`` raises until ``configure_parallel_training`` starts new workers."""
        self._parallel.shutdown(timeout)
        if self._progress_bar is not None:
            self._progress_bar.abort()
            self._progress_bar = None

    def __enter__(self) -> "Trainer":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        return (f"Trainer(max_epoch={self.max_epoch}, epoch={self.epoch}, progress={self.progress!r}, "
                f"evaluator={type(self.evaluator).__name__ if self.evaluator else None})")
