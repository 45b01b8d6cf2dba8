"""GradientAggregator: weighted averages, blocking, failures."""
import threading
import time

import numpy as np
import pytest

from tinyai.parallel import GradientAggregator


def test_weighted_average_equals_full_batch_mean():
    # Per-example gradients g_i; shards hold means over their examples.
    rng = np.random.default_rng(0)
    per_example = rng.standard_normal((10, 4))
    agg = GradientAggregator(3)
    for a, b in [(0, 4), (4, 7), (7, 10)]:
        agg.submit_gradients({"W": per_example[a:b].mean(axis=0)}, batch_size=b - a)
    np.testing.assert_allclose(agg.get_average_gradients()["W"], per_example.mean(axis=0), rtol=1e-12)


def test_blocks_until_all_submissions_arrive():
    agg = GradientAggregator(2)
    agg.submit_gradients({"W": np.array([2.0])}, batch_size=1)
    assert not agg.is_ready()
    assert agg.get_submission_count() == 1

    def late():
        time.sleep(0.2)
        agg.submit_gradients({"W": np.array([4.0])}, batch_size=1)

    t = threading.Thread(target=late)
    t.start()
    result = agg.get_average_gradients(timeout=5)
    t.join()
    assert result["W"].tolist() == [3.0]
    assert agg.is_ready()


def test_timeout_names_the_count():
    agg = GradientAggregator(3)
    agg.submit_gradients({"W": np.zeros(1)}, batch_size=2)
    with pytest.raises(TimeoutError, match="1 of 3"):
        agg.get_average_gradients(timeout=0.05)


def test_failed_shard_is_left_out_not_averaged_as_zero():
    agg = GradientAggregator(2)
    agg.submit_gradients({"W": np.array([6.0])}, batch_size=3)
    agg.submit_failure(1, ValueError("boom"))
    assert agg.get_average_gradients()["W"].tolist() == [6.0]
    assert [w for w, _ in agg.failures] == [1]


def test_all_failed_raises():
    agg = GradientAggregator(1)
    agg.submit_failure(0, ValueError("boom"))
    with pytest.raises(RuntimeError, match="all 1 shards failed"):
        agg.get_average_gradients()


def test_reset_and_overflow():
    agg = GradientAggregator(1)
    agg.submit_gradients({"W": np.ones(1)}, batch_size=1)
    with pytest.raises(RuntimeError, match="reset"):
        agg.submit_gradients({"W": np.ones(1)}, batch_size=1)
    agg.reset()
    assert agg.get_submission_count() == 0


def test_concurrent_submissions_are_all_counted():
    agg = GradientAggregator(50)
    threads = [threading.Thread(target=agg.submit_gradients, args=({"W": np.array([float(i)])}, 1))
               for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert agg.get_average_gradients(timeout=5)["W"].item() == pytest.approx(np.mean(range(50)))


@pytest.mark.parametrize("bad", [0, -1, 2.5, "2"])
def test_invalid_expected_count(bad):
    with pytest.raises(ValueError, match="expected_submissions"):
        GradientAggregator(bad)


def test_tinyai_idiom_without_batch_size_gives_equal_weights_and_parameters_submit_their_gradients():
    import tinyai as ta
    from tinyai.nn import Parameter

    agg = GradientAggregator(2)
    w1, w2 = Parameter(np.array([10.0, 20.0]), name="W"), Parameter(np.array([-7.0, 3.0]), name="W")
    w1.grad = ta.Variable(np.array([1.0, 3.0]))
    w2.grad = ta.Variable(np.array([5.0, -1.0]))
    unused = Parameter(np.array([9.0]), name="b")  # no gradient: adds nothing
    agg.submit_gradients({"W": w1, "b": unused})
    agg.submit_gradients({"W": w2})
    average = agg.get_average_gradients()
    np.testing.assert_array_equal(average["W"], [3.0, 1.0])  # (g1 + g2) / 2, not the values
    assert "b" not in average


def test_mixing_weighted_and_unweighted_submissions_or_non_arrays_is_refused():
    agg = GradientAggregator(2)
    agg.submit_gradients({"W": np.array([1.0])})
    with pytest.raises(ValueError, match="mixes submissions with and without batch_size"):
        agg.submit_gradients({"W": np.array([1.0])}, batch_size=3)
    with pytest.raises(TypeError, match=r"gradient of 'W' must be an array, a Variable or a Parameter"):
        GradientAggregator(1).submit_gradients({"W": [1.0, 2.0]})
    with pytest.raises(ValueError, match="batch_size must be a positive int or None"):
        GradientAggregator(1).submit_gradients({"W": np.array([1.0])}, batch_size=0)


def test_parallel_batch_processor_is_exported_and_callable():
    import tinyai as ta
    from tinyai.parallel import BatchProcessResult, ParallelBatchProcessor

    from tests.parallel.models import MeanSquared, TwoLayerNet

    ta.seed(0)
    model = TwoLayerNet()
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((5, 6)).astype(np.float32), rng.standard_normal((5, 3)).astype(np.float32)
    agg = GradientAggregator(1)
    processor = ParallelBatchProcessor(model, MeanSquared(), x, y, worker_id=3, aggregator=agg)
    result = processor.call()
    assert isinstance(result, BatchProcessResult) and result.success and result.worker_id == 3
    assert result.batch_size == 5 and np.isfinite(result.loss)
    value = MeanSquared().loss(ta.Variable(y), model(ta.Variable(x)))
    model.clear_grads()
    value.backward()
    for name, p in model.named_params():
        np.testing.assert_allclose(agg.get_average_gradients()[name], p.grad.data, rtol=1e-6, err_msg=name)
    assert ParallelBatchProcessor(model, MeanSquared(), x, y, worker_id=0)().success  # the callable entry point


def test_aggregate_is_the_plain_mean_of_worker_maps_name_by_name():
    maps = [{"W": np.array([1.0, 2.0]), "b": np.array([4.0])}, {"W": np.array([3.0, -2.0])}]
    result = GradientAggregator.aggregate(maps)
    np.testing.assert_array_equal(result["W"], [2.0, 0.0])
    np.testing.assert_array_equal(result["b"], [4.0])  # only the worker that has it
    assert GradientAggregator.aggregate([]) == {}
