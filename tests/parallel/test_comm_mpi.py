"""The Communicator on MPI, launched for real: ``mpiexec -n 3 python -m tests.parallel.comm_programs``.

The same ``every_operation(comm)`` that test_comm.py runs under spmd runs here
on ``mpi_world()``, and must give the same bits (the expectations are
computed by comm_programs from NumPy, in this process, which never
initialises MPI).
"""
import numpy as np

from tests.parallel import comm_programs
from tests.parallel.mpi_launch import launch_mpi, needs_mpi
from tests.parallel.test_mpi import LAUNCH_TIMEOUT


def launch(scenario, out, ranks):
    """Run comm_programs' ``scenario`` under mpiexec -n ``ranks``; (exit code, output)."""
    return launch_mpi(ranks, "tests.parallel.comm_programs", scenario, out, timeout=LAUNCH_TIMEOUT)


@needs_mpi
def test_every_operation_on_three_mpi_ranks(tmp_path):
    code, output = launch("all", tmp_path, 3)
    assert code == 0, output
    results = [dict(np.load(tmp_path / f"rank{r}.npz", allow_pickle=False)) for r in range(3)]
    comm_programs.assert_as_expected(results, 3)
    errors = [{name: value.item() for name, value in np.load(tmp_path / f"rank{r}.errors.npz").items()}
              for r in range(3)]
    comm_programs.check_argument_errors(errors, 3)


@needs_mpi
def test_an_exception_on_one_rank_ends_the_mpi_job(tmp_path):
    code, output = launch("fail", tmp_path, 3)
    assert code != 0, output
    assert "ValueError: rank one gives up" in output  # the failed rank's traceback
    assert "rank 1 of 3 failed (ValueError: rank one gives up); ending every rank of the MPI job" in output
    assert not list(tmp_path.glob("*.passed"))  # nobody got past the allreduce without rank 1
