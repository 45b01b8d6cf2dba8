"""CompressedAllReduce: the ring is exact; compressed steps apply exactly the decoded sum of the
workers' own payloads, with error feedback carried per worker between steps; the Trainer's options."""
import math

import numpy as np
import pytest

import tinyai as ta
from tinyai.backend import default_dtype
from tinyai.data import ArrayDataset
from tinyai.optim import SGD
from tinyai.parallel import DataParallel
from tinyai.parallel.compression import ErrorFeedback, Int8, TopK
from tinyai.parallel.sharding import shard_bounds
from tinyai.parallel.strategy.compressed import CompressedAllReduce
from tinyai.parallel.utils import deep_copy_model
from tinyai.training import Trainer

from tests.parallel.models import ExplodingLoss, MeanSquared, TwoLayerNet


def _batches(n_steps, batch, seed):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((batch, 6)), rng.standard_normal((batch, 3))) for _ in range(n_steps)]


def _sgd(model, lr=0.1):
    for p in model.params():
        p.data -= lr * p.grad.data


def _shard_gradients(model, x, y, workers):
    """Independent replay: each shard's share-weighted gradient (n_k / N times its mean-loss gradient)."""
    out = []
    for a, b in shard_bounds(len(x), workers):
        replica = deep_copy_model(model)
        replica.clear_grads()
        loss = MeanSquared().loss(ta.Variable(y[a:b], requires_grad=False),
                                  replica(ta.Variable(x[a:b], requires_grad=False)))
        loss.backward()
        out.append({name: p.grad.data * ((b - a) / len(x)) for name, p in replica.named_params()})
    return out


def _master(seed=5):
    with default_dtype(np.float64):
        ta.seed(seed)
        return TwoLayerNet()


@pytest.mark.parametrize("workers, backend", [(2, "thread"), (3, "thread"),
                                              pytest.param(3, "process", marks=pytest.mark.slow)])
def test_ring_training_equals_single_thread_float64(workers, backend):
    master = _master()
    reference = deep_copy_model(master)
    batches = _batches(3, 10, seed=1)  # 10 examples: uneven shards on 3 workers
    for x, y in batches:
        reference.clear_grads()
        MeanSquared().loss(ta.Variable(y), reference(ta.Variable(x))).backward()
        _sgd(reference)
    engine = DataParallel(master, MeanSquared(), workers, backend=backend,
                          strategy=CompressedAllReduce(None, "ring"))
    try:
        for x, y in batches:
            master.clear_grads()
            engine.compute_gradients(x, y)
            _sgd(master)
    finally:
        engine.shutdown()
    for (name, p), (_, q) in zip(master.named_params(), reference.named_params()):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-10, atol=1e-12, err_msg=name)
    stats = engine.strategy.stats.as_dict()
    entries = sum(p.data.size for p in master.params())
    assert stats["exchanges"] == 3 and stats["bytes_sent"] == 3 * 2 * (workers - 1) * entries * 8


def _top_k(g, ratio):
    """Independent oracle: the k = max(1, floor(ratio n)) largest magnitudes (by a full sort), the rest zero."""
    flat = g.reshape(-1)
    k = max(1, math.floor(ratio * flat.size + 1e-9))
    keep = np.argsort(-np.abs(flat), kind="stable")[:k]
    out = np.zeros_like(flat)
    out[keep] = flat[keep]
    return out.reshape(g.shape)


@pytest.mark.parametrize("backend", ["thread", pytest.param("process", marks=pytest.mark.slow)])
def test_compressed_step_applies_the_sum_of_each_workers_decoded_payload(backend):
    workers, ratio = 2, 0.25
    master = _master()
    strategy = CompressedAllReduce(ErrorFeedback(TopK(ratio)))
    engine = DataParallel(master, MeanSquared(), workers, backend=backend, strategy=strategy)
    # The replay keeps one error-feedback residual per worker and parameter, as the workers must.
    residuals = [dict() for _ in range(workers)]
    try:
        for x, y in _batches(3, 8, seed=2):
            shards = _shard_gradients(master, x, y, workers)
            expected = {}
            for k, grads in enumerate(shards):
                for name, g in grads.items():
                    corrected = g + residuals[k].get(name, 0.0)
                    sent = _top_k(corrected, ratio)
                    residuals[k][name] = corrected - sent
                    expected[name] = expected.get(name, 0.0) + sent
            master.clear_grads()
            engine.compute_gradients(x, y)
            for name, p in master.named_params():
                np.testing.assert_allclose(p.grad.data, expected[name], rtol=1e-12, atol=1e-14, err_msg=name)
            _sgd(master)
    finally:
        engine.shutdown()


