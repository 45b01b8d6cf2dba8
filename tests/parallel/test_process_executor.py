"""The process executor: real worker processes and shared memory, and their clean-up."""
import os
import signal
import time
from multiprocessing import shared_memory

import numpy as np
import pytest

import tinyai as ta
from tinyai.parallel import DataParallel
from tinyai.parallel.executor.blas import blas_thread_counts
from tinyai.parallel.executor.process import ProcessExecutor
from tinyai.parallel import WorkerError

from tests.parallel.models import MeanSquared, TwoLayerNet
from tests.parallel.process_checks import is_running


def _segment_exists(name):
    try:
        segment = shared_memory.SharedMemory(name=name)
    except FileNotFoundError:
        return False
    segment.close()
    return True


def _batch(n=8):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 6)).astype(np.float32), rng.standard_normal((n, 3)).astype(np.float32)


def _blas_threads(worker):
    return blas_thread_counts()


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_every_worker_computes_on_one_blas_thread(start_method):
    # Workers already take one core each; a forked one inherits the master's BLAS threads
    # (one per core), so two forked workers on two cores used to run four.
    if not blas_thread_counts():
        pytest.skip("threadpoolctl is not installed: BLAS thread counts cannot be read")
    ta.seed(0)
    executor = ProcessExecutor(TwoLayerNet(), MeanSquared(), 2, start_method=start_method)
    try:
        counts = executor.run(_blas_threads)
    finally:
        executor.shutdown()
    assert counts == [[1] * len(blas_thread_counts())] * 2


def test_shutdown_leaves_no_process_and_no_segment():
    ta.seed(0)
    executor = ProcessExecutor(TwoLayerNet(), MeanSquared(), 2)
    pids, names = executor.pids, executor.segment_names
    assert len(pids) == 2 and all(is_running(p) for p in pids)
    assert len(names) == 4 and all(_segment_exists(n) for n in names)  # parameters, 2 x gradients, collective
    executor.shutdown()
    executor.shutdown()  # idempotent
    assert not any(is_running(p) for p in pids)
    assert not any(_segment_exists(n) for n in names)


def test_killed_worker_is_reported_quickly_and_cleaned_up():
    ta.seed(0)
    model = TwoLayerNet()
    engine = DataParallel(model, MeanSquared(), 2, backend="process")
    pids, names = engine.executor.pids, engine.executor.segment_names
    x, y = _batch()
    engine.compute_gradients(x, y)  # a healthy step first
    os.kill(pids[1], signal.SIGKILL)
    start = time.monotonic()
    with pytest.raises(WorkerError, match=r"worker 1 \(pid \d+\) died"):
        engine.compute_gradients(x, y)
    assert time.monotonic() - start < 5
    engine.shutdown()
    assert not any(is_running(p) for p in pids)
    assert not any(_segment_exists(n) for n in names)


def test_worker_exception_arrives_with_its_traceback():
    from tests.parallel.models import ExplodingLoss

    ta.seed(0)
    executor = ProcessExecutor(TwoLayerNet(), ExplodingLoss(), 2)
    try:
        x, y = _batch(4)
        y = np.abs(y)
        y[0, 0] = -1  # only the first shard fails
        results = executor.compute(TwoLayerNet(), x, y)
        assert [r.success for r in results] == [False, True]
        assert "exploding loss" in str(results[0].exception)
        assert "traceback" in str(results[0].exception)
    finally:
        executor.shutdown()


def test_dropped_executor_is_released_by_its_finalizer():
    import gc

    ta.seed(0)
    executor = ProcessExecutor(TwoLayerNet(), MeanSquared(), 1)
    pids, names = executor.pids, executor.segment_names
    del executor
    gc.collect()
    deadline = time.monotonic() + 10
    while any(is_running(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(is_running(p) for p in pids)
    assert not any(_segment_exists(n) for n in names)


def _ask_the_master(worker, value):
    """On a worker: send the master a number through the world and its shared buffer; what comes back."""
    master = worker.world.size - 1
    first = next(iter(worker.shared))
    worker.shared[first][...] = value  # the master reads it there
    worker.world.send(np.array([worker.worker_id]), master)
    return float(worker.world.recv(master)), float(worker.shared[first].reshape(-1)[0])


def test_run_serves_the_workers_from_a_thread_of_the_master_and_releases_them_if_it_fails():
    ta.seed(0)
    executor = ProcessExecutor(TwoLayerNet(), MeanSquared(), 2)
    try:
        def serve(comm):  # the master's rank is the last: it answers each worker with twice its number
            for _ in range(2):
                source, _ = comm.recv_any()
                buffer = executor.worker_buffers(source)
                value = float(next(iter(buffer.values())).reshape(-1)[0])
                next(iter(buffer.values()))[...] = -value
                comm.send(np.array(2 * value), source)

        assert executor.run(_ask_the_master, [(1.5,), (4.0,)], serve=serve) == [(3.0, -1.5), (8.0, -4.0)]

        def fail(comm):
            comm.recv_any()
            raise ValueError("the server broke")

        started = time.monotonic()
        with pytest.raises(ValueError, match="the server broke"):
            executor.run(_ask_the_master, [(1.0,), (2.0,)], serve=fail)
        assert time.monotonic() - started < 15.0  # the workers waiting for an answer were released (a hang guard)
    finally:
        executor.shutdown()


def test_a_task_the_worker_cannot_unpickle_is_reported_and_the_worker_lives_on(tmp_path, monkeypatch):
    # A module the master can import but the workers, started before it existed, cannot find:
    # like a function defined in an unguarded __main__ under the spawn start method.
    executor = ProcessExecutor(TwoLayerNet(), MeanSquared(), 2)
    try:
        (tmp_path / "only_in_the_master.py").write_text("def double(context, value):\n    return 2 * value\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        import only_in_the_master

        with pytest.raises(WorkerError, match=r"worker 0 raised .*could not be unpickled.*only_in_the_master"):
            executor.run(only_in_the_master.double, [(1,), (2,)])
        assert all(is_running(pid) for pid in executor.pids)
        x, y = _batch(4)
        assert all(r.success for r in executor.compute(TwoLayerNet(), x, y))  # the workers still serve
    finally:
        executor.shutdown()
