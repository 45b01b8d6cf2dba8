"""Workers that hang, die or are interrupted, and shutdown from anywhere: real threads, processes and signals.

The bounds asserted here are the ones the Trainer promises (shutdown within
its timeout plus a second, Ctrl-C and a killed worker within 2 s); they are
deadlines of the clean-up logic, not speed measurements.
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import tinyai as ta
from tinyai import optim
from tinyai.backend import default_dtype
from tinyai.data import ArrayDataset
from tinyai.parallel import DataParallel, WorkerError
from tinyai.parallel.executor.blas import blas_thread_counts
from tinyai.training import Trainer

from tests.parallel.models import ConvBatchNormNet, HangingClassLoss, HangingLoss, MeanSquared, TwoLayerNet
from tests.parallel.process_checks import is_running
from tests.parallel.test_process_executor import _segment_exists

ROOT = Path(__file__).resolve().parents[2]


def _hanging_trainer(backend, **kwargs):
    """A 2-worker Trainer whose second shard of the first batch hangs."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((20, 6)), np.abs(rng.standard_normal((20, 3)))
    ta.seed(0)
    model = TwoLayerNet()
    trainer = Trainer(1, progress=None, enable_parallel=True, thread_count=2, parallel_backend=backend, **kwargs)
    trainer.init(ArrayDataset(x, y, batch_size=10), model, HangingLoss(), optim.SGD(model, lr=0.1))
    trainer.train_set.get_batches()[0].y[5, 0] = 1000.0  # rows 5..9 of the first batch are worker 1's
    return trainer


