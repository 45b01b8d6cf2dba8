"""Ring all-reduce against MPI's own Allreduce, timed on the ranks of an MPI job.

    mpiexec -n 2 python -m benchmarks.mpi_allreduce OUT.json [--quick]

For each array size (float32, 1 KB to 64 MB) rank 0 times three ways of
summing the array over the ranks, interleaved (ring, MPI, tinyai, ring, ...)
so that a busy minute of the machine slows all three alike:

* ``ring``: ``tinyai.parallel.ring.ring_allreduce`` over the communicator's
  ``send``/``recv`` (2 (N - 1) messages of B / N bytes per rank);
* ``mpi``: mpi4py's buffer ``Allreduce`` (MPICH picks its own algorithm);
* ``tinyai``: ``mpi_world().allreduce``, the communicator's collective.

Every repeat starts after a barrier; the time is rank 0's, from the barrier
to the result (rank 0 cannot finish before every rank has contributed).
Rank 0 writes the medians to OUT.json.
"""
from __future__ import annotations

import json
import statistics
import sys
import time

import numpy as np

SIZES = [1 << 10, 1 << 12, 1 << 14, 1 << 16, 1 << 18, 1 << 20, 1 << 22, 1 << 24, 1 << 26]  # bytes
QUICK_SIZES = [1 << 10, 1 << 16, 1 << 20]


def _time(world, fn, repeats):
    samples = []
    for _ in range(repeats):
        world.barrier()
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def main(argv: list[str]) -> int:
    from mpi4py import MPI

    from tinyai.parallel import mpi_world
    from tinyai.parallel.ring import ring_allreduce

    out_path, quick = argv[0], "--quick" in argv
    world = mpi_world()
    raw = MPI.COMM_WORLD
    rows = []
    for nbytes in QUICK_SIZES if quick else SIZES:
        x = np.random.default_rng(world.rank).standard_normal(nbytes // 4).astype(np.float32)
        result = np.empty_like(x)
        ways = {
            "ring": lambda: ring_allreduce(world, x),
            "mpi": lambda: raw.Allreduce(x, result, op=MPI.SUM),
            "tinyai": lambda: world.allreduce(x),
        }
        for fn in ways.values():  # warm-up, and a check that the three agree
            fn()
        check = np.allclose(ring_allreduce(world, x), world.allreduce(x), rtol=1e-5, atol=1e-5)
        # About 1.5 s per size in all (less for the smallest), at least 3 repeats of each.
        once = max(statistics.median(_time(world, ways["ring"], 2)), 1e-6)
        repeats = max(3, min(200, int(0.5 / once)))
        if quick:
            repeats = min(repeats, 5)
        repeats = int(raw.bcast(repeats, root=0))
        samples: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(repeats):
            for name, fn in ways.items():
                samples[name] += _time(world, fn, 1)
        rows.append({"bytes": nbytes, "repeats": repeats, "agree": bool(check),
                     **{f"{name}_s": statistics.median(times) for name, times in samples.items()}})
    if world.rank == 0:
        with open(out_path, "w", encoding="utf-8") as f:
            json.dump({"ranks": world.size, "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
