"""Compressed and ring all-reduce training, compressed parameter-server pushes, and local SGD (dense and
compressed), under a real ``mpiexec -n 3`` equal the same training on 3 threads."""
import numpy as np
import pytest

from tests.parallel import compressed_mpi_script as script
from tests.parallel.mpi_launch import needs_mpi, run_mpi


@pytest.mark.slow
@needs_mpi
def test_compressed_and_ring_training_under_mpiexec_equal_threads(tmp_path):
    run_mpi(3, "tests.parallel.compressed_mpi_script", tmp_path, timeout=180)
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
        if name.startswith("ps"):  # float64 pushes would be 8 bytes an entry; the pulls stay dense
            entries = sum(p.data.size for p in model.params())
            assert stats["bytes_sent"] < stats["updates"] * 3 * (8 + 8) * entries * 0.7
        elif "compression" in script.settings()[name]:
            assert stats["bytes_sent"] < stats["bytes_dense"]
