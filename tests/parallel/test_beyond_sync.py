"""Parameter servers (sync / async / stale) and local SGD on the Trainer: exactness where claimed,
coverage of the data by asynchronous workers, the stale-synchronous bound, failures, bad settings."""
import numpy as np
import pytest

import tinyai as ta
from tinyai.data import ArrayDataset
from tinyai.optim import SGD, Momentum
from tinyai.parallel.executor import WorkerError
from tinyai.parallel.strategy.parameter_server import partition_parameters
from tinyai.parallel.utils import deep_copy_model
from tinyai.training import Trainer

from tests.parallel.models import MeanSquared, float64_net, regression_data


def _train(model, optimizer_cls=SGD, epochs=2, batch=10, loss=None, n=50, **parallel):
    x, y = regression_data(n)
    dataset = ArrayDataset(x, y, batch_size=batch)
    trainer = Trainer(epochs, progress=False)
    if parallel:  # every option through configure_parallel_training (the Trainer's keywords are tested below)
        trainer.configure_parallel_training(True, 2, parallel.pop("parallel_backend", "thread"), **parallel)
    trainer.init(dataset, model, loss or MeanSquared(), optimizer_cls(model, lr=0.1))
    try:
        ta.seed(11)  # the same shuffles
        trainer.train(shuffle=False)
    finally:
        trainer.shutdown()
    return trainer


def _assert_same(a, b):
    for (name, p), (_, q) in zip(a.named_params(), b.named_params()):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-10, atol=1e-12, err_msg=name)


def _moved(a, b):
    return max(float(np.abs(p.data - q.data).max()) for p, q in zip(a.params(), b.params()))


@pytest.mark.parametrize("servers, backend, optimizer", [(1, "thread", SGD), (3, "thread", Momentum),
                                                         pytest.param(2, "process", Momentum,
                                                                      marks=pytest.mark.slow)])
def test_sync_parameter_server_equals_allreduce_float64(servers, backend, optimizer):
    reference = float64_net()
    start = deep_copy_model(reference)
    _train(reference, optimizer)  # single thread
    model = deep_copy_model(start)
    trainer = _train(model, optimizer, parallel_strategy="parameter_server", ps_mode="sync", num_servers=servers,
                     parallel_backend=backend)
    _assert_same(model, reference)
    assert _moved(model, start) > 1e-3
    stats = trainer.parallel_stats()
    assert stats["updates"] == 8 and stats["exchanges"] == 8  # 2 epochs x 4 batches


def test_partition_balances_sizes_and_keeps_every_name_once():
    sizes = [("a", 100), ("b", 10), ("c", 60), ("d", 50), ("e", 5)]
    groups = partition_parameters(sizes, 2)
    assert sorted(n for g in groups for n in g) == ["a", "b", "c", "d", "e"]
    loads = [sum(dict(sizes)[n] for n in g) for g in groups]
    assert groups == [["a", "b", "e"], ["c", "d"]] and loads == [115, 110]  # greedy, largest first
    with pytest.raises(ValueError, match="num_servers"):
        partition_parameters(sizes, 6)


@pytest.mark.parametrize("mode, staleness", [("async", None), ("stale", 1)])
def test_async_workers_take_whole_batches_and_see_every_sample_once(mode, staleness):
    model = float64_net()
    start = deep_copy_model(model)
    trainer = _train(model, parallel_strategy="parameter_server", ps_mode=mode, staleness=staleness,
                     num_servers=2, batch=4)
    strategy = trainer._parallel.engine.strategy if trainer._parallel.engine else None
    stats = trainer.parallel_stats()
    assert stats["updates"] == 2 * 10  # every one of the 10 batches, each epoch, applied once
    assert sum(stats["staleness_histogram"].values()) == 20
    assert _moved(model, start) > 1e-3
    assert np.isfinite(trainer.monitor.history["loss"]).all()
    del strategy


def test_async_assignment_partitions_the_epoch():
    from tinyai.parallel import DataParallel
    from tinyai.parallel.strategy.parameter_server import ParameterServer

    x, y = regression_data(n=30)
    x = x.astype(np.float32)  # as the data set holds it
    batches = ArrayDataset(x, y, batch_size=4).get_batches()  # 8 batches, the last of 2
    model = float64_net()
    engine = DataParallel(model, MeanSquared(), 3, backend="thread", strategy=ParameterServer("async"))
    try:
        losses = engine.strategy.train_epoch(batches, SGD(model, lr=0.05))
    finally:
        engine.shutdown()
    assignment = engine.strategy.last_assignment
    seen = sorted(i for own in assignment for i in own)
    assert seen == list(range(len(batches)))  # every batch once, by exactly one worker
    rows = np.concatenate([batches[i].x for own in assignment for i in own])
    assert sorted(map(tuple, rows)) == sorted(map(tuple, x))  # every sample once
    assert len(losses) == len(batches) and np.isfinite(losses).all()