def test_a_skipped_shard_sends_nothing_and_the_rest_is_rescaled():
    master = _master()
    engine = DataParallel(master, ExplodingLoss(), 2, backend="thread", on_error="skip",
                          strategy=CompressedAllReduce(TopK(1.0), on_error="skip"))
    x, y = _batches(1, 8, seed=3)[0]
    y[:4, 0] = np.abs(y[:4, 0]) + 0.1
    y[4, 0] = -1.0  # the second shard (rows 4..7) fails
    try:
        master.clear_grads()
        outcome = engine.compute_gradients(x, y)
    finally:
        engine.shutdown()
    assert outcome.failed_shards == 1
    only = _shard_gradients(master, x[:4], y[:4], 1)[0]  # the surviving shard's own mean gradient
    for name, p in master.named_params():
        np.testing.assert_allclose(p.grad.data, only[name], rtol=1e-12, err_msg=name)


def _tiny_mnist_like(n=96, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0).astype(np.int64)
    return ArrayDataset(x, y, batch_size=16)


def _trainer(**kwargs):
    from tinyai.losses import SoftmaxCrossEntropy

    ta.seed(0)
    model = TwoLayerNet(6, 8, 3)
    return Trainer(2, progress=None, eval_every=0, enable_parallel=True, thread_count=2, parallel_backend="thread",
                   dataset=_tiny_mnist_like(), model=model, loss=SoftmaxCrossEntropy(),
                   optimizer=SGD(model, lr=0.1), **kwargs), model


def test_trainer_int8_stats_count_the_encoded_bytes():
    trainer, model = _trainer(compression=Int8())
    with trainer:
        trainer.train()
        stats = trainer.parallel_stats()
    entries = sum(p.data.size for p in model.params())
    tensors = len(list(model.params()))
    steps = 2 * len(trainer.train_set.get_batches())
    # Each step: 2 workers all-gather (entries + 4 bytes of scale per tensor) each; float32 = 4 bytes/entry.
    assert stats["exchanges"] == steps and stats["updates"] == steps
    assert stats["bytes_sent"] == steps * 2 * 1 * (entries + 4 * tensors)
    assert stats["bytes_dense"] == steps * 2 * 1 * 4 * entries
    assert stats["compression_ratio"] == pytest.approx(4 * entries / (entries + 4 * tensors))


def test_trainer_default_stats_count_dense_float32_bytes():
    trainer, model = _trainer()
    with trainer:
        trainer.train()
        stats = trainer.parallel_stats()
    entries = sum(p.data.size for p in model.params())
    steps = 2 * len(trainer.train_set.get_batches())
    assert stats["updates"] == steps and stats["bytes_sent"] == stats["bytes_dense"] == steps * 2 * 4 * entries


def test_bad_settings_are_refused_clearly():
    with pytest.raises(ValueError, match="allreduce_algorithm must be one of .* got 'tree'"):
        Trainer(1, allreduce_algorithm="tree")
    with pytest.raises(ValueError, match="compression: unknown setting 'zip'"):
        Trainer(1, compression="zip")
    with pytest.raises(ValueError, match="TopK: ratio must be in"):
        TopK(0)


@pytest.mark.parametrize("settings", [{"compression": "topk"}, {"compression": Int8(stochastic=True)},
                                      {"allreduce_algorithm": "ring"}], ids=["topk", "int8-stochastic", "ring"])
def test_a_model_on_the_device_trains_with_compression_and_ring(settings):
    from tinyai.losses import SoftmaxCrossEntropy
    from tinyai.testing.standin import StandInArray, standin_as_gpu

    with standin_as_gpu():
        ta.seed(0)
        model = TwoLayerNet(6, 8, 3)
        trainer = Trainer(1, progress=None, eval_every=0, enable_parallel=True, thread_count=2,
                          parallel_backend="thread", device="gpu", dataset=_tiny_mnist_like(), model=model,
                          loss=SoftmaxCrossEntropy(), optimizer=SGD(model, lr=0.1), **settings)
        with trainer:
            history = trainer.train()
            stats = trainer.parallel_stats()
    assert all(isinstance(p.data, StandInArray) for p in model.params())
    assert np.isfinite(history["loss"][-1])
    assert stats["exchanges"] == len(trainer.train_set.get_batches()) > 0


def test_configure_parallel_training_takes_the_same_options():
    trainer, model = _trainer()  # dense
    with trainer:
        trainer.configure_parallel_training(True, 2, "thread", compression="int8")
        trainer.train()
        stats = trainer.parallel_stats()
        entries, tensors = sum(p.data.size for p in model.params()), len(list(model.params()))
        assert stats["compression_ratio"] == pytest.approx(4 * entries / (entries + 4 * tensors))  # int8 in force
        with pytest.raises(TypeError, match="configure_parallel_training: unknown option.*compresion"):
            trainer.configure_parallel_training(True, 2, "thread", compresion="int8")
        with pytest.raises(ValueError, match="compression: unknown setting 'zip'"):
            trainer.configure_parallel_training(True, 2, "thread", compression="zip")
