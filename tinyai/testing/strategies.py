"""Hypothesis strategies for testing differentiable operations.

Finite differences are only trustworthy where the function is smooth: a step
of 1e-6 across the kink of ``relu`` at 0, or across a tie of two equal
maxima, measures a slope that no backward pass should produce. So besides
plain arrays of moderate magnitude (where float64 differences are accurate),
this module draws inputs that keep a margin from such points:

* ``nonzero_arrays``: |x| >= margin (relu, abs, leaky_relu at 0);
* ``positive_arrays``: x >= margin (log, sqrt, division);
* ``distinct_arrays``: every two elements differ by at least the margin
  (max, min, maximum: no ties);
* ``nudge_away(x, kinks, margin)``: moves values off any other kinks
  (clip bounds, the Huber threshold).

Shapes come from ``shapes`` and ``broadcastable_shapes`` (0-d arrays and
size-1 axes included), and ``conv_geometries`` / ``pool_geometries`` give
batch, channel, image, kernel, stride and padding sizes that always produce
a valid, non-empty output.

Requires the ``hypothesis`` package (in the ``dev`` extra).

Example, in a test module::

    from hypothesis import given
    from tinyai.testing import gradcheck, strategies as tst

    @given(tst.nonzero_arrays())
    def test_relu_grad(x):
        gradcheck(F.relu, x)
"""
from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import numpy as np

try:
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("tinyai.testing.strategies needs hypothesis: pip install 'tinyai-numpy[testing]'") from exc

__all__ = [
    "shapes", "float_arrays", "broadcastable_shapes", "broadcastable_arrays", "nonzero_arrays",
    "positive_arrays", "distinct_arrays", "nudge_away", "class_labels", "ConvGeometry",
    "conv_geometries", "PoolGeometry", "pool_geometries",
]

#: Default magnitude bound: large enough to leave the linear region of tanh
#: and sigmoid, small enough that exp() and products stay well conditioned.
MAGNITUDE = 3.0


