"""Trainer(enable_parallel=True): TinyAI's parallel API, equal results, faults and clean-up."""
import logging
import os
import signal
import threading

import numpy as np
import pytest

import tinyai as ta
from tinyai import optim
from tinyai.backend import default_dtype
from tinyai.data import ArrayDataset
from tinyai.parallel.utils import deep_copy_model
from tinyai.training import Trainer

from tests.parallel.process_checks import ended_within
from tests.parallel.models import ClassLoss, ConvBatchNormNet, DropoutNet, ExplodingLoss, MeanSquared, TwoLayerNet


def _regression_data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 6)), rng.standard_normal((n, 3))


def _train(model, dataset, loss, max_epoch=2, lr=0.1, **kwargs):
    ta.seed(123)  # shuffling draws from the global stream: same order in every run
    with Trainer(max_epoch, progress=None, **kwargs) as trainer:
        trainer.init(dataset, model, loss, optim.SGD(model, lr=lr))
        history = trainer.train()
        enabled = trainer.is_parallel_training_enabled()
        workers = trainer.get_parallel_thread_count()
    return history, enabled, workers


def _float64_model(cls, seed=7):
    with default_dtype(np.float64):
        ta.seed(seed)
        return cls()


def _assert_same(model, reference, rtol=1e-10):
    for (name, p), (_, q) in zip(model.named_params(), reference.named_params()):
        np.testing.assert_allclose(p.data, q.data, rtol=rtol, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("backend,workers", [("thread", 2), ("thread", 3), ("process", 2)])
def test_parallel_trainer_equals_single_thread(backend, workers):
    x, y = _regression_data()
    master = _float64_model(TwoLayerNet)
    reference = deep_copy_model(master)
    single, _, _ = _train(reference, ArrayDataset(x, y, batch_size=10), MeanSquared())
    parallel, enabled, used = _train(master, ArrayDataset(x, y, batch_size=10), MeanSquared(),
                                     enable_parallel=True, thread_count=workers, parallel_backend=backend)
    assert enabled and used == workers
    _assert_same(master, reference)
    np.testing.assert_allclose(parallel["loss"], single["loss"], rtol=1e-10)


def test_parallel_trainer_with_batch_norm_and_dropout_and_accumulation():
    rng = np.random.default_rng(3)
    x, labels = rng.standard_normal((24, 1, 6, 6)), rng.integers(0, 4, 24)
    master = _float64_model(ConvBatchNormNet)
    reference = deep_copy_model(master)
    _train(reference, ArrayDataset(x, labels, batch_size=7), ClassLoss(), accumulate_steps=2)
    _train(master, ArrayDataset(x, labels, batch_size=7), ClassLoss(), accumulate_steps=2,
           enable_parallel=True, thread_count=3, parallel_backend="thread")
    _assert_same(master, reference)
    for (name, a), (_, b) in zip(master.named_buffers(), reference.named_buffers()):
        np.testing.assert_allclose(a, b, rtol=1e-10, err_msg=name)

    x, y = _regression_data(30, seed=4)
    master = _float64_model(DropoutNet)
    reference = deep_copy_model(master)
    _train(reference, ArrayDataset(x, y, batch_size=10), MeanSquared())
    _train(master, ArrayDataset(x, y, batch_size=10), MeanSquared(), enable_parallel=True, thread_count=2,
           parallel_backend="thread")
    _assert_same(master, reference)


def test_accumulation_averages_batches_weighted_by_size():
    # The 12 training examples come in batches of 10 and 2; accumulated over
    # two batches, they make one SGD step on the mean loss of all 12.
    x, y = _regression_data(15)
    model = _float64_model(TwoLayerNet)
    reference = deep_copy_model(model)
    with Trainer(1, progress=None, accumulate_steps=2) as trainer:
        trainer.init(ArrayDataset(x, y, batch_size=10), model, MeanSquared(), optim.SGD(model, lr=0.1))
        assert [b.size for b in trainer.train_set.get_batches()] == [10, 2]
        trainer.train(shuffle=False)
        train_x, train_y = trainer.train_set.x, trainer.train_set.y
    loss = MeanSquared().loss(ta.Variable(train_y), reference(ta.Variable(train_x)))
    loss.backward()
    for p in reference.params():
        p.data -= 0.1 * p.grad.data
    _assert_same(model, reference)


def test_configure_at_any_time_and_state_queries():
    x, y = _regression_data()
    model = _float64_model(TwoLayerNet)
    trainer = Trainer(1, progress=None)
    trainer.init(ArrayDataset(x, y, batch_size=10), model, MeanSquared(), optim.SGD(model, lr=0.1))
    assert not trainer.is_parallel_training_enabled() and trainer.get_parallel_thread_count() == 1
    trainer.configure_parallel_training(True, thread_count=2, backend="thread")
    assert trainer.is_parallel_training_enabled() and trainer.get_parallel_thread_count() == 2
    first_pool = trainer._parallel.engine
    trainer.configure_parallel_training(True, thread_count=3, backend="thread")
    assert first_pool.executor is None  # the old pool was shut down first
    assert trainer.get_parallel_thread_count() == 3
    trainer.shutdown()
    trainer.shutdown()  # idempotent
    assert not trainer.is_parallel_training_enabled()
    with pytest.raises(RuntimeError, match=r"Trainer.train: data-parallel training is closed \(shutdown\(\) was "
                                           r"called\); call configure_parallel_training"):
        trainer.train()  # never silently single-threaded
    assert trainer.epoch == 0
    trainer.configure_parallel_training(True, thread_count=2, backend="thread")  # asked: a new pool
    trainer.train()
    assert trainer.epoch == 1 and trainer.get_parallel_thread_count() == 2
    trainer.shutdown()


@pytest.mark.parametrize("bad", [-1, 1.5, "2", True])
def test_invalid_thread_counts(bad):
    with pytest.raises(ValueError, match="thread_count"):
        Trainer(1, enable_parallel=True, thread_count=bad)
    trainer = Trainer(1)
    with pytest.raises(ValueError, match="thread_count"):
        trainer.configure_parallel_training(True, thread_count=bad)


def test_workers_are_capped_by_samples_per_batch_not_by_batches(caplog):
    # One batch of 6 samples: TinyAI's rule (workers <= batches) would give one worker.
    x, y = _regression_data(8)
    model = _float64_model(TwoLayerNet)
    reference = deep_copy_model(model)
    _train(reference, ArrayDataset(x, y, batch_size=8), MeanSquared(), max_epoch=1)
    with caplog.at_level(logging.INFO, logger="tinyai.training.parallel_training"):
        _, enabled, used = _train(model, ArrayDataset(x, y, batch_size=8), MeanSquared(), max_epoch=1,
                                  enable_parallel=True, thread_count=9, parallel_backend="thread")
    n = 6  # ArrayDataset holds 2 of the 8 samples back for testing: one training batch of 6
    assert enabled and used == n  # one worker per sample: every shard holds one
    assert f"thread_count 9 is more than the {n} samples of the largest batch" in caplog.text
    cores = os.cpu_count()
    over = [r for r in caplog.records if "more than the" in r.getMessage() and "cores" in r.getMessage()]
    assert len(over) == (1 if 9 > cores else 0)  # one warning, not one per step
    _assert_same(model, reference)


def test_unreplicable_model_falls_back_with_a_warning(caplog):
    x, y = _regression_data()
    model = _float64_model(TwoLayerNet)
    model.callback = lambda: None  # lambdas do not pickle
    with caplog.at_level(logging.WARNING):
        history, enabled, _ = _train(model, ArrayDataset(x, y, batch_size=10), MeanSquared(),
                                     enable_parallel=True, thread_count=2, parallel_backend="thread")
    assert not enabled
    assert "cannot be replicated" in caplog.text
    assert history["loss"][1] < history["loss"][0]


def test_auto_logs_its_choice(caplog):
    x, y = _regression_data()
    model = _float64_model(TwoLayerNet)
    with caplog.at_level(logging.INFO, logger="tinyai.training.parallel_training"):
        _train(model, ArrayDataset(x, y, batch_size=10), MeanSquared(), max_epoch=1, enable_parallel=True,
               thread_count=2)
    assert "auto chose" in caplog.text


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_failing_shard_stops_training_naming_epoch_batch_worker_and_cleans_up(backend):
    x, y = _regression_data(20)
    y = np.abs(y)
    model = _float64_model(TwoLayerNet)
    trainer = Trainer(1, progress=None, enable_parallel=True, thread_count=2, parallel_backend=backend)
    trainer.init(ArrayDataset(x, y, batch_size=10), model, ExplodingLoss(), optim.SGD(model, lr=0.1))
    trainer.train_set.get_batches()[1].y[3, 0] = -1.0  # 16 training rows: batches of 10 and 6; worker 1 starts at row 3
    engine = trainer._parallel.engine
    pids = list(getattr(engine.executor, "pids", []))
    with pytest.raises(RuntimeError, match=r"epoch 1/1, batch 2/2: data parallel: worker 1 failed"):
        trainer.train(shuffle=False)
    assert not trainer.is_parallel_training_enabled()
    assert engine.executor is None
    for pid in pids:
        assert ended_within(pid, 5.0), f"worker process {pid} still runs after the failed epoch"


def test_skip_counts_skipped_shards_per_epoch():
    x, y = _regression_data(20)
    y = np.abs(y)
    model = _float64_model(TwoLayerNet)
    with Trainer(1, progress=None, enable_parallel=True, thread_count=2, parallel_backend="thread",
                 on_error="skip") as trainer:
        trainer.init(ArrayDataset(x, y, batch_size=8), model, ExplodingLoss(), optim.SGD(model, lr=0.1))
        first_batch = trainer.train_set.get_batches()[0]
        first_batch.y[4, 0] = -1.0  # the second shard of the first batch fails
        history = trainer.train(shuffle=False)
    assert history["skipped_shards"] == [1]


def test_killed_worker_process_fails_the_epoch_quickly():
    x, y = _regression_data(40)
    model = _float64_model(TwoLayerNet)
    trainer = Trainer(3, progress=None, enable_parallel=True, thread_count=2, parallel_backend="process")
    trainer.init(ArrayDataset(x, y, batch_size=10), model, MeanSquared(), optim.SGD(model, lr=0.1))
    victim = trainer._parallel.engine.executor.pids[0]
    os.kill(victim, signal.SIGKILL)
    trainer._parallel.engine.executor._processes[0].join(5)  # the death is visible before train() starts
    assert not trainer.is_parallel_training_enabled()  # its workers are no longer all alive
    with pytest.raises(RuntimeError, match=r"worker 0 \(pid \d+\) died"):
        trainer.train()
    assert not trainer.is_parallel_training_enabled()


def test_keyboard_interrupt_releases_workers():
    x, y = _regression_data(40)
    model = _float64_model(TwoLayerNet)
    trainer = Trainer(2, progress=None, enable_parallel=True, thread_count=2, parallel_backend="process")

    class Interrupting(optim.SGD):
        calls = 0

        def update(self):
            Interrupting.calls += 1
            if Interrupting.calls == 2:
                raise KeyboardInterrupt
            super().update()

    trainer.init(ArrayDataset(x, y, batch_size=10), model, MeanSquared(), Interrupting(model, lr=0.1))
    executor = trainer._parallel.engine.executor
    pids, segments = executor.pids, executor.segment_names
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    from tests.parallel.process_checks import is_running
    from tests.parallel.test_process_executor import _segment_exists

    assert not any(is_running(p) for p in pids)
    assert not any(_segment_exists(s) for s in segments)
    assert threading.active_count() >= 1


@pytest.mark.parametrize("cores,work,expected", [(8, 100, 6), (8, 3, 3), (2, 100, 1), (1, 100, 1), (16, 0, 1)])
def test_recommended_thread_count_is_tinyais_rule(monkeypatch, cores, work, expected):
    from tinyai.parallel import get_recommended_thread_count

    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    assert get_recommended_thread_count(work) == expected  # 75% of the cores, capped by the work


def test_thread_count_zero_uses_one_worker_per_core_capped_by_samples(monkeypatch):
    from tinyai.training.parallel_training import default_worker_count

    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    assert default_worker_count(100) == 4 and default_worker_count(3) == 3 and default_worker_count(1) == 1


def test_per_epoch_statistics_line_and_logged_shutdown(caplog):
    import io

    x, y = _regression_data(40)
    model = _float64_model(TwoLayerNet)
    stream = io.StringIO()
    with caplog.at_level(logging.INFO):
        with Trainer(2, progress=False, stream=stream, enable_parallel=True, thread_count=2,
                     parallel_backend="thread") as trainer:
            trainer.init(ArrayDataset(x, y, batch_size=10), model, MeanSquared(), optim.SGD(model, lr=0.1))
            history = trainer.train()
    stats = [line for line in stream.getvalue().splitlines() if line.startswith("parallel training stats")]
    assert len(stats) == 2  # one per epoch, after the epoch's line
    batches = len(trainer.train_set.get_batches())
    for line, loss in zip(stats, history["loss"]):
        assert line.startswith(f"parallel training stats [threads: 2, successful batches: {batches}/{batches}, "
                               f"average loss: {loss:.6f}, processing time: ")
    assert "parallel training resources released" in caplog.text
