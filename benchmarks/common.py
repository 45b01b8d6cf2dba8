"""What every benchmark section shares: timing, machine description, tables, JSON.

Timing follows three rules that make numbers on a busy machine worth reading:

* warm up first (caches, lazy imports, BLAS thread pools start on first use);
* repeat many times and report the *median*, with the interquartile range as
  the spread: one slow repeat (another process took the core) moves neither;
* when two implementations are compared, run their repeats *interleaved*
  (A, B, A, B, ...), so a slow minute of the machine hurts both alike and
  their ratio stays fair.

The garbage collector is switched off while timing, as ``timeit`` does: tinyai
frees its graphs by reference counting, so nothing piles up meanwhile.

The clock is wall time by default. Work that runs on one thread may use
``clock=time.process_time`` instead: the CPU time of this process, which does
not count the time spent waiting for a core that another process holds, so it
stays meaningful on a shared machine. (Multi-threaded BLAS work needs wall
time: process time adds up the threads.)
"""
from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass
class Timing:
    """Seconds per call of one measured function: median and quartiles over the repeats.

    ``best`` is the fastest repeat: the least disturbed by other processes,
    useful beside the median when the machine is busy.
    """

    median: float
    best: float
    q1: float
    q3: float
    repeats: int
    calls_per_repeat: int

    @property
    def spread(self) -> float:
        """Interquartile range relative to the median (0.05 = the middle half lies within 5%)."""
        return (self.q3 - self.q1) / self.median if self.median > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "spread": self.spread}


def _quartiles(samples: list[float]) -> tuple[float, float, float]:
    if len(samples) < 2:
        return samples[0], samples[0], samples[0]
    q1, q2, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    return q2, q1, q3


Clock = Callable[[], float]


def calls_for(fn: Callable[[], Any], target_seconds: float, clock: Clock = time.perf_counter) -> int:
    """How many calls of ``fn`` make one repeat last about ``target_seconds`` (at least 1)."""
    start = clock()
    fn()
    once = max(clock() - start, 1e-7)
    return max(1, int(target_seconds / once))


def compare(fns: dict[str, Callable[[], Any]], repeat: int = 30, warmup: int = 3,
            target_seconds: float = 0.02, clock: Clock = time.perf_counter) -> dict[str, Timing]:
    """Time several functions with interleaved repeats; seconds per call of each.

    Each function is first called ``warmup`` times, then given its own number
    of calls per repeat (so that a repeat lasts about ``target_seconds``),
    then all are timed in turn, ``repeat`` rounds.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    calls = {name: calls_for(fn, target_seconds, clock) for name, fn in fns.items()}
    samples: dict[str, list[float]] = {name: [] for name in fns}
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            for name, fn in fns.items():
                n = calls[name]
                start = clock()
                for _ in range(n):
                    fn()
                samples[name].append((clock() - start) / n)
    finally:
        if gc_was_enabled:
            gc.enable()
    timings = {}
    for name, values in samples.items():
        median, q1, q3 = _quartiles(values)
        timings[name] = Timing(median, min(values), q1, q3, repeat, calls[name])
    return timings


def measure(fn: Callable[[], Any], repeat: int = 30, warmup: int = 3, target_seconds: float = 0.02,
            clock: Clock = time.perf_counter) -> Timing:
    """Time one function: seconds per call, median over ``repeat`` repeats."""
    return compare({"fn": fn}, repeat=repeat, warmup=warmup, target_seconds=target_seconds, clock=clock)["fn"]


def machine_info() -> dict[str, Any]:
    """Python, NumPy, CPU count and the BLAS library with its thread count."""
    import numpy as np

    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    try:
        from threadpoolctl import threadpool_info  # dev extra: pip install 'tinyai-numpy[dev]'
    except ImportError:
        info["blas"] = "unknown (install threadpoolctl, in the dev extra, to see BLAS threads)"
    else:
        info["blas"] = [
            {"library": pool.get("internal_api"), "version": pool.get("version"),
             "threads": pool.get("num_threads"), "threading_layer": pool.get("threading_layer"),
             "kernel": pool.get("architecture")}
            for pool in threadpool_info() if pool.get("user_api") == "blas"
        ]
    # Set by benchmarks.__main__ when it dropped OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE.
    info["dropped_env"] = os.environ.get("TINYAI_BENCH_DROPPED_ENV", "")
    return info


def describe_machine(info: dict[str, Any]) -> str:
    """One line per fact, for the head of the printed report."""
    blas = info["blas"]
    if isinstance(blas, list):
        blas = ", ".join(f"{b['library']} {b['version']} ({b['threads']} threads"
                         + (f", {b['kernel']} kernel" if b.get("kernel") else "") + ")" for b in blas) or "none found"
    if info.get("dropped_env"):
        blas += f"; run without {info['dropped_env']} (see python -m benchmarks --help)"
    return (f"Python {info['python']} ({info['implementation']}), NumPy {info['numpy']}, "
            f"{info['cpu_count']} CPUs, {info['platform']}\nBLAS: {blas}")


def format_bytes(nbytes: float) -> str:
    """``nbytes`` in the largest unit that keeps it at 1 or more: "64 MB", "16 KB", "512 B"."""
    for unit, scale in (("MB", 1 << 20), ("KB", 1 << 10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.0f} {unit}"
    return f"{nbytes:.0f} B"


def format_table(headers: list[str], rows: list[list[Any]]) -> str:
    """A plain-text table, numbers right-aligned."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule] + [line(row) for row in cells[1:]])


def pass_or_miss(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def write_results(section: str, data: dict[str, Any], machine: dict[str, Any]) -> Path:
    """Write one section's results to benchmarks/results/<section>.json and return the path."""
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{section}.json"
    path.write_text(json.dumps({"section": section, "machine": machine, **data}, indent=2) + "\n")
    return path
