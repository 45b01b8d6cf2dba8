"""Tensor parallelism on this machine: an MLP with hidden size 4096, split over 1, 2 and 4 ranks.

The block is Megatron's MLP, y = gelu(x W1 + b1) W2 + b2 with d = 1024 and
hidden h = 4096, float32, a batch of 64 rows; one training step is forward,
backward and an SGD update. For each layout the table gives

* parameter memory per rank (W1, W2 and biases: about 1/T of the block's);
* bytes each rank hands to collectives per step (counted by a
  ``CountingCommunicator``): one all-reduce of the (64, 1024) output forward
  and one of the input gradient backward, whatever T;
* the median time per step, with the ratio over the unsplit block.

The rank layouts are run interleaved in rounds, so a busy machine slows
them alike. The scaling model (printed below the table) says where
splitting pays: per step a rank computes 6 B d h / T flops and all-reduces
2 B d numbers, which a ring sends as 2 (T - 1) / T times their bytes, so

    compute / communication = (6 B d h / T / F) / (4 (T - 1) / T * B d s / W)
                            = 1.5 h W / ((T - 1) s F)

for F flop/s per rank, W bytes/s between ranks and s bytes per number:
independent of batch and width, growing with the hidden size.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

SECTION = "tensor_parallel"
TITLE = "Tensor-parallel MLP, d 1024 -> hidden 4096 -> 1024, batch 64, float32 (time per step; ratio over unsplit)"

D, HIDDEN, BATCH = 1024, 4096, 64
LAYOUTS = (("unsplit", 1, "single"), ("thread x1", 1, "thread"), ("thread x2", 2, "thread"),
           ("thread x4", 4, "thread"), ("process x2", 2, "process"))


def _problem():
    import tinyai as ta
    from tinyai.nn.transformer import FeedForward

    ta.seed(0)
    block = FeedForward(D, HIDDEN, "gelu")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, D)).astype(np.float32)
    y = rng.standard_normal((BATCH, D)).astype(np.float32)
    return block, x, y


def rank_program(comm: Any, steps: int) -> dict[str, Any]:
    """On every rank: split the block, time ``steps`` training steps; memory, bytes and times."""
    import tinyai.functions as F
    from tinyai import optim
    from tinyai.parallel.tensor import CountingCommunicator, TensorParallelMLP

    block, x, y = _problem()
    log = CountingCommunicator(comm)
    split = TensorParallelMLP.from_block(block, log)
    optimizer = optim.SGD(split, lr=1e-3)
    times = []
    for step in range(steps + 1):
        comm.barrier()
        log.clear()
        start = time.perf_counter()
        split.clear_grads()
        loss = F.mean_squared_error(split(x), y)
        loss.backward()
        optimizer.update()
        times.append(time.perf_counter() - start)
    return {"param_bytes": sum(p.data.nbytes for p in split.params()), "comm_bytes": log.total_bytes(),
            "times": times[1:]}


def _unsplit(steps: int) -> dict[str, Any]:
    import tinyai.functions as F
    from tinyai import optim

    block, x, y = _problem()
    optimizer = optim.SGD(block, lr=1e-3)
    times = []
    for step in range(steps + 1):
        start = time.perf_counter()
        block.clear_grads()
        F.mean_squared_error(block(x), y).backward()
        optimizer.update()
        times.append(time.perf_counter() - start)
    return {"param_bytes": sum(p.data.nbytes for p in block.params()), "comm_bytes": 0, "times": times[1:]}


def measure(rounds: int = 3, steps: int = 3) -> dict[str, Any]:
    """Every layout, ``rounds`` times interleaved, ``steps`` timed steps each; the table's numbers."""
    from tinyai.parallel import spmd

    samples: dict[str, list[float]] = {name: [] for name, _, _ in LAYOUTS}
    info: dict[str, dict[str, Any]] = {}
    for _ in range(rounds):
        for name, ranks, backend in LAYOUTS:
            if backend == "single":
                result = _unsplit(steps)
            else:
                per_rank = spmd(rank_program, ranks, backend=backend, timeout=600, args=(steps,))
                # A step is as slow as its slowest rank.
                result = {**per_rank[0], "times": [max(t) for t in zip(*(r["times"] for r in per_rank))]}
            samples[name].extend(result["times"])
            info[name] = {"ranks": ranks, "backend": backend, "param_bytes": result["param_bytes"],
                          "comm_bytes": result["comm_bytes"]}
    import os

    base = float(np.median(samples["unsplit"]))
    rows = []
    for name, ranks, backend in LAYOUTS:
        median = float(np.median(samples[name]))
        # What a ring all-reduce puts on the wire: 2 (T - 1) / T of the payload (nothing for one rank).
        wire = info[name]["comm_bytes"] * 2 * (ranks - 1) / ranks
        rows.append({"layout": name, **info[name], "wire_bytes": wire, "ms_per_step": median * 1e3,
                     "ratio": base / median})
    # The machine is shared: the load average says how many cores' worth of other work competed.
    return {"rows": rows, "d": D, "hidden": HIDDEN, "batch": BATCH, "load_average": os.getloadavg()[0],
            "cpus": os.cpu_count()}


def run(quick: bool = False) -> dict[str, Any]:
    return measure(rounds=1 if quick else 3, steps=2 if quick else 3)


def scaling_model(hidden: int, ranks: int, flops: float, bandwidth: float, itemsize: int) -> float:
    """compute / communication time of a Megatron MLP step: 1.5 h W / ((T - 1) s F)."""
    return 1.5 * hidden * bandwidth / ((ranks - 1) * itemsize * flops)


def report(data: dict[str, Any]) -> str:
    from benchmarks.common import format_table

    rows = [[r["layout"], f"{r['param_bytes'] / 2**20:.1f} MiB", f"{r['comm_bytes'] / 2**10:.0f} KiB",
             f"{r['wire_bytes'] / 2**10:.0f} KiB", f"{r['ms_per_step']:.0f} ms", f"x{r['ratio']:.2f}"]
            for r in data["rows"]]
    table = format_table(["layout", "params per rank", "all-reduced per rank per step", "ring wire bytes",
                          "time per step", "vs unsplit"], rows)
    table += f"\nload average during the run: {data['load_average']:.1f} on {data['cpus']} CPUs"
    model = [f"compute/communication (T=2, h={data['hidden']}, float32): "
             f"{scaling_model(data['hidden'], 2, flops, bandwidth, 4):.1f} with {what}"
             for what, flops, bandwidth in (("a CPU core (50 GFLOP/s) and shared memory (5 GB/s)", 5e10, 5e9),
                                            ("a GPU (100 TFLOP/s) and NVLink (300 GB/s)", 1e14, 3e11),
                                            ("a GPU (100 TFLOP/s) and PCIe (16 GB/s)", 1e14, 1.6e10))]
    return table + "\n" + "\n".join(model)
