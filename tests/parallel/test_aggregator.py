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
