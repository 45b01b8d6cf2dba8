"""Ring all-reduce equals the sum, on 1-5 ranks of every transport (threads, processes, MPI)."""
import numpy as np
import pytest

from tinyai.parallel import spmd
from tinyai.parallel.ring import ring_allreduce, ring_chunk_bounds

from tests.parallel import ring_programs
from tests.parallel.mpi_launch import needs_mpi, run_mpi


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5])
def test_ring_on_threads(size):
    ring_programs.assert_as_expected(spmd(ring_programs.ring_checks, size, backend="thread", timeout=30), size)


def _assert_subgroups_as_expected(results):
    """``with_subgroups`` results of a world of 5: the world and its sub-rings of 2, 3 and 4."""
    for n in (2, 3, 4, 5):
        prefix = f"n{n}."
        ring_programs.assert_as_expected([{k[len(prefix):]: v for k, v in r.items() if k.startswith(prefix)}
                               for r in results[:n]], n)


@pytest.mark.slow
def test_ring_on_processes_on_the_world_and_its_splits():
    # One launch of 5 processes (starting them is the slow part); split gives the sub-rings.
    _assert_subgroups_as_expected(spmd(ring_programs.with_subgroups, 5, backend="process", timeout=120))


@pytest.mark.slow
@needs_mpi
def test_ring_under_mpiexec_on_the_world_and_its_splits(tmp_path):
    # One launch of 5 ranks; split gives the sub-rings of 2, 3 and 4.
    run_mpi(5, "tests.parallel.ring_programs", tmp_path, timeout=120)
    results = []
    for rank in range(5):
        with np.load(tmp_path / f"rank{rank}.npz", allow_pickle=False) as f:
            results.append(dict(f))
    _assert_subgroups_as_expected(results)


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
