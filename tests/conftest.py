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
