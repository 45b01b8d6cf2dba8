"""Ready-made training set-ups behind ``tinyai train --example NAME``.

Each recipe builds the four things a Trainer needs (data set, model, loss,
optimizer) plus an evaluator, from a few settings. They are TinyAI's example
programs (MNIST with an MLP and with a small CNN, the spiral, a sine wave
with an LSTM), kept here so the command line can run them; ``examples/``
shows the same set-ups written out with the public API.

    mnist-mlp   784-128-64-10 ReLU MLP on MNIST (8,000 train / 2,000 test)
    mnist-cnn   SimpleConvNet on the same split
    spiral      3-class spiral, 2-30-3 MLP
    sin-lstm    next value of a sine wave, LSTM(1 -> 32) + Linear(32 -> 1)
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import tinyai.optim as optim
from tinyai import losses, nn
from tinyai.data import ArrayDataset, MnistDataSet, SinDataSet, SpiralDataSet
from tinyai.training.evaluator import AccuracyEval, Evaluator, RegressEval
from tinyai.training.model import Model


@dataclasses.dataclass
class Settings:
    """What a recipe may be asked to change."""

    epochs: int
    batch_size: int
    lr: float
    optimizer: str
    data_dir: str | None = None
    limit: int | None = None        #: use at most this many training (and test) samples


@dataclasses.dataclass
class Setup:
    """Everything ``Trainer.init`` needs, and the evaluator."""

    dataset: Any
    model: Model
    loss: Any
    optimizer: Any
    evaluator: Evaluator


@dataclasses.dataclass
class Recipe:
    """A built-in example for ``tinyai train``: its name, a one-line description,
    default settings, and ``build`` turning settings into model, data, optimizer and evaluator."""

    name: str
    description: str
    defaults: Settings
    build: Callable[[Settings], Setup]


class FixedSplit:
    """A train/test pair of ``ArrayDataset`` s presented as one split data set."""

    def __init__(self, train: ArrayDataset, test: ArrayDataset) -> None:
        self.train, self.test = train, test

    def prepare(self) -> "FixedSplit":
        return self

    def get_train_dataset(self) -> ArrayDataset:
        return self.train

    def get_test_dataset(self) -> ArrayDataset:
        return self.test


def _limited(dataset: Any, settings: Settings) -> Any:
    """The data set, or its first ``limit`` training and ``limit // 4`` test samples."""
    if settings.limit is None:
        return dataset
    if settings.limit <= 0:
        raise ValueError(f"recipes: limit must be a positive number of samples, got {settings.limit}")
    dataset.prepare()
    train, test = dataset.get_train_dataset(), dataset.get_test_dataset()
    n_test = max(1, settings.limit // 4)
    return FixedSplit(ArrayDataset(train.x[:settings.limit], train.y[:settings.limit], settings.batch_size),
                      ArrayDataset(test.x[:n_test], test.y[:n_test], settings.batch_size))


def make_optimizer(name: str, model: Any, lr: float) -> Any:
    """An optimizer by name: sgd, momentum, adagrad, rmsprop, adam, adamw."""
    table = {"sgd": optim.SGD, "momentum": optim.Momentum, "adagrad": optim.AdaGrad,
             "rmsprop": optim.RMSprop, "adam": optim.Adam, "adamw": optim.AdamW}
    if name not in table:
        raise ValueError(f"make_optimizer: unknown optimizer {name!r}; choose one of {', '.join(table)}")
    return table[name](model, lr=lr)


OPTIMIZERS = ("sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw")
"""The names ``tinyai train --optimizer`` accepts (see ``make_optimizer``)."""


def _mnist(settings: Settings, flatten: bool) -> Any:
    return _limited(MnistDataSet(settings.batch_size, root=settings.data_dir, flatten=flatten), settings)


def _classifier(settings: Settings, dataset: Any, name: str, block: Any) -> Setup:
    model = Model(name, block)
    return Setup(dataset, model, losses.SoftmaxCrossEntropy(),
                 make_optimizer(settings.optimizer, model, settings.lr), AccuracyEval())


def build_mnist_mlp(settings: Settings) -> Setup:
    """TinyAI's MNIST MLP: 784-128-64-10 with ReLU between the layers."""
    block = nn.MlpBlock("mlp", settings.batch_size, "relu", 784, 128, 64, 10)
    return _classifier(settings, _mnist(settings, flatten=True), "mnist-mlp", block)


def build_mnist_cnn(settings: Settings) -> Setup:
    """SimpleConvNet on 1x28x28 MNIST images."""
    block = nn.SimpleConvNet()
    return _classifier(settings, _mnist(settings, flatten=False), "mnist-cnn", block)


def build_spiral(settings: Settings) -> Setup:
    """The 3-arm spiral (300 points) with a 2-30-3 MLP."""
    block = nn.MlpBlock("mlp", settings.batch_size, "sigmoid", 2, 30, 3)
    dataset = _limited(SpiralDataSet(settings.batch_size), settings)
    return _classifier(settings, dataset, "spiral", block)


class SineRegressor(nn.Block):
    """LSTM over a window of past values, then a linear read-out of the last hidden state.

    x (N, T, 1) -> LSTM -> h (N, T, hidden) -> h[:, -1] (N, hidden) -> Linear -> (N, 1).
    Every window is an independent sequence, so the LSTM starts each one from zeros.
    """

    def __init__(self, hidden_size: int = 32) -> None:
        super().__init__()
        self.lstm = nn.LSTM(1, hidden_size)
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, x: Any) -> Any:
        self.lstm.reset_state()
        h = self.lstm(x)
        return self.head(h[:, -1, :])


def build_sin_lstm(settings: Settings) -> Setup:
    """Predict sin(t + step) from the 20 previous values with an LSTM."""
    model = Model("sin-lstm", SineRegressor(32))
    loss = losses.MeanSquaredLoss()
    dataset = _limited(SinDataSet(settings.batch_size, num_samples=1000, seq_len=20), settings)
    return Setup(dataset, model, loss, make_optimizer(settings.optimizer, model, settings.lr), RegressEval(loss))


RECIPES: dict[str, Recipe] = {
    recipe.name: recipe for recipe in (
        Recipe("mnist-mlp", "784-128-64-10 ReLU MLP on MNIST (8,000 train / 2,000 test images)",
               Settings(epochs=10, batch_size=64, lr=0.1, optimizer="sgd"), build_mnist_mlp),
        Recipe("mnist-cnn", "SimpleConvNet on MNIST (8,000 train / 2,000 test images)",
               Settings(epochs=4, batch_size=64, lr=0.001, optimizer="adam"), build_mnist_cnn),
        Recipe("spiral", "3-class spiral (300 points), 2-30-3 sigmoid MLP",
               Settings(epochs=300, batch_size=30, lr=1.0, optimizer="sgd"), build_spiral),
        Recipe("sin-lstm", "next value of a sine wave, LSTM(32) + linear read-out",
               Settings(epochs=10, batch_size=32, lr=0.01, optimizer="adam"), build_sin_lstm),
    )
}
"""The built-in examples of ``tinyai train --example NAME``, by name."""


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``, or a ValueError listing the known ones."""
    if name not in RECIPES:
        raise ValueError(f"get_recipe: unknown example {name!r}; choose one of {', '.join(RECIPES)}")
    return RECIPES[name]


__all__ = ["RECIPES", "Recipe", "Settings", "Setup", "FixedSplit", "get_recipe", "make_optimizer", "OPTIMIZERS",
           "SineRegressor"]
