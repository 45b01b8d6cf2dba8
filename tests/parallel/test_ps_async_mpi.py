"""Asynchronous and stale-synchronous parameter servers under a real ``mpiexec -n 3``: rank 0 serves,
ranks 1 and 2 train (tests/parallel/ps_async_mpi_script.py)."""
import numpy as np
import pytest

from tests.parallel import ps_async_mpi_script as script
from tests.parallel.mpi_launch import launch_mpi, needs_mpi, run_mpi
from tinyai.training.checkpoint import load_checkpoint


@pytest.mark.slow
@needs_mpi
def test_async_and_stale_parameter_servers_train_under_mpiexec(tmp_path):
    run_mpi(3, "tests.parallel.ps_async_mpi_script", tmp_path, "train", timeout=180)
    ranks = []
    for rank in range(3):
        with np.load(tmp_path / f"rank{rank}.npz", allow_pickle=False) as f:
            ranks.append(dict(f))
    for mode in ("async", "stale"):
        first = ranks[0]
        for rank in (1, 2):  # every rank ends each epoch with the server's parameters and the same statistics
            for key, value in first.items():
                if key.startswith(f"{mode}.") and ".velocity." not in key:
                    np.testing.assert_array_equal(ranks[rank][key], value, err_msg=f"rank {rank}: {key}")
        loss, accuracy = first[f"{mode}.loss"], first[f"{mode}.test_accuracy"]
        assert loss[-1] < 0.5 * loss[0] and accuracy[-1] > 0.7, (mode, loss, accuracy)
        # 1,000 training images in batches of 25: 40 batches an epoch, each taken once, three epochs.
        steps = 3 * 40
        assert int(first[f"{mode}.stats.updates"]) == steps
        staleness = first[f"{mode}.staleness"]
        assert staleness[:, 1].sum() == steps
        entries = sum(v.size for k, v in first.items() if k.startswith(f"{mode}.param."))
        pull = 4 * entries  # float32
        push = (2 if mode == "async" else 4) * entries  # async pushes float16, stale pushes float32
        assert int(first[f"{mode}.stats.bytes_sent"]) == steps * (push + pull)
        assert int(first[f"{mode}.stats.bytes_dense"]) == steps * 2 * 4 * entries
        # The momentum lives with the server (rank 0); the workers' optimizers never update.
        velocities = [k for k in first if k.startswith(f"{mode}.velocity.")]
        assert velocities and all(np.abs(first[k]).max() > 0 for k in velocities)
        assert all(not ranks[r][k].any() for r in (1, 2) for k in velocities)
    # Stale-synchronous with staleness 1 and worker 0 slowed down: no push more than (W - 1)(2 s + 1) = 3
    # updates late, and the fast worker had to wait.
    assert ranks[0]["stale.staleness"][:, 0].max() <= 3, ranks[0]["stale.staleness"]
    assert float(ranks[0]["stale.stats.wait_time_s"]) > 0
    assert "leaves no worker; launch at least 4 ranks" in str(ranks[0]["refusal"])
    # One worker and two server ranks: the same numbers as sequential training in one process, on every
    # rank, and the checkpoint rank 0 wrote holds the momentum both servers kept.
    reference, history, _, optimizer = script.train(parallel=False)
    for name, p in reference.named_params():
        for rank in range(3):
            np.testing.assert_allclose(ranks[rank][f"two.param.{name}"], p.data, rtol=1e-5, atol=1e-6,
                                       err_msg=f"rank {rank}: {name}")
    np.testing.assert_allclose(ranks[0]["two.loss"], history["loss"], rtol=1e-5)
    saved = load_checkpoint(tmp_path / "two_servers.npz")
    for key, value in optimizer.state_dict().items():
        np.testing.assert_allclose(saved.optimizer_state[key], value, rtol=1e-5, atol=1e-6, err_msg=key)


@needs_mpi
def test_a_failing_async_worker_rank_ends_the_job_with_its_error(tmp_path):
    code, output = launch_mpi(3, "tests.parallel.ps_async_mpi_script", tmp_path, "fail", timeout=120)
    assert code != 0
    # Every rank (the server too) reports the worker that failed, instead of waiting for it.
    assert output.count("WorkerError: parameter server (ps_mode='stale'): worker 1 (rank 2) failed: "
                        "ValueError: short batch") == 3, output