def _train_in_background(trainer):
    outcome = {}

    def target():
        try:
            trainer.train(shuffle=False)
        except BaseException as error:  # noqa: BLE001 - the test inspects it
            outcome["error"] = error
        outcome["ended"] = time.monotonic()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_shutdown_returns_within_its_timeout_while_a_shard_hangs(backend):
    trainer = _hanging_trainer(backend)
    pids = list(getattr(trainer._parallel.engine.executor, "pids", []))
    thread, outcome = _train_in_background(trainer)
    time.sleep(0.5)  # the hung shard is running now
    start = time.monotonic()
    trainer.shutdown(timeout=0.5)
    assert time.monotonic() - start < 1.5
    thread.join(2)
    assert not thread.is_alive()
    assert isinstance(outcome["error"], WorkerError)
    assert "shutdown() was called during the step" in str(outcome["error"])
    with pytest.raises(RuntimeError, match=r"data-parallel training is closed \(.*abandoned"
                       if backend == "thread" else r"data-parallel training is closed"):
        trainer.train()
    assert not any(is_running(p) for p in pids)


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_step_timeout_turns_a_hung_shard_into_a_worker_error(backend):
    trainer = _hanging_trainer(backend, step_timeout=0.5)
    pids = list(getattr(trainer._parallel.engine.executor, "pids", []))
    start = time.monotonic()
    with pytest.raises(WorkerError, match=r"epoch 1/1, batch 1/2: .*worker 1 .*step_timeout=0.5") as info:
        trainer.train(shuffle=False)
    assert info.value.worker_id == 1
    assert time.monotonic() - start < 3.5  # the timeout, then at most a second to release the workers
    assert not trainer.is_parallel_training_enabled()
    assert not any(is_running(p) for p in pids)
    with pytest.raises(RuntimeError, match="data-parallel training is closed"):
        trainer.train()


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_ctrl_c_ends_a_parallel_train_within_two_seconds(backend):
    trainer = _hanging_trainer(backend)
    pids = list(getattr(trainer._parallel.engine.executor, "pids", []))
    sent = {}

    def interrupt():
        time.sleep(0.5)
        sent["at"] = time.monotonic()
        os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, delivered to the main thread

    threading.Thread(target=interrupt, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        trainer.train(shuffle=False)
    assert time.monotonic() - sent["at"] < 2.0
    assert not any(is_running(p) for p in pids)


@pytest.mark.parametrize("with_batch_norm", [False, True])
def test_a_killed_worker_is_reported_within_two_seconds(with_batch_norm):
    rng = np.random.default_rng(1)
    ta.seed(0)
    if with_batch_norm:
        # Worker 0 hangs in its loss; worker 1 waits for it inside batch norm's backward.
        x, y = rng.standard_normal((20, 1, 6, 6)), rng.integers(0, 3, 20)
        model, loss = ConvBatchNormNet(), HangingClassLoss()
    else:
        x, y = rng.standard_normal((20, 6)), np.abs(rng.standard_normal((20, 3)))
        model, loss = TwoLayerNet(), HangingLoss()
    trainer = Trainer(1, progress=None, enable_parallel=True, thread_count=2, parallel_backend="process")
    trainer.init(ArrayDataset(x, y, batch_size=10), model, loss, optim.SGD(model, lr=0.1))
    batch = trainer.train_set.get_batches()[0]
    if with_batch_norm:
        batch.y[0] = 3
    else:
        batch.y[0, 0] = 1000.0
    executor = trainer._parallel.engine.executor
    pids, segments = executor.pids, executor.segment_names
    killed = {}

    def kill():
        time.sleep(0.7)
        killed["at"] = time.monotonic()
        os.kill(pids[0], signal.SIGKILL)

    threading.Thread(target=kill, daemon=True).start()
    with pytest.raises(WorkerError, match=r"worker 0 \(pid \d+\) died") as info:
        trainer.train(shuffle=False)
    assert time.monotonic() - killed["at"] < 2.0
    assert info.value.worker_id == 0
    assert not any(is_running(p) for p in pids)
    assert not any(_segment_exists(s) for s in segments)


MASTER_SCRIPT = """
import json, sys
import numpy as np
import tinyai as ta
from tinyai.parallel import DataParallel
from tests.parallel.models import HangingLoss, TwoLayerNet

ta.seed(0)
engine = DataParallel(TwoLayerNet(), HangingLoss(), 2, backend="process")
x, y = np.ones((6, 6), dtype=np.float32), np.full((6, 3), 1000.0, dtype=np.float32)
print(json.dumps({"pids": engine.executor.pids, "segments": engine.executor.segment_names}), flush=True)
engine.compute_gradients(x, y)  # every worker hangs; the test kills this process meanwhile
"""


def test_workers_exit_and_unlink_shared_memory_when_the_master_is_killed(tmp_path):
    script = tmp_path / "master.py"
    script.write_text(MASTER_SCRIPT)
    master = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        info = json.loads(master.stdout.readline())
        time.sleep(0.5)  # the workers are busy with their shards
        assert all(is_running(p) for p in info["pids"])
        master.send_signal(signal.SIGKILL)
        master.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (any(is_running(p) for p in info["pids"])
                                               or any(_segment_exists(s) for s in info["segments"])):
            time.sleep(0.1)
        assert not any(is_running(p) for p in info["pids"])
        assert not any(_segment_exists(s) for s in info["segments"])
    finally:
        if master.poll() is None:
            master.kill()
        master.communicate()


def test_shutdown_from_another_thread_during_a_process_step_ends_train_with_a_clear_error():
    trainer = _hanging_trainer("process")
    thread, outcome = _train_in_background(trainer)
    time.sleep(0.5)
    closer = threading.Thread(target=trainer.shutdown, kwargs={"timeout": 0.3})
    closer.start()
    closer.join(3)
    thread.join(3)
    assert not closer.is_alive() and not thread.is_alive()
    assert isinstance(outcome["error"], WorkerError), outcome
    assert "shutdown() was called during the step" in str(outcome["error"])


def test_blas_threads_are_restored_when_two_trainers_run_at_once():
    before = blas_thread_counts()
    if not before:
        pytest.skip("threadpoolctl finds no BLAS library to limit")
    seen_in_updates = []

    class Checking(optim.SGD):
        def update(self):
            seen_in_updates.append(blas_thread_counts())
            super().update()

    def train(seed, checking):
        rng = np.random.default_rng(seed)
        x, y = rng.standard_normal((60, 6)), rng.standard_normal((60, 3))
        with default_dtype(np.float64):
            ta.seed(seed)
            model = TwoLayerNet()
        with Trainer(2, progress=None, enable_parallel=True, thread_count=2, parallel_backend="thread") as t:
            t.init(ArrayDataset(x, y, batch_size=10), model, MeanSquared(),
                   (Checking if checking else optim.SGD)(model, lr=0.1))
            t.train()

    train(1, checking=True)  # alone: BLAS has its own setting again at every update
    assert seen_in_updates and all(counts == before for counts in seen_in_updates)
    for _ in range(3):
        threads = [threading.Thread(target=train, args=(seed, False)) for seed in (2, 3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert blas_thread_counts() == before
