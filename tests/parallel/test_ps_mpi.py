"""Synchronous parameter servers under a real ``mpiexec -n 3`` (servers on ranks 0 and 1) equal single-process
training; their checkpoint holds every server's optimizer state, and resuming from it equals not stopping."""
import numpy as np
import pytest

from tests.parallel import ps_mpi_script as script
from tests.parallel.mpi_launch import needs_mpi, run_mpi
from tinyai.parallel.strategy.parameter_server import partition_parameters
from tinyai.training.checkpoint import load_checkpoint


@pytest.mark.slow
@needs_mpi
def test_sync_parameter_servers_under_mpiexec_equal_single_process(tmp_path):
    run_mpi(3, "tests.parallel.ps_mpi_script", tmp_path, timeout=180)
    ranks = []
    for rank in range(3):
        with np.load(tmp_path / f"rank{rank}.npz", allow_pickle=False) as f:
            ranks.append(dict(f))
    reference, _, optimizer = script.train(False)
    for name, p in reference.named_params():
        for rank in range(3):  # every rank ends with the servers' parameters
            np.testing.assert_allclose(ranks[rank][f"param.{name}"], p.data, rtol=1e-10, atol=1e-12,
                                       err_msg=f"rank {rank}: {name}")
    # Each server keeps the optimizer state of its own partition; the other ranks' stays untouched (zero).
    groups = partition_parameters([(n, p.data.size) for n, p in reference.named_params()], 2)
    for server, names in enumerate(groups):
        for name in names:
            expected = next(iter(optimizer.state[name].values()))
            np.testing.assert_allclose(ranks[server][f"velocity.{name}"], expected, rtol=1e-10, atol=1e-12)
            for rank in set(range(3)) - {server}:
                assert not ranks[rank][f"velocity.{name}"].any(), (rank, name)
    assert int(ranks[0]["stats.updates"]) == 2 * 5  # 48 training examples in batches of 10, 2 epochs

    # The checkpoint after epoch 1 holds the whole optimizer state (rank 1's partition too), as
    # single-process training has it then; resuming from it ends where two epochs without a stop end.
    _, _, after_one = script.train(False, epochs=1)
    saved = load_checkpoint(tmp_path / "ps.ckpt.npz").optimizer_state
    expected = after_one.state_dict()
    assert sorted(saved) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(saved[key], value, rtol=1e-10, atol=1e-12, err_msg=key)
    assert any(not np.all(saved[f"state.{name}.velocity"] == 0) for name in groups[1])
    for name, p in reference.named_params():
        for rank in range(3):
            np.testing.assert_allclose(ranks[rank][f"resumed.{name}"], p.data, rtol=1e-10, atol=1e-12,
                                       err_msg=f"resumed, rank {rank}: {name}")

    # ps_mode="async" with one worker rank trains as one process does; its checkpoint holds both servers'
    # state too, and resuming from it ends where the single process ends.
    saved = load_checkpoint(tmp_path / "ps_async.ckpt.npz").optimizer_state
    for key, value in expected.items():
        np.testing.assert_allclose(saved[key], value, rtol=1e-10, atol=1e-12, err_msg=f"async: {key}")
    for name, p in reference.named_params():
        for rank in range(3):
            np.testing.assert_allclose(ranks[rank][f"async_resumed.{name}"], p.data, rtol=1e-10, atol=1e-12,
                                       err_msg=f"async, resumed, rank {rank}: {name}")
