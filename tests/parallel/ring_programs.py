"""SPMD programs for ring all-reduce, runnable under ``spmd`` and ``mpiexec``.

``python -m tests.parallel.ring_programs OUT`` (under ``mpiexec -n 5``)
runs ``ring_checks`` on the world and on sub-communicators of 2, 3 and 4
ranks, and writes rank r's results to OUT/rank{r}.npz. The expected values
are computed by ``expected`` with plain NumPy (inputs summed in rank order),
never from a communicator's output.
"""
from __future__ import annotations

import sys

import numpy as np

SHAPES = [(), (1,), (2,), (7, 3), (1000,), (0, 4)]


def rank_input(rank: int, shape: tuple, dtype: str) -> np.ndarray:
    """Rank ``rank``'s input: random normal floats, or integers in [-100, 100)."""
    rng = np.random.default_rng([rank, len(shape), int(np.prod(shape))])
    if dtype == "int64":
        return rng.integers(-100, 100, shape)
    return rng.standard_normal(shape).astype(dtype)


class CountingComm:
    """Passes ``send``/``recv`` through to ``comm`` and counts what this rank sends."""

    def __init__(self, comm) -> None:
        self.comm, self.rank, self.size = comm, comm.rank, comm.size
        self.sends = 0
        self.bytes_sent = 0

    def send(self, array, dest, tag=0):
        assert dest == (self.rank + 1) % self.size, "a ring sends only to its right neighbour"
        self.sends += 1
        self.bytes_sent += array.nbytes
        self.comm.send(array, dest, tag)

    def recv(self, source, tag=0):
        assert source == (self.rank - 1) % self.size, "a ring receives only from its left neighbour"
        return self.comm.recv(source, tag)


def ring_checks(comm, prefix: str = "") -> dict[str, np.ndarray]:
    """ring_allreduce of every (shape, dtype, op) case; results named for comparison with ``expected``."""
    from tinyai.parallel.ring import ring_allreduce
    from tinyai.testing.standin import StandInArray, xp

    out: dict[str, np.ndarray] = {}
    for shape in SHAPES:
        for dtype in ("float64", "float32", "int64"):
            x = rank_input(comm.rank, shape, dtype)
            before = x.copy()
            counting = CountingComm(comm)
            result = ring_allreduce(counting, x)
            assert np.array_equal(x, before), "ring_allreduce changed its input"
            assert result.shape == x.shape and result.dtype == x.dtype, (result.shape, result.dtype)
            key = f"{prefix}sum.{dtype}.{shape}"
            out[key] = result
            out[f"{key}.sends"] = np.array(counting.sends)
            out[f"{key}.bytes"] = np.array(counting.bytes_sent)
    x = rank_input(comm.rank, (7, 3), "float64")
    out[f"{prefix}max"] = ring_allreduce(comm, x, op="max")
    out[f"{prefix}mean"] = ring_allreduce(comm, x, op="mean")
    device = ring_allreduce(comm, xp.asarray(x))
    assert isinstance(device, StandInArray), type(device)  # stays on the (stand-in) device
    out[f"{prefix}device"] = device.get()
    return out


def with_subgroups(comm) -> dict[str, np.ndarray]:
    """``ring_checks`` on the world and, through ``split``, on its first 2, 3, ... size-1 ranks."""
    out = ring_checks(comm, prefix=f"n{comm.size}.")
    for n in range(2, comm.size):
        group = comm.split(0 if comm.rank < n else None)
        if group is not None:
            out.update(ring_checks(group, prefix=f"n{n}."))
    return out


def expected(rank: int, size: int, prefix: str = "") -> dict[str, np.ndarray]:
    """What ``ring_checks`` must return on ``rank`` of a world of ``size`` (sums in rank order)."""
    e = {}
    for shape in SHAPES:
        for dtype in ("float64", "float32", "int64"):
            inputs = [rank_input(r, shape, dtype) for r in range(size)]
            total = inputs[0].copy()
            for other in inputs[1:]:
                total = total + other
            key = f"{prefix}sum.{dtype}.{shape}"
            e[key] = total
            # 2 (N - 1) messages; rank r sends every chunk but r + 1, then every chunk but r + 2.
            n = int(np.prod(shape))
            chunks = [len(c) for c in np.array_split(np.arange(n), size)]
            itemsize = np.dtype(dtype).itemsize
            e[f"{key}.sends"] = np.array(2 * (size - 1) if size > 1 else 0)
            e[f"{key}.bytes"] = np.array(
                (2 * n - chunks[(rank + 1) % size] - chunks[(rank + 2) % size]) * itemsize if size > 1 else 0)
    inputs = [rank_input(r, (7, 3), "float64") for r in range(size)]
    e[f"{prefix}max"] = np.maximum.reduce(inputs)
    e[f"{prefix}mean"] = sum(inputs) / size
    e[f"{prefix}device"] = sum(inputs)
    return e


def assert_as_expected(results: list[dict[str, np.ndarray]], size: int, prefix: str = "") -> None:
    """Every rank's results equal the expectation, and are bit-identical across ranks."""
    assert len(results) == size
    for rank, got in enumerate(results):
        want = expected(rank, size, prefix)
        for key, value in want.items():
            assert key in got, f"rank {rank} of {size}: {key} missing"
            if value.dtype.kind == "f":
                # The ring adds in ring order, not rank order: equal up to rounding.
                tol = 1e-5 if value.dtype == np.float32 else 1e-12
                np.testing.assert_allclose(got[key], value, rtol=tol, atol=tol, err_msg=f"rank {rank}: {key}")
            else:
                np.testing.assert_array_equal(got[key], value, err_msg=f"rank {rank}: {key}")
            if not key.endswith((".sends", ".bytes")):
                assert got[key].dtype == value.dtype, (key, got[key].dtype)
                np.testing.assert_array_equal(got[key], results[0][key],
                                              err_msg=f"rank {rank} differs from rank 0 in {key}")


if __name__ == "__main__":
    from pathlib import Path

    from tinyai.parallel import mpi_world

    world = mpi_world()
    results = with_subgroups(world)
    np.savez(Path(sys.argv[1]) / f"rank{world.rank}.npz", **results)
