"""Data-parallel steps give the parameters of single-thread steps on the same batches."""
import numpy as np
import pytest

import tinyai as ta
from tinyai.backend import default_dtype
from tinyai.parallel import DataParallel, WorkerError
from tinyai.parallel.utils import deep_copy_model

from tests.parallel.models import ClassLoss, ConvBatchNormNet, DropoutNet, ExplodingLoss, MeanSquared, TwoLayerNet


def _batches(n_steps, batch, rng, dtype):
    return [(rng.standard_normal((batch, 6)).astype(dtype), rng.standard_normal((batch, 3)).astype(dtype))
            for _ in range(n_steps)]


def _sgd(model, lr=0.1):
    for p in model.params():
        p.data -= lr * p.grad.data


def _single_thread(model, loss, batches):
    for x, y in batches:
        model.clear_grads()
        value = loss.loss(ta.Variable(y, requires_grad=False), model(ta.Variable(x, requires_grad=False)))
        value.backward()
        _sgd(model)
    return model


def _assert_same_state(model, reference, rtol, atol):
    for (name, p), (_, q) in zip(model.named_params(), reference.named_params()):
        np.testing.assert_allclose(p.data, q.data, rtol=rtol, atol=atol, err_msg=name)
    for (name, a), (_, b) in zip(model.named_buffers(), reference.named_buffers()):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=name)


def _data_parallel(model, loss, batches, workers, backend):
    engine = DataParallel(model, loss, workers, backend=backend)
    try:
        for x, y in batches:
            model.clear_grads()
            engine.compute_gradients(x, y)
            _sgd(model)
    finally:
        engine.shutdown()
    return model


@pytest.mark.parametrize("workers", [2, 3, 4])
def test_threads_match_single_thread_float64(workers):
    rng = np.random.default_rng(1)
    with default_dtype(np.float64):
        ta.seed(7)
        master = TwoLayerNet()
    reference = deep_copy_model(master)
    batches = _batches(4, 10, rng, np.float64)  # 10 examples: uneven shards on 3 and 4 workers
    _single_thread(reference, MeanSquared(), batches)
    _data_parallel(master, MeanSquared(), batches, workers, "thread")
    for (name, p), (_, q) in zip(master.named_params(), reference.named_params()):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-10, atol=1e-12, err_msg=name)


def test_processes_match_single_thread_float32():
    rng = np.random.default_rng(2)
    ta.seed(3)
    master = TwoLayerNet()
    reference = deep_copy_model(master)
    batches = _batches(3, 9, rng, np.float32)
    _single_thread(reference, MeanSquared(), batches)
    _data_parallel(master, MeanSquared(), batches, 2, "process")
    for (name, p), (_, q) in zip(master.named_params(), reference.named_params()):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_failed_shard_raises_with_worker_id(backend):
    ta.seed(0)
    model = TwoLayerNet()
    engine = DataParallel(model, ExplodingLoss(), 2, backend=backend)
    try:
        x = np.ones((4, 6), dtype=np.float32)
        y = np.ones((4, 3), dtype=np.float32)
        y[2:, 0] = -1  # the second shard fails
        with pytest.raises(WorkerError, match="worker 1 failed") as info:
            engine.compute_gradients(x, y)
        assert info.value.worker_id == 1
    finally:
        engine.shutdown()


def test_skip_averages_the_shards_that_succeeded():
    ta.seed(0)
    model = TwoLayerNet()
    reference = deep_copy_model(model)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 6)).astype(np.float32)
    y = np.abs(rng.standard_normal((6, 3))).astype(np.float32)
    y[3, 0] = -1.0  # worker 1's shard is rows 3..5
    engine = DataParallel(model, ExplodingLoss(), 2, backend="thread", on_error="skip")
    try:
        outcome = engine.compute_gradients(x, y)
    finally:
        engine.shutdown()
    assert (outcome.ok_shards, outcome.failed_shards, outcome.batch_size) == (1, 1, 3)
    # The average must be the first shard's gradient alone, not half of it.
    loss = MeanSquared().loss(ta.Variable(y[:3]), reference(ta.Variable(x[:3])))
    loss.backward()
    for (name, p), (_, q) in zip(model.named_params(), reference.named_params()):
        np.testing.assert_allclose(p.grad.data, q.grad.data, rtol=1e-5, err_msg=name)