def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 1, max_side: int = 4) -> st.SearchStrategy:
    """Array shapes (tuples), 0-d ``()`` included when ``min_dims`` is 0."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def _elements(dtype: Any, low: float, high: float) -> st.SearchStrategy:
    width = 8 * np.dtype(dtype).itemsize
    return st.floats(min_value=low, max_value=high, allow_nan=False, allow_infinity=False,
                     allow_subnormal=False, width=width)


def float_arrays(shape: Sequence[int] | st.SearchStrategy | None = None, dtype: Any = np.float64,
                 low: float = -MAGNITUDE, high: float = MAGNITUDE, **shape_kwargs: Any) -> st.SearchStrategy:
    """Float arrays with elements in [low, high] (float64 by default).

    ``shape`` is a fixed tuple, a strategy of shapes, or None (then drawn from
    ``shapes(**shape_kwargs)``).
    """
    if shape is None:
        shape = shapes(**shape_kwargs)
    elif not isinstance(shape, st.SearchStrategy):
        shape = tuple(shape)
    return hnp.arrays(np.dtype(dtype), shape, elements=_elements(dtype, low, high))


def broadcastable_shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 1,
                         max_side: int = 4) -> st.SearchStrategy:
    """Pairs of shapes that broadcast together, e.g. ((3, 1), (4,)) or ((), (2, 3))."""
    return hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=min_dims, max_dims=max_dims,
                                             min_side=min_side, max_side=max_side).map(
        lambda b: tuple(b.input_shapes))


def broadcastable_arrays(dtype: Any = np.float64, low: float = -MAGNITUDE, high: float = MAGNITUDE,
                         **shape_kwargs: Any) -> st.SearchStrategy:
    """Pairs of float arrays whose shapes broadcast together."""
    return broadcastable_shapes(**shape_kwargs).flatmap(
        lambda pair: st.tuples(float_arrays(pair[0], dtype, low, high), float_arrays(pair[1], dtype, low, high)))


def nudge_away(x: np.ndarray, kinks: Sequence[float], margin: float) -> np.ndarray:
    """A copy of ``x`` where every value closer than ``margin`` to a kink is moved to kink +- margin.

    Values move to the side they were on (exactly at the kink: upwards).
    The kinks must be more than ``2 * margin`` apart.

    >>> nudge_away(np.array([0.01, -0.02, 1.0]), [0.0], 0.1)
    array([ 0.1, -0.1,  1. ])
    """
    x = np.array(x, copy=True)
    for k in kinks:
        near = np.abs(x - k) < margin
        x[near] = np.where(x[near] >= k, k + margin, k - margin)
    return x


def nonzero_arrays(margin: float = 0.1, **kwargs: Any) -> st.SearchStrategy:
    """Float arrays with |x| >= margin everywhere: safe for relu/abs gradients."""
    return float_arrays(**kwargs).map(lambda x: nudge_away(x, [0.0], margin).astype(x.dtype))


def positive_arrays(margin: float = 0.1, high: float = MAGNITUDE, **kwargs: Any) -> st.SearchStrategy:
    """Float arrays with margin <= x <= high + margin: safe for log, sqrt and division."""
    return float_arrays(low=0.0, high=high, **kwargs).map(lambda x: (x + margin).astype(x.dtype))


@st.composite
def distinct_arrays(draw: Any, shape: Sequence[int] | None = None, margin: float = 0.1,
                    dtype: Any = np.float64, **shape_kwargs: Any) -> np.ndarray:
    """Float arrays whose elements all differ pairwise by at least ``margin``.

    No two elements tie, so max/min/maximum have one well-defined winner and
    a finite-difference step cannot swap winners. Built from a random
    ranking (rank * 2 margin) plus a jitter below margin / 2.
    """
    shape = tuple(shape) if shape is not None else draw(shapes(**shape_kwargs))
    size = int(np.prod(shape, dtype=np.int64))
    ranks = np.array(draw(st.permutations(range(size))), dtype=np.float64)
    jitter = draw(float_arrays((size,), np.float64, 0.0, margin / 2))
    values = (ranks - (size - 1) / 2) * 2 * margin + jitter
    return values.reshape(shape).astype(dtype)


def class_labels(n: int, n_classes: int) -> st.SearchStrategy:
    """Integer labels of shape (n,) in [0, n_classes), dtype int64."""
    return hnp.arrays(np.int64, (n,), elements=st.integers(0, n_classes - 1))


class ConvGeometry(NamedTuple):
    """Sizes of one 2-D convolution; ``out_h``/``out_w`` follow from the rest."""

    batch: int
    in_channels: int
    out_channels: int
    height: int
    width: int
    kernel_h: int
    kernel_w: int
    stride: int
    pad: int
    out_h: int
    out_w: int


class PoolGeometry(NamedTuple):
    """Sizes of one 2-D pooling window; ``out_h``/``out_w`` follow from the rest."""

    batch: int
    channels: int
    height: int
    width: int
    kernel_h: int
    kernel_w: int
    stride: int
    pad: int
    out_h: int
    out_w: int


def _out_size(size: int, kernel: int, stride: int, pad: int) -> int:
    """Output length of a sliding window: floor((size + 2 pad - kernel) / stride) + 1."""
    return (size + 2 * pad - kernel) // stride + 1


@st.composite
def _geometry(draw: Any, max_batch: int, max_channels: int, max_size: int, max_kernel: int,
              max_stride: int, pad_limit: str) -> tuple:
    batch = draw(st.integers(1, max_batch))
    channels = draw(st.integers(1, max_channels))
    kernel_h = draw(st.integers(1, max_kernel))
    kernel_w = draw(st.integers(1, max_kernel))
    stride = draw(st.integers(1, max_stride))
    smallest_kernel = min(kernel_h, kernel_w)
    # conv: pad < kernel, so every window sees at least one real pixel;
    # pooling: pad <= kernel // 2, the limit most frameworks impose.
    max_pad = smallest_kernel - 1 if pad_limit == "conv" else smallest_kernel // 2
    pad = draw(st.integers(0, max_pad))
    height = draw(st.integers(max(1, kernel_h - 2 * pad), max(max_size, kernel_h)))
    width = draw(st.integers(max(1, kernel_w - 2 * pad), max(max_size, kernel_w)))
    out_h, out_w = _out_size(height, kernel_h, stride, pad), _out_size(width, kernel_w, stride, pad)
    return batch, channels, height, width, kernel_h, kernel_w, stride, pad, out_h, out_w


def conv_geometries(max_batch: int = 2, max_channels: int = 3, max_size: int = 6, max_kernel: int = 3,
                    max_stride: int = 2) -> st.SearchStrategy:
    """Convolution sizes that give an output of at least 1 x 1.

    Input (batch, in_channels, height, width), weight (out_channels,
    in_channels, kernel_h, kernel_w), output (batch, out_channels, out_h, out_w)
    with out = floor((size + 2 pad - kernel) / stride) + 1.
    """
    return st.tuples(_geometry(max_batch, max_channels, max_size, max_kernel, max_stride, "conv"),
                     st.integers(1, max_channels)).map(
        lambda g: ConvGeometry(g[0][0], g[0][1], g[1], *g[0][2:]))


def pool_geometries(max_batch: int = 2, max_channels: int = 3, max_size: int = 6, max_kernel: int = 3,
                    max_stride: int = 2) -> st.SearchStrategy:
    """Pooling sizes that give an output of at least 1 x 1 (pad <= kernel // 2)."""
    return _geometry(max_batch, max_channels, max_size, max_kernel, max_stride, "pool").map(
        lambda g: PoolGeometry(*g))
