"""Compressed and ring all-reduce training under a real ``mpiexec -n 3`` equals the same training on 3 threads."""
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.parallel import compressed_mpi_script as script

ROOT = Path(__file__).resolve().parents[2]


def _mpiexec():
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec")


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None or _mpiexec() is None,
                    reason="mpi4py and mpiexec are needed (pip install 'tinyai-numpy[mpi]')")
def test_compressed_and_ring_training_under_mpiexec_equal_threads(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    command = [_mpiexec(), "-n", "3", sys.executable, "-m", "tests.parallel.compressed_mpi_script", str(tmp_path)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    ranks = []
    for rank in range(3):
        with np.load(tmp_path / f"rank{rank}.npz", allow_pickle=False) as f:
            ranks.append(dict(f))
    for key in ranks[0]:  # every rank holds the same model and statistics, bit for bit
        for other in ranks[1:]:
            np.testing.assert_array_equal(other[key], ranks[0][key], err_msg=key)
    for name in script.settings():
        model, stats = script.train(name, "thread")
        for pname, p in model.named_params():
            np.testing.assert_allclose(ranks[0][f"{name}.{pname}"], p.data, rtol=1e-12, atol=1e-14,
                                       err_msg=f"{name}: {pname}")
        for key in ("bytes_sent", "bytes_dense", "updates", "exchanges"):
            assert int(ranks[0][f"{name}.stats.{key}"]) == stats[key], (name, key)
        if "compression" in script.settings()[name]:
            assert stats["bytes_sent"] < stats["bytes_dense"]
