"""Launching a test program under a real ``mpiexec``, shared by the MPI tests.

``needs_mpi`` skips a test (saying why) when mpi4py or an ``mpiexec`` is
missing; ``launch_mpi`` starts ``mpiexec -n RANKS python -m MODULE ARGS...`` from
the repository root, with one BLAS thread per rank, and kills the whole
launch if it outlives its time limit, so a hung rank fails the test instead
of hanging the suite; ``run_mpi`` also requires every rank to succeed;
``launch`` runs any command (a script alone, or an mpiexec line built by hand) the same way.
"""
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def find_mpiexec():
    """The mpiexec beside this interpreter (a venv with the mpich wheel), else the one on PATH."""
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec")


MPIEXEC = find_mpiexec()
HAS_MPI4PY = importlib.util.find_spec("mpi4py") is not None
needs_mpi = pytest.mark.skipif(
    not HAS_MPI4PY or MPIEXEC is None,
    reason="mpi4py is not installed (pip install 'tinyai-numpy[mpi]')" if not HAS_MPI4PY else
    "no mpiexec beside the Python interpreter or on PATH (pip install 'tinyai-numpy[mpi]' brings MPICH's)")


def launch_mpi(ranks, module, *args, timeout=120):
    """Run ``module`` on ``ranks`` MPI ranks; (exit code, stdout + stderr). A time-out fails the test."""
    return launch([MPIEXEC, "-n", str(ranks), sys.executable, "-m", module, *map(str, args)], timeout)


def launch(command, timeout=120):
    """Run ``command`` from the repository root with one BLAS thread (per rank); (exit code, output).

    It runs in its own process group, killed whole if it outlives ``timeout``, which fails the test.
    """
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"{' '.join(command)} did not finish within {timeout} s (a hang):\n{output}")
    return process.returncode, output


def run_mpi(ranks, module, *args, timeout=120):
    """Like ``launch_mpi``, and every rank must succeed; returns the output."""
    code, output = launch_mpi(ranks, module, *args, timeout=timeout)
    assert code == 0, output
    return output
