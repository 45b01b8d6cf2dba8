"""MPI data parallelism, launched for real: ``mpiexec -n K python -m tests.parallel.mpi_train_script``.

Every rank writes its final state to a file; these tests compare the files
with single-thread training done here, in the test process, from the same
set-up functions. The test process itself never initialises MPI.
"""
import json
import re
import sys

import numpy as np
import pytest

import tinyai as ta
from tinyai import optim
from tinyai.parallel.utils import deep_copy_model
from tinyai.training import AccuracyEval, Trainer

from tests.parallel import mpi_train_script as script
from tests.parallel.mpi_launch import MPIEXEC, launch, needs_mpi
from tests.parallel.models import ClassLoss

LAUNCH_TIMEOUT = 120  # seconds; a launch that takes longer is a hang, and is killed


def _launch(args, out, ranks=None):
    """Run the script (under mpiexec -n ``ranks``, or alone); (exit code, stdout + stderr).

    The launch runs in its own process group, killed whole if it outlives LAUNCH_TIMEOUT.
    """
    command = [sys.executable, "-m", "tests.parallel.mpi_train_script", *args, str(out)]
    if ranks is not None:
        command = [MPIEXEC, "-n", str(ranks), *command]
    return launch(command, LAUNCH_TIMEOUT)


def _rank_files(out, scenario, ranks):
    return [dict(np.load(out / f"{scenario}.rank{k}.npz", allow_pickle=False)) for k in range(ranks)]


@pytest.fixture(scope="module", params=[2, 3], ids=["2-ranks", "3-ranks"])
def trained(request, tmp_path_factory):
    """(ranks, output folder, per-rank results) of one launch of the "train" scenario."""
    ranks = request.param
    out = tmp_path_factory.mktemp(f"mpi{ranks}")
    code, output = _launch(["train"], out, ranks)
    assert code == 0, output
    return ranks, out, _rank_files(out, "train", ranks)


def _single_thread_steps(setup):
    """What the script's run_engine_steps must reproduce, on one thread with no MPI."""
    model, loss, batches = setup()
    ta.seed(99)
    losses = []
    for x, y in batches:
        model.clear_grads()
        value = loss.loss(ta.Variable(y, requires_grad=False), model(ta.Variable(x, requires_grad=False)))
        value.backward()
        losses.append(float(value.item()))
        script.sgd(model)
    return model, losses, ta.backend.get_rng().random()


def _assert_state(result, model, prefix):
    names = 0
    for key, expected in script.state_of(model, prefix).items():
        np.testing.assert_allclose(result[key], expected, rtol=1e-10, atol=1e-12, err_msg=key)
        names += 1
    assert names == len([k for k in result if k.startswith(prefix + "param:") or k.startswith(prefix + "buffer:")])


@needs_mpi
@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_steps_equal_single_thread_training(trained, name):
    _, _, results = trained
    model, losses, next_draw = _single_thread_steps(script.mlp_setup if name == "mlp" else script.cnn_setup)
    if name == "cnn":
        assert any(key.startswith("cnn.buffer:") for key in results[0])  # batch norm's running statistics
    _assert_state(results[0], model, f"{name}.")
    np.testing.assert_allclose(results[0][f"{name}.losses"], losses, rtol=1e-10)
    # Dropout replayed the single-thread stream: it ends where single-thread training left it.
    assert float(results[0][f"{name}.next_draw"]) == next_draw


@needs_mpi
def test_ranks_stay_bit_identical_without_a_broadcast(trained):
    _, _, results = trained
    for other in results[1:]:
        assert other.keys() == results[0].keys()
        for key, value in results[0].items():
            if key == "trainer.history":  # epoch times differ; the numbers must not
                value, mine = (json.loads(str(h[key])) for h in (results[0], other))
                del value["time"], mine["time"]
                assert mine == value
            else:
                np.testing.assert_array_equal(other[key], value, err_msg=key)


@needs_mpi
def test_trainer_on_mpi_equals_single_thread_and_only_rank0_talks(trained):
    ranks, out, results = trained
    model, dataset = script.trainer_setup()
    reference = deep_copy_model(model)
    ta.seed(123)
    with Trainer(2, evaluator=AccuracyEval(), progress=None) as trainer:
        trainer.init(dataset, reference, ClassLoss(), optim.SGD(reference, lr=script.LR))
        history = trainer.train()
    _assert_state(results[0], reference, "trainer.")
    mpi_history = json.loads(str(results[0]["trainer.history"]))
    np.testing.assert_allclose(mpi_history["loss"], history["loss"], rtol=1e-10)
    assert mpi_history["train_accuracy"] == history["train_accuracy"]  # predictions gathered from all ranks
    assert mpi_history["test_accuracy"] == history["test_accuracy"]
    assert int(results[0]["trainer.workers"]) == ranks and bool(results[0]["trainer.enabled"])
    # Progress lines and the checkpoint come from rank 0 alone.
    lines = (out / "stdout.rank0").read_text().splitlines()
    assert [line.split(":")[0] for line in lines if line.startswith("epoch")] == ["epoch 1/2", "epoch 2/2"]
    stats = [line for line in lines if not line.startswith("epoch")]
    assert len(stats) == 2 and all(re.match(rf"parallel training stats \[threads: {ranks}, successful "
                                            r"batches: (\d+)/\1, average loss", line) for line in stats), stats
    for k in range(1, ranks):
        assert (out / f"stdout.rank{k}").read_text() == ""
    assert sorted(p.name for p in out.glob("checkpoint.*")) == ["checkpoint.rank0.npz"]


