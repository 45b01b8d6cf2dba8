"""The Communicator on MPI, launched for real: ``mpiexec -n 3 python -m tests.parallel.comm_programs``.

The same ``every_operation(comm)`` that test_comm.py runs under spmd runs here
on ``mpi_world()``, and must give the same bits (the expectations are
computed by comm_programs from NumPy, in this process, which never
initialises MPI).
"""
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.parallel import comm_programs
from tests.parallel.test_mpi import LAUNCH_TIMEOUT, MPIEXEC, needs_mpi

ROOT = Path(__file__).resolve().parents[2]


def launch(scenario, out, ranks):
    """Run comm_programs' ``scenario`` under mpiexec -n ``ranks``; (exit code, output)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    command = [MPIEXEC, "-n", str(ranks), sys.executable, "-m", "tests.parallel.comm_programs", scenario, str(out)]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=LAUNCH_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"{' '.join(command)} did not finish within {LAUNCH_TIMEOUT} s (a hang):\n{output}")
    return process.returncode, output


@needs_mpi
def test_every_operation_on_three_mpi_ranks(tmp_path):
    code, output = launch("all", tmp_path, 3)
    assert code == 0, output
    results = [dict(np.load(tmp_path / f"rank{r}.npz", allow_pickle=False)) for r in range(3)]
    comm_programs.compare(results, 3)
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
