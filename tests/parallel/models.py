"""Small picklable models and losses shared by the data-parallel tests.

They live in a module of their own so that worker processes (started with
'spawn') can import them by name when unpickling a replica.
"""
import tinyai.functions as F
from tinyai import nn


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