def test_stale_synchronous_bound_holds_and_async_exceeds_it():
    # Worker 0 is slowed down (5 ms a step). Asynchronously the other runs far ahead, so the
    # straggler's pushes arrive many updates late; with staleness s the lag of a gradient is at
    # most (W - 1)(2 s + 1) updates (1 for lock-step on 2 workers).
    def lags(mode, staleness):
        trainer = _train(float64_net(), epochs=1, batch=2, n=300, parallel_strategy="parameter_server", ps_mode=mode,
                         staleness=staleness, straggler=(0, 0.005))
        stats = trainer.parallel_stats()
        return stats["staleness_histogram"], stats["wait_time_s"]

    for s, bound in [(0, 1), (2, 5)]:
        stale, waited = lags("stale", s)
        assert max(stale) <= bound and sum(stale.values()) == 120, (s, stale)
        assert waited > 0  # the fast worker had to wait for the straggler
    free, _ = lags("async", None)
    assert max(free) > 1, free  # the lock-step bound does not hold without the waiting


class _FailsOnShortBatches(MeanSquared):
    def loss(self, target, prediction):
        if len(target.data) < 7:
            raise ValueError("short batch")
        return super().loss(target, prediction)


def test_a_dead_async_worker_is_reported_and_the_others_stop():
    # 40 examples in batches of 7: the sixth (index 5, of 5) goes to worker 5 % 2 = 1 and fails; in lock-step
    # (staleness 0) worker 0 would wait for it for ever if the failure were not passed on.
    x, y = regression_data()
    model = float64_net()
    trainer = Trainer(1, progress=False, enable_parallel=True, thread_count=2, parallel_backend="thread",
                      parallel_strategy="parameter_server", ps_mode="stale", staleness=0)
    trainer.init(ArrayDataset(x, y, batch_size=7), model, _FailsOnShortBatches(), SGD(model, lr=0.1))
    with pytest.raises(WorkerError, match="short batch") as info:
        trainer.train(shuffle=False)
    assert info.value.worker_id == 1
    trainer.shutdown()


@pytest.mark.parametrize("backend, batch", [("thread", 9), ("thread", 13),
                                            pytest.param("process", 9, marks=pytest.mark.slow)])
def test_local_sgd_every_step_with_sgd_equals_allreduce_float64(backend, batch):
    # batch 9: 40 examples in 9, 9, 9, 9, 4 (uneven shards); 13: the last batch of 1 leaves a worker idle.
    reference = float64_net()
    start = deep_copy_model(reference)
    _train(reference, batch=batch)
    model = deep_copy_model(start)
    trainer = _train(model, batch=batch, parallel_strategy="local_sgd", sync_every=1, parallel_backend=backend)
    _assert_same(model, reference)
    assert trainer.parallel_stats()["exchanges"] == 2 * (5 if batch == 9 else 4)


def test_local_sgd_with_longer_periods_exchanges_less_and_still_learns():
    model = float64_net()
    start = deep_copy_model(model)
    trainer = _train(model, Momentum, epochs=3, batch=4, parallel_strategy="local_sgd", sync_every=4)
    stats = trainer.parallel_stats()
    assert stats["exchanges"] == 3 * 3  # 10 steps per epoch: averages after 4, 8 and the epoch's end
    assert stats["updates"] == 3 * 10 * 2
    assert _moved(model, start) > 1e-3
    loss = trainer.monitor.history["loss"]
    assert loss[-1] < loss[0]


@pytest.mark.parametrize("settings, match", [
    (dict(parallel_strategy="gossip"), "parallel_strategy must be one of"),
    (dict(parallel_strategy="parameter_server", ps_mode="hogwild"), "ps_mode must be one of"),
    (dict(parallel_strategy="parameter_server", ps_mode="stale", staleness=-1), "staleness=s, an int >= 0"),
    (dict(parallel_strategy="parameter_server", ps_mode="stale"), "needs staleness"),
    (dict(parallel_strategy="parameter_server", ps_mode="async", staleness=2), "applies to ps_mode='stale'"),
    (dict(parallel_strategy="parameter_server", num_servers=0), "num_servers must be an int >= 1"),
    (dict(parallel_strategy="local_sgd", sync_every=0), "sync_every must be an int >= 1"),
    (dict(sync_every=4), "sync_every applies to parallel_strategy='local_sgd'"),
    (dict(ps_mode="async"), "apply to parallel_strategy='parameter_server'"),
    (dict(parallel_strategy="parameter_server", allreduce_algorithm="ring"), "allreduce_algorithm='ring' applies"),
    (dict(parallel_strategy="local_sgd", compression="zip"), "compression: unknown setting 'zip'"),
    (dict(parallel_strategy="local_sgd", allreduce_algorithm="ring"), "allreduce_algorithm='ring' applies"),
    (dict(compression="int8", allreduce_algorithm="ring"), "compression='int8' cannot travel by "
                                                           "allreduce_algorithm='ring'"),
])
def test_bad_settings_are_refused_clearly(settings, match):
    with pytest.raises(ValueError, match=match):
        Trainer(1, enable_parallel=True, **settings)


