"""Sinusoidal positional encoding: table values from the formula, the relative-position property."""
import numpy as np
import pytest

from tinyai.nn import PositionalEncoding
from tinyai.nn.positional import sinusoidal_table


def test_table_against_the_formula():
    table = sinusoidal_table(7, 6)
    for pos in range(7):
        for i in range(3):
            angle = pos / 10000 ** (2 * i / 6)
            assert table[pos, 2 * i] == pytest.approx(np.sin(angle), abs=1e-6)
            assert table[pos, 2 * i + 1] == pytest.approx(np.cos(angle), abs=1e-6)
    assert table.shape == (7, 6) and table.dtype == np.float32


def test_odd_width_and_shift_is_a_rotation():
    table = sinusoidal_table(20, 5).astype(np.float64)
    assert np.all(np.abs(table) <= 1)
    # PE[pos + k] is the same linear function of PE[pos] for every pos (first sin/cos pair, rate 1)
    k = 3
    rotation = np.array([[np.cos(k), -np.sin(k)], [np.sin(k), np.cos(k)]])
    np.testing.assert_allclose(table[k:, :2], table[:-k, :2] @ rotation, atol=1e-6)


def test_layer_adds_the_table_and_is_not_saved(rng):
    layer = PositionalEncoding(4, max_len=10)
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    np.testing.assert_allclose(layer(x).data, x + sinusoidal_table(10, 4)[:3])
    assert layer.state_dict() == {}
    assert [n for n, _ in layer.named_buffers()] == ["pe"]


def test_errors():
    layer = PositionalEncoding(4, max_len=5, name="pos")
    with pytest.raises(ValueError, match="PositionalEncoding 'pos': sequence length 6 exceeds max_len=5"):
        layer(np.zeros((1, 6, 4), np.float32))
    with pytest.raises(ValueError, match=r"expected input of shape \(N, T, 4\), got \(1, 3, 5\)"):
        layer(np.zeros((1, 3, 5), np.float32))
