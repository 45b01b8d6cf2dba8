"""ParallelStats: counters from many threads, wire models of the collectives."""
import threading

import pytest

from tinyai.parallel.stats import ParallelStats, allgather_wire_bytes, allreduce_wire_bytes


def test_counters_add_up_across_threads():
    stats = ParallelStats()

    def work():
        for _ in range(500):
            stats.record_exchange(sent=3, dense=12)
            stats.record_update()
            stats.record_staleness(2)
        stats.record_wait(0.5)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats.record_staleness(0)
    stats.add("pulls", 7)
    result = stats.as_dict()
    assert result["bytes_sent"] == 4 * 500 * 3 and result["bytes_dense"] == 4 * 500 * 12
    assert result["exchanges"] == 2000 and result["updates"] == 2000 and result["pulls"] == 7
    assert result["compression_ratio"] == 4.0
    assert result["wait_time_s"] == pytest.approx(2.0)
    assert result["staleness_histogram"] == {0: 1, 2: 2000}
    stats.reset()
    assert stats.as_dict()["bytes_sent"] == 0 and stats.as_dict()["compression_ratio"] is None


def test_wire_models():
    # 3 ranks, 100 bytes each: an all-gather delivers each array to 2 others.
    assert allgather_wire_bytes(100, 3) == 600
    # Ring: each rank sends 2 (N - 1) chunks of nbytes / N.
    assert allreduce_wire_bytes(120, 4, "ring") == 4 * 2 * 3 * 30
    assert allreduce_wire_bytes(120, 4, "direct") == 4 * 3 * 120
    assert allreduce_wire_bytes(120, 1, "ring") == 0
    with pytest.raises(ValueError, match="unknown algorithm 'tree'"):
        allreduce_wire_bytes(1, 2, "tree")
    with pytest.raises(ValueError, match="world_size must be at least 1, got 0"):
        allgather_wire_bytes(1, 0)
