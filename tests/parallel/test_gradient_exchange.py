"""GradientExchange: dense (direct, ring) and compressed sums of named gradients across ranks."""
import math

import numpy as np
import pytest

from tinyai.parallel import spmd
from tinyai.parallel.compression import ErrorFeedback, Int8, TopK
from tinyai.parallel.gradient_exchange import GradientExchange
from tinyai.parallel.stats import ParallelStats

SHAPES = {"fc1.W": (6, 5), "fc1.b": (5,), "fc2.W": (5, 3)}


def gradients_of(rank, step=0):
    rng = np.random.default_rng([rank, step])
    return {name: rng.standard_normal(shape) for name, shape in SHAPES.items()}


class RecordingComm:
    """The rank's communicator, recording which collectives were called with how many bytes."""

    def __init__(self, comm):
        self.comm, self.rank, self.size = comm, comm.rank, comm.size
        self.calls = []

    def allreduce(self, array, op="sum"):
        self.calls.append(("allreduce", array.nbytes))
        return self.comm.allreduce(array, op)

    def allgather(self, array):
        self.calls.append(("allgather", array.nbytes, str(array.dtype)))
        return self.comm.allgather(array)

    def send(self, array, dest, tag=0):
        self.calls.append(("send", array.nbytes))
        self.comm.send(array, dest, tag)

    def recv(self, source, tag=0):
        return self.comm.recv(source, tag)


def exchange_program(comm, algorithm, compression, steps):
    recording = RecordingComm(comm)
    stats = ParallelStats()
    exchange = GradientExchange(algorithm, compression, stats).for_worker(comm.rank)
    sums = [exchange.sum(recording, gradients_of(comm.rank, t)) for t in range(steps)]
    return sums, recording.calls, stats.as_dict()


def expected_dense(size, step=0):
    per_rank = [gradients_of(r, step) for r in range(size)]
    return {name: sum(g[name] for g in per_rank) for name in SHAPES}


@pytest.mark.parametrize("algorithm", ["direct", "ring"])
def test_dense_exchange_sums_in_one_collective(algorithm):
    size = 3
    results = spmd(exchange_program, size, backend="thread", timeout=30, args=(algorithm, None, 2))
    entries = sum(math.prod(s) for s in SHAPES.values())
    for sums, calls, stats in results:
        for step in range(2):
            for name, want in expected_dense(size, step).items():
                np.testing.assert_allclose(sums[step][name], want, rtol=1e-12, atol=1e-12)
                np.testing.assert_array_equal(sums[step][name], results[0][0][step][name])  # same bits everywhere
        if algorithm == "direct":
            assert calls == [("allreduce", entries * 8)] * 2  # one flat buffer per step, not one per parameter
        else:
            assert {c[0] for c in calls} == {"send"} and len(calls) == 2 * 2 * (size - 1)
        # float64 sent, float32 as the dense reference: half the bytes.
        factor = 2 * (size - 1) if algorithm == "ring" else size * (size - 1)
        assert stats["bytes_sent"] == 2 * factor * entries * 8
        assert stats["bytes_dense"] == 2 * factor * entries * 4


def top_k_rows(g, k):
    """Independent oracle: the k largest magnitudes kept (by a full sort), the rest zero."""
    flat = g.reshape(-1)
    keep = np.argsort(-np.abs(flat), kind="stable")[:k]
    out = np.zeros_like(flat)
    out[keep] = flat[keep]
    return out.reshape(g.shape)


def test_compressed_exchange_gathers_the_payloads_and_sums_them():
    size, ratio = 4, 0.2
    results = spmd(exchange_program, size, backend="thread", timeout=30, args=("ring", TopK(ratio), 1))
    ks = {name: max(1, math.floor(ratio * math.prod(s))) for name, s in SHAPES.items()}
    payload_bytes = sum(k * (8 + 4) for k in ks.values())  # float64 values, int32 indices
    for sums, calls, stats in results:
        for name, shape in SHAPES.items():
            want = sum(top_k_rows(gradients_of(r)[name], ks[name]) for r in range(size))
            np.testing.assert_allclose(sums[0][name], want, rtol=1e-13, atol=1e-13)
            np.testing.assert_array_equal(sums[0][name], results[0][0][0][name])
        # What crossed: one all-gather of this rank's compressed bytes, nothing dense.
        assert calls == [("allgather", payload_bytes, "uint8")]
        assert stats["bytes_sent"] == size * (size - 1) * payload_bytes
        assert stats["bytes_dense"] == size * (size - 1) * 4 * sum(math.prod(s) for s in SHAPES.values())


def test_error_feedback_state_is_per_worker_and_per_parameter():
    size, steps = 2, 3
    results = spmd(exchange_program, size, backend="thread", timeout=30,
                   args=("direct", ErrorFeedback(TopK(0.1)), steps))
    # Replay each worker alone with its own error feedback: the exchanged sums must match.
    workers = [ErrorFeedback(TopK(0.1)) for _ in range(size)]
    for t in range(steps):
        for name in SHAPES:
            want = sum(w.decompress(w.compress(gradients_of(r, t)[name], key=name)) for r, w in enumerate(workers))
            np.testing.assert_allclose(results[1][0][t][name], want, rtol=1e-13, atol=1e-13)


def test_int8_exchange_bytes_are_a_quarter_of_dense():
    size = 2
    results = spmd(exchange_program, size, backend="thread", timeout=30,
                   args=("direct", Int8(), 1))
    entries = sum(math.prod(s) for s in SHAPES.values())
    _, calls, stats = results[0]
    assert calls == [("allgather", entries + 8 * len(SHAPES), "uint8")]  # 1 byte each, one float64 scale per tensor
    assert stats["bytes_dense"] / stats["bytes_sent"] == pytest.approx(4 * entries / (entries + 8 * len(SHAPES)))


def test_unknown_algorithm_is_refused():
    with pytest.raises(ValueError, match=r"allreduce_algorithm: unknown algorithm 'tree'"):
        GradientExchange("tree")
    with pytest.raises(ValueError, match=r"compression: unknown setting 'gzip'"):
        GradientExchange("ring", "gzip")
