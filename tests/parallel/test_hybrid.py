"""Hybrid parallelism: 4 ranks as 2 x 2 grids (data x tensor, data x pipeline) trained by the Trainer.

The grid's training must give the weights of one process training the
unsplit model on the same batches (float64), on threads and under
``mpiexec -n 4``; only data-parallel rank 0 of each model group prints, and
only global rank 0 writes the (whole-model) checkpoint.
"""
import numpy as np
import pytest

from tinyai import nn
from tinyai.parallel import HybridParallel, ProcessGrid, SpmdError, ThreadWorld, spmd
from tinyai.training import Trainer
from tinyai.training.checkpoint import load_checkpoint

from tests.parallel import tensor_programs as programs
from tests.parallel.mpi_launch import needs_mpi, run_mpi
from tests.parallel.test_mpi import LAUNCH_TIMEOUT

KINDS = ("tensor", "pipeline")


@pytest.fixture(scope="module")
def single_process():
    return {kind: programs.hybrid_single(kind) for kind in KINDS}


def check_weights(weights, reference, what):
    assert sorted(weights) == sorted(reference), what
    for name, value in reference.items():
        np.testing.assert_allclose(weights[name], value, rtol=1e-10, atol=1e-12, err_msg=f"{what}: {name}")


def test_training_really_moves_the_weights(single_process):
    for kind in KINDS:
        start = programs.hybrid_problem(kind)[0].state_dict()
        assert max(np.abs(single_process[kind][k] - v).max() for k, v in start.items()) > 1e-2, kind


@pytest.mark.parametrize("kind", KINDS)
def test_a_2x2_grid_on_threads_trains_like_one_process(kind, single_process, tmp_path):
    results = spmd(programs.hybrid_train, 4, args=(kind, str(tmp_path)), timeout=120)
    for rank, result in enumerate(results):
        check_weights(result["weights"], single_process[kind], f"{kind}, rank {rank}")
        data_rank, model_rank = result["grid"]
        assert (data_rank, model_rank) == divmod(rank, 2)
        # Progress: data-parallel rank 0 of each model group prints (ranks 0 and 1), the others are silent.
        if data_rank == 0:
            assert "epoch 2/2: loss" in result["progress"], result["progress"]
        else:
            assert result["progress"] == ""
    # Only global rank 0 wrote its checkpoint, and it holds the whole model a single process loads.
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{kind}-rank0.npz"]
    checkpoint = load_checkpoint(tmp_path / f"{kind}-rank0.npz")
    assert checkpoint.epoch == 2
    check_weights(checkpoint.model_state, single_process[kind], f"{kind} checkpoint")
    whole = programs.hybrid_problem(kind)[0]
    whole.load_state_dict(checkpoint.model_state)
    assert checkpoint.optimizer_state["state.fc1.W.m"].shape == whole.fc1.W.data.shape
    # The last step's timeline: every rank recorded its work and the gradient all-reduce after it.
    for result in results:
        phases = [phase for _, phase, *_ in result["events"]]
        assert phases[-1] == "AR"
        assert all(start <= end for *_, start, end in result["events"])
        if kind == "pipeline":
            assert phases[:-1] == ["F", "F", "F", "B", "B", "B"]


@needs_mpi
def test_2x2_grids_under_mpiexec_train_like_one_process(single_process, tmp_path):
    run_mpi(4, "tests.parallel.tensor_programs", "hybrid", tmp_path, timeout=LAUNCH_TIMEOUT)
    for rank in range(4):
        flat = dict(np.load(tmp_path / f"hybrid-rank{rank}.npz", allow_pickle=False))
        for kind in KINDS:
            weights = {k.split("|", 1)[1]: v for k, v in flat.items() if k.startswith(kind + "|") and
                       not k.endswith("|progress")}
            check_weights(weights, single_process[kind], f"mpi {kind}, rank {rank}")
            assert bool(str(flat[f"{kind}|progress"])) == (rank < 2)
    assert sorted(p.name for p in tmp_path.glob("*-rank*.npz") if not p.name.startswith("hybrid")) == \
        ["pipeline-rank0.npz", "tensor-rank0.npz"]


def test_the_grid_splits_ranks_into_replicas_and_parts():
    def program(comm):
        grid = ProcessGrid(comm, data=3, pipeline=2)
        # Who is in my groups: the sum of world ranks over each sub-communicator.
        return (grid.data_rank, grid.model_rank, grid.pipeline.size, grid.data.size, grid.tensor,
                int(grid.model.allreduce(comm.rank)), int(grid.data.allreduce(comm.rank)))

    results = spmd(program, 6)
    for rank, (d, m, model_size, data_size, tensor, model_sum, data_sum) in enumerate(results):
        assert (d, m, model_size, data_size, tensor) == (rank // 2, rank % 2, 2, 3, None)
        assert model_sum == 2 * (rank // 2) * 2 + 1  # ranks 2d and 2d + 1
        assert data_sum == sum(2 * k + rank % 2 for k in range(3))  # ranks m, m + 2, m + 4


def test_bad_grids_and_strategies_are_clear_errors():
    comm = ThreadWorld(1).communicator(0)
    with pytest.raises(SpmdError, match=r"data=2 x tensor=2 needs 4 ranks, but the communicator has 3"):
        spmd(lambda c: ProcessGrid(c, data=2, tensor=2), 3)
    with pytest.raises(ValueError, match=r"give exactly one of tensor= and pipeline="):
        ProcessGrid(comm, data=1, tensor=1, pipeline=1)
    with pytest.raises(ValueError, match=r"data must be an int >= 1, got 0"):
        ProcessGrid(comm, data=0, tensor=1)
    with pytest.raises(TypeError, match=r"expected a ProcessGrid, got str"):
        HybridParallel("grid")

    def clipped(c):
        grid = ProcessGrid(c, data=2, tensor=1)
        model, dataset, loss, _ = programs.hybrid_problem("tensor")
        from tinyai import optim
        Trainer(1, strategy=HybridParallel(grid), dataset=dataset, model=model, loss=loss,
                optimizer=optim.SGD(model, lr=0.1, max_grad_norm=1.0), progress="off").train()

    with pytest.raises(SpmdError, match=r"max_grad_norm clips by the norm of all gradients"):
        spmd(clipped, 2)

    def split_over_the_world(c):
        grid = ProcessGrid(c, data=2, tensor=2)
        model, dataset, loss, make_optimizer = programs.hybrid_problem("tensor")
        model = programs.tensor_parallel(model, c)  # all 4 ranks, not the grid's tensor group of 2
        Trainer(1, strategy=HybridParallel(grid), dataset=dataset, model=model, loss=loss,
                optimizer=make_optimizer(model), progress="off")

    with pytest.raises(SpmdError, match=r"split layers use a communicator of 4 ranks, but the grid's tensor "
                                        r"groups have 2; split the model over grid.tensor"):
        spmd(split_over_the_world, 4)