def test_gradient_accumulation_is_refused_where_workers_update_on_their_own():
    for settings in [dict(parallel_strategy="local_sgd", sync_every=2),
                     dict(parallel_strategy="parameter_server", ps_mode="async")]:
        with pytest.raises(ValueError, match="accumulate_steps=2 cannot be combined"):
            Trainer(1, enable_parallel=True, accumulate_steps=2, **settings)


def test_more_servers_than_parameters_are_refused():
    # (Asynchronous modes on processes and MPI: test_ps_async.py and test_ps_async_mpi.py.)
    x, y = regression_data()
    model = float64_net()
    trainer = Trainer(1, progress=False, enable_parallel=True, thread_count=2, parallel_backend="thread",
                      parallel_strategy="parameter_server", num_servers=5)
    with pytest.raises(ValueError, match="num_servers must be between 1 and the model's 4"):
        trainer.init(ArrayDataset(x, y, batch_size=8), model, MeanSquared(), SGD(model, lr=0.1))


def test_compressed_sync_pushes_equal_compressed_allreduce():
    # Both add, in worker order, the decoded payloads of each worker's own compressor (its own error
    # feedback residuals): the servers must end where compressed all-reduce ends, not where dense does.
    from tinyai.parallel.compression import ErrorFeedback, TopK

    start = float64_net()
    runs = {}
    for name, options in {"allreduce": {"compression": ErrorFeedback(TopK(0.2))},
                          "ps": {"parallel_strategy": "parameter_server", "num_servers": 2,
                                 "compression": ErrorFeedback(TopK(0.2))},
                          "dense": {"parallel_strategy": "parameter_server"}}.items():
        model = deep_copy_model(start)
        runs[name] = (model, _train(model, **options).parallel_stats())
    _assert_same(runs["ps"][0], runs["allreduce"][0])
    assert _moved(runs["ps"][0], runs["dense"][0]) > 1e-6
    # float64 model: a dense push is 8 bytes an entry, a top-20% one 0.2 x (8 + 4-byte index); pulls are dense.
    entries = sum(p.data.size for p in start.params())
    assert runs["dense"][1]["bytes_sent"] == 8 * 2 * (8 * entries + 8 * entries)  # 8 steps x 2 workers
    assert runs["ps"][1]["bytes_sent"] < runs["dense"][1]["bytes_sent"] * (0.2 * 12 + 8) / 16 * 1.1


def test_async_pushes_can_be_compressed():
    model = float64_net()
    start = deep_copy_model(model)
    trainer = _train(model, epochs=3, batch=4, parallel_strategy="parameter_server", ps_mode="async",
                     compression="int8")
    stats = trainer.parallel_stats()
    entries = sum(p.data.size for p in model.params())
    # Per push: one byte per value and one float64 scale per tensor (4 tensors), then a dense float64 pull.
    assert stats["bytes_sent"] == 3 * 10 * ((entries + 4 * 8) + entries * 8)
    loss = trainer.monitor.history["loss"]
    assert _moved(model, start) > 1e-3 and loss[-1] < loss[0]


def test_compression_with_a_strategy_that_takes_none_is_refused():
    from tinyai.parallel import HybridParallel, ProcessGrid, ThreadWorld
    from tinyai.parallel.compression import TopK

    grid = ProcessGrid(ThreadWorld(1).communicator(0), data=1, tensor=1)
    with pytest.raises(ValueError, match="compression='topk' applies to data-parallel training .* not to "
                                         "strategy=HybridParallel"):
        Trainer(1, strategy=HybridParallel(grid), compression="topk")
    for ratio in (0, 1.5, -0.1):
        with pytest.raises(ValueError, match="ratio must be in"):
            Trainer(1, enable_parallel=True, parallel_strategy="local_sgd", compression=TopK(ratio))


