"""Small models, losses and data for the Trainer tests (fast: a few ms per epoch)."""
from __future__ import annotations

import numpy as np

import tinyai
import tinyai.functions as F
from tinyai import nn
from tinyai.data.dataset import ArrayDataset


class CrossEntropy:
    """Softmax cross-entropy with TinyAI's argument order (target, prediction)."""

    def loss(self, target, prediction):
        return F.softmax_cross_entropy(prediction, target)

    def __call__(self, prediction, target):
        return self.loss(target, prediction)


class SquaredError:
    """Mean squared error with TinyAI's argument order."""

    def loss(self, target, prediction):
        return F.mean_squared_error(prediction, target)

    def __call__(self, prediction, target):
        return self.loss(target, prediction)


class RecordingNet(nn.Block):
    """A 2-layer ReLU network that notes, at every forward, the modes in force."""

    def __init__(self, n_in: int, n_hidden: int, n_out: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(n_in, n_hidden)
        self.fc2 = nn.Linear(n_hidden, n_out)
        self.calls = []          # (train mode, grad enabled, .training) per forward
        self.outputs = []        # the prediction Variables of training forwards
        self.reset_count = 0

    def forward(self, x):
        self.calls.append((tinyai.is_train_mode(), tinyai.is_grad_enabled(), self.training))
        y = self.fc2(F.relu(self.fc1(x)))
        if tinyai.is_grad_enabled():
            self.outputs.append(y)
        return y

    def reset_state(self) -> None:
        self.reset_count += 1


def blobs(n_per_class: int = 40, seed: int = 0, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Three well-separated Gaussian blobs in 2-D: an easy 3-class problem."""
    rng = np.random.default_rng(seed)
    centres = np.array([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])
    x = np.concatenate([c + 0.4 * rng.standard_normal((n_per_class, 2)) for c in centres])
    y = np.repeat(np.arange(3), n_per_class)
    return x.astype(dtype), y


def blob_dataset(batch_size: int = 16, n_per_class: int = 40, seed: int = 0) -> ArrayDataset:
    x, y = blobs(n_per_class, seed, dtype=tinyai.backend.get_default_dtype())
    return ArrayDataset(x, y, batch_size)
