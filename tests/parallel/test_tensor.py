"""Tensor parallelism: split layers equal the unsplit ones (float64), on threads, processes and MPI.

Each launch runs ``tensor_programs.tensor_parallel_suite`` on every rank: the
column/row layers, both MLPs, attention (self and cross, with masks), a whole
Transformer encoder layer, the four operators' backwards and a gradcheck
across ranks, then a few training steps. Every rank's results are compared
here with the unsplit layers' (computed in the programs from the ordinary
layers, and for training in this process).
"""
import numpy as np
import pytest

from tinyai import nn, optim
import tinyai.functions as F
from tinyai.autograd import Variable
from tinyai.nn.transformer import FeedForward
from tinyai.parallel import SpmdError, ThreadWorld, spmd
from tinyai.parallel.tensor import (
    ColumnParallelLinear,
    RowParallelLinear,
    TensorParallelAttention,
    TensorParallelMLP,
    full_optimizer_state,
    full_state_dict,
    load_full_optimizer_state,
    load_full_state_dict,
    tensor_parallel,
)
from tinyai.training.checkpoint import load_checkpoint, save_checkpoint

from tests.parallel import tensor_programs as programs
from tests.parallel.mpi_launch import needs_mpi, run_mpi
from tests.parallel.test_mpi import LAUNCH_TIMEOUT


RTOL, ATOL = 1e-10, 1e-12


def check_suite(results, reference):
    """Every rank's pairs agree, and its trained weights and optimizer state equal single-process training's."""
    for rank, result in enumerate(results):
        pairs = result["exactness"]
        assert len(pairs) > 100
        for what, (split, whole) in pairs.items():
            split, whole = np.asarray(split), np.asarray(whole)
            if whole.dtype.kind in "USb":
                assert split.tolist() == whole.tolist(), f"rank {rank}: {what}"
                continue
            assert split.shape == whole.shape, f"rank {rank}: {what}: {split.shape} != {whole.shape}"
            np.testing.assert_allclose(split, whole, rtol=RTOL, atol=ATOL, err_msg=f"rank {rank}: {what}")
        for model, state in reference.items():
            trained = result["training"][model]
            assert sorted(trained) == sorted(state), model
            for name, value in state.items():
                np.testing.assert_allclose(trained[name], value, rtol=RTOL, atol=ATOL,
                                           err_msg=f"rank {rank}: {model} {name}")


@pytest.fixture(scope="module")
def single_process_training():
    return programs.train_single()


@pytest.mark.parametrize("ranks", [1, 2, 4])
def test_split_layers_equal_unsplit_on_threads(ranks, single_process_training):
    check_suite(spmd(programs.tensor_parallel_suite, ranks), single_process_training)


@pytest.mark.parametrize("ranks", [1, 2, 4])
def test_split_layers_equal_unsplit_on_processes(ranks, single_process_training):
    check_suite(spmd(programs.tensor_parallel_suite, ranks, backend="process", timeout=120), single_process_training)


@needs_mpi
def test_split_layers_equal_unsplit_under_mpiexec(tmp_path, single_process_training):
    run_mpi(2, "tests.parallel.tensor_programs", "tensor", tmp_path, timeout=LAUNCH_TIMEOUT)
    results = [programs.unflatten(dict(np.load(tmp_path / f"rank{r}.npz", allow_pickle=False))) for r in range(2)]
    check_suite(results, single_process_training)


def test_the_training_really_moves_the_weights(single_process_training):
    # Guards the comparison above against a vacuous pass (e.g. a zero learning rate).
    mlp, enc, *_ = programs.training_problem()
    for model, start in (("mlp", mlp), ("encoder", enc)):
        moved = [np.abs(single_process_training[model][name] - value).max()
                 for name, value in start.state_dict().items()]
        assert max(moved) > 1e-3, model


