"""Small picklable models and losses shared by the data-parallel tests.

They live in a module of their own so that worker processes (started with
'spawn') can import them by name when unpickling a replica.
"""
import numpy as np

import tinyai as ta
import tinyai.functions as F
from tinyai import nn
from tinyai.backend import default_dtype


class TwoLayerNet(nn.Block):
    """x -> tanh(x W1 + b1) W2 + b2."""

    def __init__(self, n_in=6, n_hidden=8, n_out=3):
        super().__init__()
        self.fc1 = nn.Linear(n_in, n_hidden)
        self.fc2 = nn.Linear(n_hidden, n_out)

    def forward(self, x):
        return self.fc2(F.tanh(self.fc1(x)))


class MeanSquared:
    """loss(target, prediction) = mean((prediction - target)^2)."""

    def loss(self, target, prediction):
        return F.mean_squared_error(prediction, target)


class ExplodingLoss(MeanSquared):
    """Fails on any shard whose first target value is negative (to test fault handling)."""

    def loss(self, target, prediction):
        if float(target.data.reshape(-1)[0]) < 0:
            raise ValueError("exploding loss: negative first target")
        return super().loss(target, prediction)


class ConvBatchNormNet(nn.Block):
    """conv -> batch norm -> relu -> max pool -> linear, for 1x6x6 images."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, pad=1)
        self.norm = nn.BatchNorm2d(3)
        self.fc = nn.Linear(3 * 3 * 3, 4)

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.norm(self.conv(x))), 2)
        return self.fc(F.flatten(h))


class DropoutNet(nn.Block):
    """x -> tanh(x W1) -> dropout(0.5) -> W2."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 16)
        self.drop = nn.Dropout(0.5)
        self.fc2 = nn.Linear(16, 3)

    def forward(self, x):
        return self.fc2(self.drop(F.tanh(self.fc1(x))))


class ClassLoss:
    """Softmax cross-entropy with TinyAI's argument order."""

    def loss(self, target, prediction):
        return F.softmax_cross_entropy(prediction, target)


class HangingLoss(MeanSquared):
    """Hangs (sleeps HANG_SECONDS) on any shard whose first target value is above 100: a stuck worker."""

    HANG_SECONDS = 30.0

    def loss(self, target, prediction):
        import time

        if float(target.data.reshape(-1)[0]) > 100:
            time.sleep(self.HANG_SECONDS)
        return super().loss(target, prediction)


class HangingClassLoss(ClassLoss):
    """Softmax cross-entropy that hangs on a shard whose first label is 3 (after batch norm's forward)."""

    def loss(self, target, prediction):
        import time

        if int(target.data.reshape(-1)[0]) == 3:
            time.sleep(30.0)
        return super().loss(target, prediction)


class ShortBatchLoss(MeanSquared):
    """Raises on a batch of fewer than 7 examples (the short last batch of an epoch in batches of 7)."""

    def loss(self, target, prediction):
        if len(target.data) < 7:
            raise ValueError("short batch")
        return super().loss(target, prediction)


class DyingLoss(MeanSquared):
    """Kills its own process (SIGKILL) on a batch of fewer than 7 examples: a worker process that dies
    in the middle of an epoch. Only for worker processes (on a thread it would end the test)."""

    def loss(self, target, prediction):
        import os
        import signal

        if len(target.data) < 7:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().loss(target, prediction)


def regression_data(n: int = 50, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """n random float64 examples for TwoLayerNet: x (n, 6), y (n, 3)."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 6)), rng.standard_normal((n, 3))


def float64_net(seed: int = 5) -> TwoLayerNet:
    """A TwoLayerNet in float64 (for exact comparisons), its weights drawn from ``seed``."""
    with default_dtype(np.float64):
        ta.seed(seed)
        return TwoLayerNet()
