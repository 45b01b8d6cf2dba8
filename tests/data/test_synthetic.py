"""Spiral, sine and cosine data sets: shapes, the formulas behind them, seeding."""
import numpy as np
import pytest

import tinyai
from tinyai.data import CosDataSet, SinDataSet, SpiralDataSet


def test_spiral_shapes_labels_and_radius():
    data = SpiralDataSet(batch_size=30, seed=0)
    assert data.x.shape == (300, 2) and data.x.dtype == np.float32
    assert data.y.shape == (300,) and data.y.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(data.y), [100, 100, 100])
    # Angle noise never changes the radius, which grows 0, 1/100, ..., 99/100 along each arm.
    radius = np.hypot(data.x[:, 0], data.x[:, 1])
    np.testing.assert_allclose(radius, np.tile(np.arange(100) / 100, 3), atol=1e-6)
    assert len(data) == 10


def test_spiral_without_noise_follows_the_formula():
    n = 50
    data = SpiralDataSet(num_per_class=n, num_classes=3, noise=0.0, seed=0)
    for c in range(3):
        r = np.arange(n) / n
        theta = 4.0 * c + 4.0 * r  # each arm turns 4 radians, offset 4 radians per class
        expected = np.stack([r * np.sin(theta), r * np.cos(theta)], axis=1)
        np.testing.assert_allclose(data.x[data.y == c], expected, atol=1e-6)


def test_spiral_noise_is_seeded():
    a, b = SpiralDataSet(seed=4), SpiralDataSet(seed=4)
    np.testing.assert_array_equal(a.x, b.x)
    assert not np.array_equal(a.x, SpiralDataSet(seed=5).x)
    assert not np.array_equal(a.x, SpiralDataSet(seed=4, noise=0.0).x)
    tinyai.seed(21)
    c = SpiralDataSet()
    tinyai.seed(21)
    d = SpiralDataSet()
    assert c.seed == d.seed
    np.testing.assert_array_equal(c.x, d.x)


def test_spiral_other_sizes_and_errors():
    data = SpiralDataSet(num_per_class=7, num_classes=5, seed=1)
    assert data.x.shape == (35, 2)
    np.testing.assert_array_equal(np.bincount(data.y), [7] * 5)
    with pytest.raises(ValueError, match="SpiralDataSet: num_classes must be a positive integer, got 0"):
        SpiralDataSet(num_classes=0)
    with pytest.raises(ValueError, match="SpiralDataSet: noise must be >= 0"):
        SpiralDataSet(noise=-1.0)


@pytest.mark.parametrize("cls, wave", [(SinDataSet, np.sin), (CosDataSet, np.cos)])
def test_wave_windows_and_next_value(cls, wave):
    n, seq_len, step, start = 40, 6, 0.25, 0.5
    data = cls(batch_size=8, num_samples=n, seq_len=seq_len, step=step, start=start, seed=0)
    assert data.x.shape == (n, seq_len, 1) and data.y.shape == (n, 1)
    assert data.x.dtype == np.float32 and data.y.dtype == np.float32
    i = np.arange(n)[:, None]
    j = np.arange(seq_len)[None, :]
    np.testing.assert_allclose(data.x[:, :, 0], wave(start + step * (i + j)), atol=1e-6)
    np.testing.assert_allclose(data.y[:, 0], wave(start + step * (np.arange(n) + seq_len)), atol=1e-6)
    # The target of window i is the last value of window i + 1.
    np.testing.assert_array_equal(data.y[:-1, 0], data.x[1:, -1, 0])
    assert len(data) == 5
    batch = next(iter(data))
    assert batch.x.shape == (8, seq_len, 1) and batch.y.shape == (8, 1)


def test_sin_and_cos_are_a_quarter_period_apart():
    step = 2 * np.pi / 40  # 10 steps = a quarter period
    sin = SinDataSet(num_samples=30, seq_len=3, step=step, seed=0)
    cos = CosDataSet(num_samples=30, seq_len=3, step=step, seed=0)
    # sin(t + pi/2) = cos(t)
    np.testing.assert_allclose(sin.x[10:], cos.x[:-10], atol=1e-6)


def test_wave_noise_is_seeded_and_sized():
    clean = SinDataSet(num_samples=2000, seq_len=1, seed=0)
    noisy = SinDataSet(num_samples=2000, seq_len=1, noise=0.1, seed=3)
    again = SinDataSet(num_samples=2000, seq_len=1, noise=0.1, seed=3)
    np.testing.assert_array_equal(noisy.x, again.x)
    residual = (noisy.x - clean.x).ravel()
    assert 0.09 < residual.std() < 0.11
    # Noise belongs to the observed series, so the next-value relation still holds.
    np.testing.assert_array_equal(noisy.y[:-1, 0], noisy.x[1:, -1, 0])


def test_wave_split_keeps_time_order():
    data = SinDataSet(num_samples=50, seq_len=4, step=0.01, seed=0)  # increasing on [0, 0.53]
    train, test = data.get_train_dataset(), data.get_test_dataset()
    assert (train.num_samples, test.num_samples) == (40, 10)
    assert np.all(np.diff(train.x[:, 0, 0]) > 0) and np.all(np.diff(test.x[:, 0, 0]) > 0)


def test_wave_errors():
    with pytest.raises(ValueError, match="SinDataSet: seq_len must be a positive integer, got 0"):
        SinDataSet(seq_len=0)
    with pytest.raises(ValueError, match="CosDataSet: step must be > 0"):
        CosDataSet(step=0.0)
    with pytest.raises(ValueError, match="CosDataSet: num_samples must be a positive integer"):
        CosDataSet(num_samples=-3)