def test_checkpoints_hold_the_unsplit_weights_and_load_into_shards(tmp_path):
    ff = programs.build(21, lambda: FeedForward(4, 8, "relu"))
    path = tmp_path / "tp.npz"

    def program(comm):
        split = TensorParallelMLP.from_block(ff, comm)
        adam = optim.Adam(split, lr=0.01)
        F.sum(split(np.ones((2, 4))) ** 2).backward()
        adam.update()
        state = full_state_dict(split)  # collectives: every rank gathers...
        moments = full_optimizer_state(split, adam)
        if comm.rank == 0:  # ...and one writes
            save_checkpoint(path, state, moments, epoch=3)
        comm.barrier()
        # Load the file back into fresh shards of another layer: they must become what was saved.
        fresh = TensorParallelMLP.from_block(programs.build(22, lambda: FeedForward(4, 8, "relu")), comm)
        checkpoint = load_checkpoint(path)
        load_full_state_dict(fresh, checkpoint.model_state)
        fresh_adam = optim.Adam(fresh, lr=0.01)
        load_full_optimizer_state(fresh, fresh_adam, checkpoint.optimizer_state)
        return (full_state_dict(split), full_state_dict(fresh), split.fc1.W.data.copy(),
                full_optimizer_state(fresh, fresh_adam))

    results = spmd(program, 2)
    checkpoint = load_checkpoint(path)
    assert checkpoint.epoch == 3
    whole = FeedForward(4, 8, "relu")
    whole.load_state_dict(checkpoint.model_state)  # a single-process model reads it
    saved, loaded, shard, _ = results[0]
    assert shard.shape == (4, 4)  # rank 0 held half the columns...
    assert checkpoint.model_state["fc1.W"].shape == (4, 8)  # ...and the file holds all of them, in rank order
    np.testing.assert_array_equal(checkpoint.model_state["fc1.W"][:, :4], shard)
    np.testing.assert_array_equal(checkpoint.model_state["fc1.W"][:, 4:], results[1][2])
    assert np.abs(checkpoint.model_state["fc1.W"] - ff.fc1.W.data).max() > 1e-3  # the trained weights
    for name in saved:
        np.testing.assert_array_equal(loaded[name], saved[name])
        np.testing.assert_array_equal(results[1][1][name], saved[name])
    # Adam's moments were gathered whole into the file and cut into the fresh shards again.
    assert checkpoint.optimizer_state["state.fc1.W.m"].shape == (4, 8)
    moments = np.abs(checkpoint.optimizer_state["state.fc1.W.m"])
    assert moments[:, :4].max() > 0 and moments[:, 4:].max() > 0  # both ranks' halves are there
    single = optim.Adam(whole, lr=0.01)
    single.load_state_dict(checkpoint.optimizer_state)  # a single-process optimizer reads them too
    for rank in range(2):
        for key, value in checkpoint.optimizer_state.items():
            np.testing.assert_array_equal(results[rank][3][key], value, err_msg=key)


def _comm(size=1):
    return ThreadWorld(size).communicator(0)


def test_bad_splits_and_communicators_are_clear_errors():
    def indivisible(comm):
        ColumnParallelLinear(8, 10, comm)

    with pytest.raises(SpmdError, match=r"out_features=10 is not divisible by the 4 ranks.*uneven=True.*"
                                        r"blocks of 3, 3, 2, 2"):
        spmd(indivisible, 4)

    def too_few(comm):
        RowParallelLinear(3, 2, comm, uneven=True)

    with pytest.raises(SpmdError, match=r"in_features=3 cannot be split over 4 ranks"):
        spmd(too_few, 4)

    def heads(comm):
        TensorParallelAttention.from_block(nn.MultiHeadAttention(12, 6), comm)

    with pytest.raises(SpmdError, match=r"num_heads=6 is not divisible by the 4 ranks"):
        spmd(heads, 4)

    def wrong_input(comm):
        RowParallelLinear(8, 2, comm)(np.zeros((3, 8)))  # the whole input, but the layer expects its block

    with pytest.raises(SpmdError, match=r"rank \d of 2\): expected its block \(features \d:\d+\) of the input "
                                        r"with 4 features on the last axis, got shape \(3, 8\)"):
        spmd(wrong_input, 2)

    with pytest.raises(TypeError, match=r"comm must be a tinyai Communicator.*got int"):
        ColumnParallelLinear(4, 4, 2)
    with pytest.raises(TypeError, match=r"expected a FeedForward or a two-layer MlpBlock, got Linear"):
        TensorParallelMLP.from_block(nn.Linear(3, 4), _comm())
    with pytest.raises(ValueError, match=r"exactly one hidden layer.*sizes \[4, 8, 8, 2\]"):
        TensorParallelMLP.from_block(nn.MlpBlock("deep", 1, "relu", 4, 8, 8, 2), _comm())
    with pytest.raises(ValueError, match=r"has dropout 0.1.*dropout=0.0"):
        TensorParallelMLP.from_block(FeedForward(4, 8, dropout=0.1), _comm())