def _linear_data(n=50, seed=3):
    """Targets a linear map of the inputs plus a little noise: a task the net can learn well."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 6))
    return x, x @ rng.standard_normal((6, 3)) * 0.5 + 0.01 * rng.standard_normal((n, 3))


@pytest.mark.parametrize("optimizer", [SGD, Momentum])
def test_local_sgd_every_step_with_an_exact_compressor_equals_uncompressed_float64(optimizer):
    # TopK(1.0) keeps every entry: what arrives is each worker's weighted delta, exactly, so the average
    # last + sum_k w_k (p_k - last) is sum_k w_k p_k up to rounding. Batches of 10 give every worker 5
    # examples each step: equal shares, with which local momentum averages to the all-reduce momentum too.
    from tinyai.parallel.compression import TopK

    start = float64_net()
    reference = deep_copy_model(start)
    _train(reference, optimizer)  # single thread
    for options in [dict(sync_every=1), dict(sync_every=1, compression=TopK(1.0))]:
        model = deep_copy_model(start)
        trainer = _train(model, optimizer, parallel_strategy="local_sgd", **options)
        _assert_same(model, reference)
    stats = trainer.parallel_stats()
    entries = sum(p.data.size for p in start.params())
    # 8 averages, each an all-gather between 2 workers of every entry as a float64 value and an int32 index.
    assert stats["exchanges"] == 8
    assert stats["bytes_sent"] == 8 * 2 * entries * (8 + 4)
    assert stats["bytes_dense"] == 8 * 2 * entries * 4


@pytest.mark.parametrize("backend", ["thread", pytest.param("process", marks=pytest.mark.slow)])
def test_compressed_local_sgd_sends_int8_deltas_and_learns_as_well(backend):
    from tinyai.parallel.compression import ErrorFeedback, TopK

    x, y = _linear_data()
    runs = {}
    for name, compression in [("dense", None), ("int8", "int8"), ("topk", ErrorFeedback(TopK(0.25)))]:
        model = float64_net()
        trainer = Trainer(4, progress=False, enable_parallel=True, thread_count=2, parallel_backend=backend,
                          parallel_strategy="local_sgd", sync_every=2, compression=compression)
        trainer.init(ArrayDataset(x, y, batch_size=4), model, MeanSquared(), Momentum(model, lr=0.05))
        with trainer:
            ta.seed(11)
            trainer.train(shuffle=False)
        runs[name] = (trainer.monitor.history["loss"], trainer.parallel_stats())
    entries = sum(p.data.size for p in float64_net().params())
    # 10 steps an epoch, H = 2: 5 averages an epoch, 4 epochs. An int8 delta is one byte an entry and a
    # float64 scale for each of the 4 tensors; dense local SGD sends the parameters and the momentum.
    int8 = runs["int8"][1]
    assert int8["exchanges"] == 4 * 5
    assert int8["bytes_sent"] == 20 * 2 * (entries + 4 * 8)
    assert int8["bytes_dense"] == 20 * 2 * entries * 4
    assert runs["dense"][1]["bytes_sent"] == 20 * 2 * 2 * entries * 8
    dense_loss = runs["dense"][0][-1]
    assert dense_loss < 0.5 * runs["dense"][0][0]  # the task is learnt...
    assert abs(runs["int8"][0][-1] - dense_loss) < 0.1 * dense_loss  # ... as well with int8 deltas
    # Top-k 25% with error feedback: a float64 value and an int32 index for a quarter of the entries,
    # 3 bytes an entry against float32's 4; and it still learns.
    assert runs["topk"][1]["bytes_sent"] < 0.8 * runs["topk"][1]["bytes_dense"]
    assert runs["topk"][0][-1] < 0.3 * runs["topk"][0][0]


def test_local_sgd_resumed_from_a_checkpoint_continues_exactly(tmp_path):
    # The averaged momentum is in the checkpoint; a resumed run's replicas must start from it, not afresh.
    x, y = _linear_data()
    path = tmp_path / "local_sgd.npz"

    def run(epochs, **checkpoint):
        model = float64_net()
        options = dict(progress=None, eval_every=0, enable_parallel=True, thread_count=2, parallel_backend="thread",
                       parallel_strategy="local_sgd", sync_every=2)
        setup = dict(dataset=ArrayDataset(x, y, batch_size=4), model=model, loss=MeanSquared(),
                     optimizer=Momentum(model, lr=0.05))
        if "resume" in checkpoint:
            trainer = Trainer.resume(checkpoint["resume"], max_epoch=epochs, **setup, **options)
        else:
            trainer = Trainer(epochs, checkpoint_path=checkpoint.get("save"), **setup, **options)
        with trainer:
            ta.seed(11)
            trainer.train(shuffle=False)
        return model

    uninterrupted = run(2)
    run(1, save=path)
    _assert_same(run(2, resume=path), uninterrupted)