def _image_batches(n_steps, batch, rng):
    return [(rng.standard_normal((batch, 1, 6, 6)), rng.integers(0, 4, batch)) for _ in range(n_steps)]


@pytest.mark.parametrize("backend,workers", [("thread", 2), ("thread", 3), ("process", 2)])
def test_batch_norm_statistics_are_synchronised_across_shards(backend, workers):
    rng = np.random.default_rng(4)
    with default_dtype(np.float64):
        ta.seed(11)
        master = ConvBatchNormNet()
    reference = deep_copy_model(master)
    batches = _image_batches(3, 7, rng)  # 7 images: uneven shards
    _single_thread(reference, ClassLoss(), batches)
    _data_parallel(master, ClassLoss(), batches, workers, backend)
    _assert_same_state(master, reference, rtol=1e-10, atol=1e-12)


def test_without_synchronisation_shards_would_differ():
    # The property above is not vacuous: per-shard statistics give other gradients.
    rng = np.random.default_rng(4)
    with default_dtype(np.float64):
        ta.seed(11)
        model = ConvBatchNormNet()
    x, y = _image_batches(1, 8, rng)[0]
    whole = deep_copy_model(model)
    ClassLoss().loss(ta.Variable(y), whole(ta.Variable(x))).backward()
    halves = deep_copy_model(model)
    for a, b in [(0, 4), (4, 8)]:
        (ClassLoss().loss(ta.Variable(y[a:b]), halves(ta.Variable(x[a:b]))) * 0.5).backward()
    gap = max(float(np.abs(p.grad.data - q.grad.data).max())
              for p, q in zip(whole.params(), halves.params()))
    assert gap > 1e-6


@pytest.mark.parametrize("backend,workers", [("thread", 2), ("thread", 4), ("process", 3)])
def test_dropout_masks_do_not_depend_on_the_split(backend, workers):
    rng = np.random.default_rng(6)
    with default_dtype(np.float64):
        ta.seed(5)
        master = DropoutNet()
    reference = deep_copy_model(master)
    batches = _batches(3, 10, rng, np.float64)
    ta.seed(99)
    _single_thread(reference, MeanSquared(), batches)
    after_single = ta.backend.get_rng().random()
    ta.seed(99)
    _data_parallel(master, MeanSquared(), batches, workers, backend)
    after_parallel = ta.backend.get_rng().random()
    _assert_same_state(master, reference, rtol=1e-10, atol=1e-12)
    assert after_parallel == after_single  # the master's stream ends where single-thread's does


def test_dropout_runs_are_reproducible_and_seed_dependent():
    rng = np.random.default_rng(6)
    batches = _batches(2, 8, rng, np.float64)
    finals = []
    for run_seed in (1, 1, 2):
        with default_dtype(np.float64):
            ta.seed(5)
            model = DropoutNet()
        ta.seed(run_seed)
        _data_parallel(model, MeanSquared(), batches, 2, "thread")
        finals.append(np.concatenate([p.data.ravel() for p in model.params()]))
    np.testing.assert_array_equal(finals[0], finals[1])
    assert not np.allclose(finals[0], finals[2])


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_replicas_follow_the_masters_train_or_eval_mode(backend):
    # In eval mode dropout is the identity: the gradient must equal the deterministic one.
    rng = np.random.default_rng(8)
    with default_dtype(np.float64):
        ta.seed(5)
        master = DropoutNet()
    x, y = rng.standard_normal((6, 6)), rng.standard_normal((6, 3))
    engine = DataParallel(master, MeanSquared(), 2, backend=backend)  # replicas made in train mode
    try:
        master.eval()
        engine.compute_gradients(x, y)
    finally:
        engine.shutdown()
    reference = deep_copy_model(master)
    with ta.test_mode():
        MeanSquared().loss(ta.Variable(y), reference(ta.Variable(x))).backward()
    for p, q in zip(master.params(), reference.params()):
        np.testing.assert_allclose(p.grad.data, q.grad.data, rtol=1e-10)