def test_a_checkpoint_of_the_wrong_shapes_is_refused_naming_them():
    def program(comm):
        split = TensorParallelMLP.from_block(FeedForward(4, 8), comm)
        before = full_state_dict(split)
        wrong = dict(FeedForward(4, 6).state_dict())  # another hidden size
        try:
            load_full_state_dict(split, wrong)
        except ValueError as error:
            message = str(error)
        after = full_state_dict(split)
        return message, all(np.array_equal(before[k], after[k]) for k in before)

    message, unchanged = spmd(program, 2)[0]
    assert "tensor-parallel over 2 ranks; shapes are the unsplit model's" in message
    assert "fc1.W (expected (4, 8), got (4, 6))" in message and "fc2.W (expected (8, 4), got (6, 4))" in message
    assert unchanged
    with pytest.raises(ValueError, match=r"'W' has shape \(3, 4\), the unsplit layer's is \(4, 4\); missing 'b'"):
        ColumnParallelLinear(4, 4, _comm()).load_full_state_dict({"W": np.zeros((3, 4))})


def test_tensor_parallel_leaves_the_original_alone_and_keeps_names():
    enc = nn.TransformerEncoderLayer(8, 4, 16)
    split = tensor_parallel(enc, _comm())
    assert isinstance(split.self_attn, TensorParallelAttention) and isinstance(split.ffn, TensorParallelMLP)
    assert isinstance(enc.self_attn, nn.MultiHeadAttention)
    assert [n for n, _ in split.named_params()] == [n for n, _ in enc.named_params()]
    x = np.random.default_rng(0).standard_normal((2, 3, 8)).astype(np.float32)
    np.testing.assert_allclose(split(x).data, enc(x).data, rtol=1e-5)


def test_split_layers_run_on_device_arrays():
    # The CuPy stand-in takes the device code path on the CPU: shards, collectives and gradients stay on
    # the "device", and the results equal the unsplit layer's.
    from tinyai.backend import to_cpu
    from tinyai.testing.standin import StandInArray, xp

    ff = programs.build(41, lambda: FeedForward(4, 8, "gelu"))
    x = np.random.default_rng(0).standard_normal((3, 4))
    y_whole = ff(x)
    F.sum(y_whole * y_whole).backward()

    def program(comm):
        split = TensorParallelMLP.from_block(ff, comm)
        for p in split.params():
            p.data = xp.asarray(p.data)
        y = split(Variable(xp.asarray(x)))
        F.sum(y * y).backward()
        on_device = isinstance(y.data, StandInArray) and isinstance(split.fc1.W.grad.data, StandInArray)
        return to_cpu(y.data), {k: to_cpu(v) for k, v in programs.full_grads(split).items()}, on_device

    for y, grads, on_device in spmd(program, 2):
        assert on_device
        np.testing.assert_allclose(y, y_whole.data, rtol=1e-10)
        for name, p in ff.named_params():
            np.testing.assert_allclose(grads[name], p.grad.data, rtol=1e-10, err_msg=name)
