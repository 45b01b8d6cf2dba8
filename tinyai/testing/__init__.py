"""Tools for testing differentiable code: gradient checks and hypothesis strategies.

Meant for tinyai's own suite and for yours: ``gradcheck(my_function, x)`` in
a test proves a hand-written backward right.

* ``gradcheck``, ``gradgradcheck``, ``numerical_grad``: backward passes
  against finite differences;
* ``tinyai.testing.strategies`` (also ``from tinyai.testing import
  float_arrays, ...``): hypothesis strategies for shapes, arrays kept off
  kinks and ties, and convolution/pooling geometries. Loaded on first use, so
  hypothesis is needed only by code that uses them;
* ``tinyai.testing.standin``: a CPU stand-in for CuPy that refuses implicit
  NumPy conversions, to prove code backend-clean without a GPU.
"""
from typing import Any

from tinyai.testing.gradcheck import gradcheck, gradgradcheck, numerical_grad

_STRATEGIES = (
    "shapes", "float_arrays", "broadcastable_shapes", "broadcastable_arrays", "nonzero_arrays",
    "positive_arrays", "distinct_arrays", "nudge_away", "class_labels", "ConvGeometry",
    "conv_geometries", "PoolGeometry", "pool_geometries",
)

__all__ = ["gradcheck", "gradgradcheck", "numerical_grad", "strategies", *_STRATEGIES]


def __getattr__(name: str) -> Any:
    # Imported lazily: hypothesis is a test-time dependency, gradcheck is not.
    if name == "strategies" or name in _STRATEGIES:
        import importlib  # noqa: PLC0415

        strategies = importlib.import_module("tinyai.testing.strategies")
        return strategies if name == "strategies" else getattr(strategies, name)
    raise AttributeError(f"module 'tinyai.testing' has no attribute {name!r}")
