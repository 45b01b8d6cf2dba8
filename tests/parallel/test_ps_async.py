"""Asynchronous and stale-synchronous parameter servers on worker processes (the servers in a thread of
the master, talking over the workers' shared-memory world): they learn, every batch is taken once per
epoch, the staleness bound holds, statistics are filled, and a worker that raises or is SIGKILLed is
reported by name without anybody waiting for ever. (MPI: test_ps_async_mpi.py.)"""
import time

import numpy as np
import pytest

import tinyai as ta
from tinyai import losses, nn
from tinyai.data import ArrayDataset
from tinyai.data.mnist import MnistDataSet
from tinyai.optim import SGD, Momentum
from tinyai.parallel.executor import WorkerError
from tinyai.training import AccuracyEval, Model, Trainer
from tinyai.training.checkpoint import load_checkpoint
from tinyai.training.recipes import FixedSplit
from tinyai.parallel.utils import deep_copy_model

from tests.parallel.models import DyingLoss, MeanSquared, ShortBatchLoss, float64_net, regression_data


def _trainer(model, loss=None, optimizer_cls=SGD, epochs=2, batch=4, n=50, x=None, y=None, **options):
    if x is None:
        x, y = regression_data(n)
    trainer = Trainer(epochs, progress=None)  # straggler= is an option of configure_parallel_training only
    trainer.configure_parallel_training(True, 2, "process", parallel_strategy="parameter_server", **options)
    trainer.init(ArrayDataset(x, y, batch_size=batch), model, loss or MeanSquared(), optimizer_cls(model, lr=0.1))
    return trainer


@pytest.mark.slow
@pytest.mark.parametrize("mode, staleness", [("async", None), ("stale", 1)])
def test_process_workers_learn_mnist_asynchronously(mode, staleness, tmp_path):
    mnist = MnistDataSet(100)
    mnist.prepare()
    train, test = mnist.get_train_dataset(), mnist.get_test_dataset()
    ta.seed(0)
    data = FixedSplit(ArrayDataset(train.x[:2000], train.y[:2000], 50), ArrayDataset(test.x[:1000], test.y[:1000], 500))
    model = Model("mnist", nn.MlpBlock("mlp", 50, "relu", 784, 64, 10))
    trainer = Trainer(3, evaluator=AccuracyEval(), progress=None, enable_parallel=True, thread_count=2,
                      parallel_backend="process", parallel_strategy="parameter_server", ps_mode=mode,
                      staleness=staleness, num_servers=2)
    trainer.init(data, model, losses.SoftmaxCrossEntropy(), Momentum(model, lr=0.05, momentum=0.5))
    with trainer:
        history = trainer.train()
        stats = trainer.parallel_stats()
        assignment = trainer._parallel.engine.strategy.last_assignment
        trainer.save_checkpoint(tmp_path / "ps.npz")
    # Whole batches, round robin: each of the epoch's 40 batches taken by exactly one worker.
    assert assignment == [list(range(0, 40, 2)), list(range(1, 40, 2))]
    assert history["loss"][-1] < history["loss"][0] * 0.6, history["loss"]
    assert history["test_accuracy"][-1] > 0.75, history["test_accuracy"]
    assert stats["updates"] == 3 * 40 and sum(stats["staleness_histogram"].values()) == 3 * 40
    entries = sum(p.data.size for p in model.params())
    assert stats["bytes_sent"] == 3 * 40 * 2 * 4 * entries  # a float32 push and pull per step
    assert stats["bytes_dense"] == stats["bytes_sent"]
    # The servers kept their partitions' momentum in the Trainer's optimizer: the checkpoint holds it.
    assert set(trainer.optimizer.state) == {name for name, _ in model.named_params()}
    assert all(np.abs(slot).max() > 0 for slots in trainer.optimizer.state.values() for slot in slots.values())
    saved = load_checkpoint(tmp_path / "ps.npz")
    for name, value in trainer.optimizer.state_dict().items():
        np.testing.assert_array_equal(saved.optimizer_state[name], value, err_msg=name)


def test_stale_synchronous_bound_holds_on_processes_and_async_exceeds_it():
    # Worker 0 is slowed down by 20 ms a step (far more than a step of this small net takes, even on a
    # loaded machine). With staleness s no gradient is more than (W - 1)(2 s + 1) updates late; without
    # the waiting the fast worker runs ahead, and the straggler's pushes arrive late.
    def lags(mode, staleness):
        trainer = _trainer(float64_net(), epochs=1, batch=2, n=100, ps_mode=mode, staleness=staleness,
                           straggler=(0, 0.02))
        with trainer:
            trainer.train(shuffle=False)
            stats = trainer.parallel_stats()
        return stats["staleness_histogram"], stats["wait_time_s"]

    stale, waited = lags("stale", 1)
    assert max(stale) <= 3 and sum(stale.values()) == 40, stale
    assert waited > 0  # the fast worker was held back for the straggler
    free, _ = lags("async", None)
    assert max(free) > 3 and sum(free.values()) == 40, free


def test_a_worker_that_raises_is_named_and_the_other_stops():
    # 40 examples in batches of 7: the short sixth (index 5) goes to worker 5 % 2 = 1 and raises; in
    # lock-step (staleness 0) worker 0 would wait for it for ever if the failure were not passed on.
    trainer = _trainer(float64_net(), ShortBatchLoss(), epochs=1, batch=7, ps_mode="stale", staleness=0)
    with pytest.raises(WorkerError, match="worker 1 failed: ValueError: short batch") as info:
        trainer.train(shuffle=False)
    assert info.value.worker_id == 1
    trainer.shutdown()


@pytest.mark.parametrize("mode, staleness", [("async", None), ("stale", 0)])
def test_a_sigkilled_worker_is_reported_within_seconds_and_nothing_hangs(mode, staleness):
    trainer = _trainer(float64_net(), DyingLoss(), epochs=1, batch=7, ps_mode=mode, staleness=staleness)
    executor = trainer._parallel.engine.executor
    started = time.monotonic()
    with pytest.raises(WorkerError, match=r"worker 1 \(pid \d+\) died") as info:
        trainer.train(shuffle=False)
    assert time.monotonic() - started < 15.0  # a hang guard, not a speed target: it takes well under a second
    assert info.value.worker_id == 1
    assert not executor.alive
    trainer.shutdown()


def test_compressed_async_pushes_on_processes():
    model = float64_net()
    start = deep_copy_model(model)
    trainer = _trainer(model, epochs=3, ps_mode="async", compression="int8")
    with trainer:
        history = trainer.train(shuffle=False)
        stats = trainer.parallel_stats()
    entries = sum(p.data.size for p in model.params())
    # Per push: one byte per value and one float64 scale per tensor (4 tensors), then a dense float64 pull.
    assert stats["bytes_sent"] == 3 * 10 * ((entries + 4 * 8) + entries * 8)
    assert max(abs(p.data - q.data).max() for p, q in zip(model.params(), start.params())) > 1e-3
    assert history["loss"][-1] < history["loss"][0]
