"""Generated data sets: the spiral (classification) and sine/cosine waves (sequences).

Each is drawn from its own NumPy generator seeded by ``seed``. With
``seed=None`` a seed is drawn from ``tinyai.backend.get_rng()`` when the data
set is constructed (and kept in ``.seed``), so ``tinyai.seed(n)`` makes the
data reproducible as well, and the generation does not depend on when the
samples are first used.
"""
from __future__ import annotations

import numpy as np

from tinyai.backend import get_rng
from tinyai.data.dataset import DEFAULT_SPLIT_RATIO, DEFAULT_SPLIT_SEED, DataSet

__all__ = ["SpiralDataSet", "SinDataSet", "CosDataSet"]


def _resolve_seed(seed: int | None) -> int:
    if seed is None:
        return int(get_rng().integers(2 ** 63))
    return int(seed)


def _check_positive(value, name: str, owner: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r}")
    return int(value)


class SpiralDataSet(DataSet):
    """Points on interleaved spiral arms, one arm per class (the classic toy set).

    For class c (0..K-1) and point i (0..n-1) of that class:

        r     = i / n
        theta = 4 c + 4 r + noise * e,   e ~ N(0, 1)
        x     = (r sin(theta), r cos(theta)),   y = c

    so every arm starts at the origin and turns 4 radians outwards; the noise
    moves points along their circle only (the radius is exactly i / n).

    Shapes: x (K * n, 2) in the default float dtype, y (K * n,) int64 labels,
    ordered class by class (shuffle before training).

    Args:
        batch_size: samples per batch.
        num_per_class: n, the points on each arm (default 100).
        num_classes: K, the arms (default 3).
        noise: standard deviation of the angle noise in radians (default 0.2).
        seed: seed of the noise (see the module docstring for ``None``).
    """

    def __init__(self, batch_size: int = 30, *, num_per_class: int = 100, num_classes: int = 3,
                 noise: float = 0.2, seed: int | None = None, drop_last: bool = False,
                 split_ratio: float = DEFAULT_SPLIT_RATIO,
                 split_seed: int | None = DEFAULT_SPLIT_SEED) -> None:
        super().__init__(batch_size, drop_last=drop_last, split_ratio=split_ratio, split_seed=split_seed)
        owner = type(self).__name__
        self.num_per_class = _check_positive(num_per_class, "num_per_class", owner)
        self.num_classes = _check_positive(num_classes, "num_classes", owner)
        if not noise >= 0.0:
            raise ValueError(f"{owner}: noise must be >= 0, got {noise!r}")
        self.noise = float(noise)
        self.seed = _resolve_seed(seed)

    def _load(self) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        n, k = self.num_per_class, self.num_classes
        radius = np.tile(np.arange(n) / n, k)                    # (k * n,)
        label = np.repeat(np.arange(k), n)                       # (k * n,)
        theta = 4.0 * label + 4.0 * radius + self.noise * rng.standard_normal(k * n)
        x = np.stack([radius * np.sin(theta), radius * np.cos(theta)], axis=1)
        return x, label


class _WaveDataSet(DataSet):
    """Windows of a sampled wave, each paired with the value that follows it."""

    _wave = staticmethod(np.sin)

    def __init__(self, batch_size: int = 32, *, num_samples: int = 1000, seq_len: int = 20,
                 step: float = 0.1, start: float = 0.0, noise: float = 0.0, seed: int | None = None,
                 drop_last: bool = False, split_ratio: float = DEFAULT_SPLIT_RATIO,
                 split_seed: int | None = DEFAULT_SPLIT_SEED) -> None:
        super().__init__(batch_size, drop_last=drop_last, split_ratio=split_ratio, split_seed=split_seed)
        owner = type(self).__name__
        self.num_windows = _check_positive(num_samples, "num_samples", owner)
        self.seq_len = _check_positive(seq_len, "seq_len", owner)
        if not step > 0.0:
            raise ValueError(f"{owner}: step must be > 0, got {step!r}")
        if not noise >= 0.0:
            raise ValueError(f"{owner}: noise must be >= 0, got {noise!r}")
        self.step, self.start, self.noise = float(step), float(start), float(noise)
        self.seed = _resolve_seed(seed)

    def wave(self) -> np.ndarray:
        """The whole observed series v_0 .. v_{N + seq_len - 1}, shape (N + seq_len,)."""
        length = self.num_windows + self.seq_len
        t = self.start + self.step * np.arange(length)
        values = self._wave(t)
        if self.noise > 0.0:
            values = values + self.noise * np.random.default_rng(self.seed).standard_normal(length)
        return values

    def _load(self) -> tuple[np.ndarray, np.ndarray]:
        values = self.wave()
        n, length = self.num_windows, self.seq_len
        # Row i is v[i : i + seq_len]; copied so the samples own their memory.
        x = np.lib.stride_tricks.sliding_window_view(values, length)[:n].copy()
        y = values[length:length + n]
        return x[:, :, None], y[:, None]


class SinDataSet(_WaveDataSet):
    """Next-value prediction on a sine wave, for recurrent networks (LSTM, GRU, RNN).

    The series is v_k = sin(start + step * k) + noise * e_k (e_k ~ N(0, 1),
    seeded), k = 0 .. N + seq_len - 1. Sample i is the window and its successor:

        x[i] = v[i], ..., v[i + seq_len - 1]      shape (seq_len, 1)
        y[i] = v[i + seq_len]                     shape (1,)

    Shapes: x (N, seq_len, 1) as (batch, time, features), y (N, 1), both in
    the default float dtype. Consecutive samples overlap by seq_len - 1 steps.

    Args:
        batch_size: samples per batch.
        num_samples: N, the windows (default 1000).
        seq_len: the time steps in each window (default 20).
        step: the time step in radians (default 0.1: about 63 steps a period).
        start: the phase of v_0 in radians (default 0).
        noise: standard deviation of the observation noise (default 0).
        seed: seed of the noise (see the module docstring for ``None``).
    """

    _wave = staticmethod(np.sin)


class CosDataSet(_WaveDataSet):
    """Next-value prediction on a cosine wave: ``SinDataSet`` with v_k = cos(start + step * k) + noise.

    Shapes: x (N, seq_len, 1), y (N, 1); see ``SinDataSet`` for the arguments.
    """

    _wave = staticmethod(np.cos)
