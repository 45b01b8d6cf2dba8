"""Ring all-reduce equals the sum, on 1-5 ranks of the thread transport."""
import numpy as np
import pytest

from tinyai.parallel import spmd
from tinyai.parallel.ring import ring_allreduce, ring_chunk_bounds

from tests.parallel import ring_programs


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5])
def test_ring_on_threads(size):
    ring_programs.compare(spmd(ring_programs.ring_checks, size, backend="thread", timeout=30), size)


def test_chunk_bounds_cover_the_array():
    assert ring_chunk_bounds(10, 3) == [(0, 4), (4, 7), (7, 10)]
    assert ring_chunk_bounds(2, 4) == [(0, 1), (1, 2), (2, 2), (2, 2)]


def test_bad_arguments_are_named():
    def bad(comm):
        with pytest.raises(ValueError, match="ring_allreduce: unknown op 'average'"):
            ring_allreduce(comm, np.zeros(3), op="average")
        with pytest.raises(TypeError, match="ring_allreduce: expected an array, got list"):
            ring_allreduce(comm, [1.0, 2.0])
        return True

    assert spmd(bad, 2, backend="thread", timeout=10) == [True, True]
