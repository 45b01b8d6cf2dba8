"""Shared test set-up: hypothesis profiles and common fixtures.

Profiles: ``ci`` (the default: bounded, so the whole suite stays well under
10 minutes on 2 cores) and ``thorough`` (many more examples), chosen with
TINYAI_HYPOTHESIS_PROFILE=thorough.
"""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=15, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("thorough", max_examples=300, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("TINYAI_HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def rng():
    """A seeded NumPy generator, so a failing test fails the same way again."""
    return np.random.default_rng(12345)


def _backends():
    """numpy and the stand-in everywhere; real CuPy too where a CUDA device answers (marked gpu)."""
    from tinyai.backend import is_gpu_available

    params = ["numpy", "standin"]
    if is_gpu_available():
        params.append(pytest.param("cupy", marks=pytest.mark.gpu))
    return params


@pytest.fixture(params=_backends(), scope="session")
def xp(request):
    """The array module under test: NumPy, then the CPU stand-in for CuPy (and CuPy on a GPU).

    The stand-in (tinyai.testing.standin) refuses ``np.asarray`` and NumPy
    functions on its arrays, so a test run with it proves the code under test
    asks ``get_array_module`` instead of calling NumPy directly. On a machine
    with a GPU the same tests run a third time on CuPy (``make test-gpu``
    selects those with ``-m gpu``). Session scoped (it holds no state), so
    hypothesis tests may use it.
    """
    if request.param == "numpy":
        return np
    if request.param == "cupy":
        import cupy  # noqa: PLC0415 - only where a GPU answered

        return cupy
    from tinyai.testing.standin import xp as standin_xp

    return standin_xp


@pytest.fixture(scope="session")
def to_xp(xp):
    """Convert NumPy test inputs (arrays, or lists/tuples of them) to the ``xp`` backend."""
    from tinyai.testing.standin import as_backend

    return lambda value: as_backend(value, xp)