@needs_mpi
def test_communicator_sums_ints_floats_and_arrays_in_their_own_type(trained):
    ranks, _, results = trained
    r = results[-1]
    triangle = ranks * (ranks + 1) // 2  # sum of rank + 1 over the ranks
    assert r["comm.int"] == triangle and str(r["comm.int_type"]) == "int"
    assert r["comm.np_int"] == triangle and str(r["comm.np_int_type"]) == "int64"
    assert r["comm.float"] == 0.5 * ranks and str(r["comm.float_type"]) == "float"
    expected = np.arange(6, dtype=np.float32).reshape(2, 3) * triangle
    assert r["comm.array"].dtype == np.float32 and r["comm.array"].shape == (2, 3)
    np.testing.assert_array_equal(r["comm.array"], expected)


@needs_mpi
def test_failing_shard_raises_the_same_error_on_every_rank(tmp_path):
    code, output = _launch(["fail"], tmp_path, ranks=2)
    assert code == 0, output
    for result in _rank_files(tmp_path, "fail", 2):
        assert int(result["worker_id"]) == 1
        assert str(result["error"]) == ("data parallel: worker 1 failed on its shard of 5 examples: "
                                        "ValueError: exploding loss: negative first target")
    # With on_error="skip" the gradient is rank 0's shard's mean gradient (rows 0..4), not half of it.
    model, loss, batches = script.mlp_setup()
    x, y = batches[0][0][:5], np.abs(batches[0][1][:5])
    value = loss.loss(ta.Variable(y), model(ta.Variable(x)))
    value.backward()
    for result in _rank_files(tmp_path, "fail", 2):
        assert result["skip.counts"].tolist() == [1, 1, 5]
        np.testing.assert_allclose(float(result["skip.loss"]), float(value.item()), rtol=1e-12)
        for name, p in model.named_params():
            np.testing.assert_allclose(result[f"skip.grad:{name}"], p.grad.data, rtol=1e-12, err_msg=name)


@needs_mpi
def test_failure_after_synchronised_batch_norm_aborts_the_job(tmp_path):
    code, output = _launch(["fail-bn"], tmp_path, ranks=2)
    assert code != 0
    assert "rank 1 failed inside a step whose layers exchange data" in output
    assert "exploding class loss: first label is 3" in output
    assert not list(tmp_path.glob("*.npz"))  # no rank got past the failed step


@needs_mpi
def test_failure_before_batch_norm_aborts_after_the_failure_timeout(tmp_path):
    # Rank 0 waits inside batch norm for rank 1, which failed before it: only the timeout can end it.
    code, output = _launch(["fail-early"], tmp_path, ranks=2)
    assert code != 0
    assert "rank 1 failed on its shard and its peers did not answer within 1 s" in output
    assert "failing before batch norm" in output


@needs_mpi
def test_without_mpiexec_the_trainer_falls_back_to_single_thread(tmp_path):
    code, output = _launch(["single"], tmp_path)
    assert code == 0, output
    assert "the MPI job has a single rank" in output
    result = _rank_files(tmp_path, "single", 1)[0]
    assert not bool(result["trainer.enabled"]) and int(result["trainer.workers"]) == 1
    model, dataset = script.trainer_setup()
    ta.seed(123)
    with Trainer(2, evaluator=AccuracyEval(), progress=None) as trainer:
        trainer.init(dataset, model, ClassLoss(), optim.SGD(model, lr=script.LR))
        trainer.train()
    _assert_state(result, model, "trainer.")


# -- in this process, without MPI ------------------------------------------------------------------

def test_bad_on_error_is_refused_before_mpi_is_needed():
    from tinyai.parallel import DataParallel

    with pytest.raises(ValueError, match=r"on_error must be one of \('raise', 'skip'\), got 'ignore'"):
        DataParallel(object(), ClassLoss(), backend="mpi", on_error="ignore")


def test_missing_mpi4py_names_the_extra(monkeypatch):
    from tinyai.parallel import DataParallel

    monkeypatch.setitem(sys.modules, "mpi4py", None)  # makes "from mpi4py import MPI" fail
    with pytest.raises(ImportError, match=r"pip install 'tinyai-numpy\[mpi\]'"):
        DataParallel(object(), ClassLoss(), backend="mpi")


def test_trainer_accepts_the_mpi_backend_and_auto_never_chooses_it():
    from tinyai.parallel.auto import choose_backend
    import inspect

    Trainer(1, enable_parallel=True, parallel_backend="mpi").shutdown()  # nothing starts before init
    with pytest.raises(ValueError, match="backend must be one of .*'mpi'"):
        Trainer(1, enable_parallel=True, parallel_backend="mpich")
    assert "mpi" not in inspect.signature(choose_backend).parameters["candidates"].default
