"""Evaluators: how good is the model on data it did not train on?

An evaluator runs the model over the test split of a data set, in test mode
(dropout off, batch norm on its running statistics) and without recording a
graph, and returns its metrics as a dict, e.g. ``{"test_accuracy": 0.93}``.
The Trainer calls it after each epoch and hands the dict to the Monitor.

TinyAI's ``AccuracyEval(classify, model, dataSet)`` averages the per-batch
accuracy rates, which over-weights a short last batch; here the correct
predictions are counted over all samples, so the result is the exact
fraction. TinyAI's evaluators print their result; these return it.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

from tinyai.autograd import Variable, no_grad, test_mode
from tinyai.backend import device_of, get_array_module
from tinyai.training.placement import device_scope, model_device


@contextlib.contextmanager
def evaluation(model: Any) -> Iterator[None]:
    """Inside the block: no graph, test mode, and ``model.eval()``; afterwards
    the model's previous train/eval state comes back.

    A recurrent model's state is reset before and after, so the test sequence
    neither starts from the training state nor leaks into training.
    """
    was_training = getattr(model, "training", True)
    if hasattr(model, "eval"):
        model.eval()
    if hasattr(model, "reset_state"):
        model.reset_state()
    try:
        with no_grad(), test_mode(), device_scope(model):
            yield
    finally:
        if hasattr(model, "reset_state"):
            model.reset_state()
        if was_training and hasattr(model, "train"):
            model.train()


def batch_variables(model: Any, batch: Any) -> tuple[Variable, Variable]:
    """The batch's inputs and targets as Variables on the model's device.

    Data sets hold NumPy arrays; when the model's parameters live on another
    device (``model.to_gpu()``, ``Trainer(device="gpu")``), the batch is
    copied there first.
    """
    x, y = batch.to_variable_x(), batch.to_variable_y()
    device = model_device(model)
    if device != device_of(x.data):
        x = Variable(device.put(x.data), requires_grad=False)
    if device != device_of(y.data):
        y = Variable(device.put(y.data), requires_grad=False)
    return x, y


def _as_array(value: Any) -> Any:
    return value.data if isinstance(value, Variable) else value


def count_correct(prediction: Any, target: Any) -> int:
    """How many rows of ``prediction`` pick the right class.

    Args:
        prediction: scores of shape (N, C) (logits or probabilities; the
            largest wins), or (N,) / (N, 1) probabilities of class 1 for a
            binary problem (threshold 0.5).
        target: class indices of shape (N,) or (N, 1), or one-hot rows (N, C).

    >>> import numpy as np
    >>> count_correct(np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([1, 1]))
    1
    """
    prediction, target = _as_array(prediction), _as_array(target)
    xp = get_array_module(prediction)
    n = prediction.shape[0]
    if prediction.ndim == 2 and prediction.shape[1] > 1:
        predicted = xp.argmax(prediction, axis=1)
    elif prediction.ndim in (1, 2):
        predicted = (prediction.reshape(n) > 0.5).astype(xp.int64)
    else:
        raise ValueError(f"count_correct: prediction must have shape (N, C) or (N,), got {prediction.shape}")
    if target.ndim == 2 and target.shape[1] > 1:
        if target.shape != prediction.shape:
            raise ValueError(f"count_correct: one-hot target shape {target.shape} does not match "
                             f"prediction shape {prediction.shape}")
        target = xp.argmax(target, axis=1)
    target = target.reshape(-1)
    if target.shape[0] != n:
        raise ValueError(f"count_correct: {target.shape[0]} targets for {n} predictions "
                         f"(prediction shape {prediction.shape})")
    return int((predicted == target.astype(predicted.dtype)).sum())


class Evaluator:
    """Base class: measures a model on the test split of a data set.

    Args:
        model: the model to evaluate; may be left None and is then filled
            in by ``Trainer.init``.
        dataset: the ``DataSet`` whose ``get_test_dataset()`` is used; may be
            left None, like ``model``.
        split: "test" evaluates ``dataset.get_test_dataset()``; "all" every
            batch of ``dataset`` itself (for a data set that is the test data).
    """

    #: Metric name used for the training batches, or None if there is none.
    train_metric: str | None = None

    def __init__(self, model: Any = None, dataset: Any = None, *, split: str = "test") -> None:
        if split not in ("test", "all"):
            raise ValueError(f"{type(self).__name__}: split must be 'test' or 'all', got {split!r}")
        self.model = model
        self.dataset = dataset
        self.split = split

    def bind(self, model: Any, dataset: Any, loss: Any = None) -> None:
        """Fill in the model, data set and (for an evaluator that measures one)
        the loss if they were not given (used by Trainer.init)."""
        if self.model is None:
            self.model = model
        if self.dataset is None:
            self.dataset = dataset
        if loss is not None and hasattr(self, "loss") and self.loss is None:
            self.loss = loss

    def test_batches(self) -> list:
        """The batches of the test split."""
        if self.model is None or self.dataset is None:
            raise ValueError(f"{type(self).__name__}: no model or data set to evaluate "
                             "(pass them to the constructor or call Trainer.init first)")
        source = self.dataset
        if self.split == "test":
            if not hasattr(source, "get_test_dataset"):
                raise TypeError(f"{type(self).__name__}: {type(source).__name__} has no get_test_dataset(); "
                                "pass split='all' to evaluate all of its batches")
            source = source.get_test_dataset()
            if source is None:
                raise ValueError(f"{type(self).__name__}: the data set has no test split")
        return list(source.get_batches() if hasattr(source, "get_batches") else source)

    def batch_score(self, prediction: Any, target: Any) -> tuple[float, int] | None:
        """(sum of the metric over the batch, number of samples) for a training
        batch, or None when this evaluator has no per-batch training metric."""
        return None

    def evaluate(self) -> dict[str, float]:
        """Run the model on the test split and return its metrics."""
        raise TypeError(f"{type(self).__name__}.evaluate: subclasses of Evaluator must define evaluate()")


class AccuracyEval(Evaluator):
    """Classification accuracy on the test split: correct predictions / samples.

    The prediction is the arg-max of the model's output (see ``count_correct``).
    Returns ``{"test_accuracy": fraction, "test_loss": mean loss}``; during
    training it also yields ``train_accuracy`` from the batches the model has
    just been trained on.

    Args:
        model, dataset: as for ``Evaluator``.
        loss: the loss object whose mean over the test samples is reported as
            ``test_loss``; the Trainer fills in its own loss when this is
            None. Without a loss only the accuracy is measured.

    >>> # evaluator = AccuracyEval(model, dataset); evaluator.evaluate()["test_accuracy"]
    """

    train_metric = "train_accuracy"

    def __init__(self, model: Any = None, dataset: Any = None, *, split: str = "test", loss: Any = None) -> None:
        super().__init__(model, dataset, split=split)
        self.loss = loss

    def batch_score(self, prediction: Any, target: Any) -> tuple[float, int]:
        return float(count_correct(prediction, target)), int(_as_array(prediction).shape[0])

    def evaluate(self) -> dict[str, float]:
        correct = total = 0
        weighted_loss = 0.0
        batches = self.test_batches()
        with evaluation(self.model):
            for batch in batches:
                x, y = batch_variables(self.model, batch)
                prediction = self.model(x)
                correct += count_correct(prediction, y)
                if self.loss is not None:
                    # Each batch's mean loss weighted by its size: the mean over samples.
                    weighted_loss += float(self.loss.loss(y, prediction).item()) * batch.size
                total += batch.size
        if total == 0:
            raise ValueError("AccuracyEval: the test split is empty")
        metrics = {"test_accuracy": correct / total}
        if self.loss is not None:
            metrics["test_loss"] = weighted_loss / total
        return metrics


class RegressEval(Evaluator):
    """Mean loss on the test split, for regression (TinyAI's RegressEval).

    Args:
        loss: a loss object (``loss.loss(target, prediction)``), e.g. MSE.
        model, dataset: as for ``Evaluator``.

    The mean is over samples: each batch's mean loss is weighted by its size.
    Returns ``{"test_loss": value}``.
    """

    def __init__(self, loss: Any, model: Any = None, dataset: Any = None, *, split: str = "test") -> None:
        super().__init__(model, dataset, split=split)
        self.loss = loss

    def evaluate(self) -> dict[str, float]:
        weighted = 0.0
        total = 0
        batches = self.test_batches()
        with evaluation(self.model):
            for batch in batches:
                x, y = batch_variables(self.model, batch)
                value = self.loss.loss(y, self.model(x))
                weighted += float(value.item()) * batch.size
                total += batch.size
        if total == 0:
            raise ValueError("RegressEval: the test split is empty")
        return {"test_loss": weighted / total}
