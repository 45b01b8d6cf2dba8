"""Before/after: the op-overhead and MLP-step rows of two revisions of tinyai, timed side by side.

    python -m benchmarks.compare_revisions OLD              # OLD against this working tree
    python -m benchmarks.compare_revisions OLD --new NEW    # two commits
    python -m benchmarks.compare_revisions edbe7e6~1 --rounds 60

A question like "did this change make ``add`` 5% slower?" cannot be answered
by running ``python -m benchmarks op_overhead`` once before and once after:
on a shared machine two runs minutes apart differ by more than that. So the
two revisions are timed in one run, turn about:

* each revision lives in its own Python process (a worker), which imports
  tinyai from that revision's checkout (OLD comes from a temporary ``git
  worktree``; the new one is this working tree unless ``--new`` names a
  commit). Both run the *same* benchmark code, this tree's
  ``benchmarks.bench_ops`` and ``benchmarks.bench_mlp``, so only tinyai differs;
* the parent asks the workers for one repeat at a time, alternating which
  goes first, for many rounds; each repeat makes the same number of calls in
  both workers, and only one worker runs at a time;
* a repeat is timed in *process CPU time* (``time.process_time``), which does
  not count the time the worker waited for a core another process held, with
  the garbage collector off as ``timeit`` does; BLAS runs on one thread
  (``--blas-threads``), so CPU time is the time of the work;
* each round gives a paired ratio new/old per row; the report gives the
  median of those ratios with their interquartile range, and the ratio of
  the two medians. A NumPy row (the hand-written add chain, identical code in
  both workers) is the control: its ratio should be 1.00, and how far it
  strays says how far to trust the others.

The load average (``uptime``) is printed before and after: numbers taken on a
busy machine are worth reporting only with it.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent.parent  # this working tree's root

#: Row name -> how a worker builds the function it times.
ROWS = ("add", "mul", "tanh", "mixed", "mlp_step_32", "mlp_step_256", "numpy_add_control")
LIMIT = 1.05  # new/old above this is a regression (issue 12: "no worse than 5%")


# -- the worker: one revision of tinyai in one process ------------------------------------------
def _build(row: str) -> Callable[[], Any]:
    from benchmarks import bench_mlp, bench_ops

    if row in ("add", "mul", "tanh", "mixed"):
        return bench_ops.tinyai_chain(row, with_backward=True)
    if row.startswith("mlp_step_"):
        batch = int(row.rsplit("_", 1)[1])
        x, labels = bench_mlp.batch(batch)
        return bench_mlp.tinyai_step(bench_mlp.initial_params(), x, labels)
    if row == "numpy_add_control":
        return bench_ops.numpy_chain("add")
    raise ValueError(f"compare_revisions: unknown row {row!r}")


def worker(root: str) -> None:
    """Serve timing requests (JSON lines on stdin) for the tinyai found under ``root``."""
    sys.path.insert(0, root)
    import tinyai  # noqa: F401  - from ``root``: its submodules follow from tinyai.__path__
    import tinyai.autograd  # noqa: F401
    import tinyai.functions  # noqa: F401

    where = Path(tinyai.__file__).resolve()
    if Path(root).resolve() not in where.parents:
        raise RuntimeError(f"compare_revisions: tinyai came from {where}, not from {root}")
    sys.path.insert(0, str(HERE))  # the benchmark code: this tree's, in both workers
    fns: dict[str, Callable[[], Any]] = {}
    gc.disable()
    for line in sys.stdin:
        request = json.loads(line)
        row = request["row"]
        if row not in fns:
            fns[row] = _build(row)
            for _ in range(3):  # warm up: caches, lazy imports, first-call costs
                fns[row]()
        fn, calls = fns[row], request["calls"]
        start = time.process_time()
        for _ in range(calls):
            fn()
        seconds = (time.process_time() - start) / calls
        gc.collect()  # nothing should be left over; keep the next repeat's start alike
        print(json.dumps({"row": row, "seconds": seconds, "where": str(where)}), flush=True)


class Worker:
    """A worker process for one checkout, driven one request at a time."""

    def __init__(self, root: Path, blas_threads: int) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(blas_threads)
        env.pop("PYTHONPATH", None)  # the worker sets its own path: the checkout, then this tree
        self.root = root
        self.process = subprocess.Popen(
            [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]);"
             "from benchmarks.compare_revisions import worker; worker(sys.argv[2])", str(HERE), str(root)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=str(root))

    def time(self, row: str, calls: int) -> float:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"row": row, "calls": calls}) + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            raise RuntimeError(f"compare_revisions: the worker for {self.root} stopped (see its error above)")
        return json.loads(answer)["seconds"]

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=60)


# -- the parent: checkouts, rounds, report ------------------------------------------------------
def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(HERE), *args], check=True, capture_output=True, text=True).stdout.strip()


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "load average: " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def compare_revisions(old_root: Path, new_root: Path, rows: tuple[str, ...], rounds: int,
                      target_seconds: float, blas_threads: int) -> dict[str, Any]:
    """Time every row in both checkouts, turn about; per row the paired ratios new/old."""
    workers = {"old": Worker(old_root, blas_threads), "new": Worker(new_root, blas_threads)}
    try:
        calls = {}
        for row in rows:  # calls per repeat: from the old revision, the same for both
            once = min(workers["old"].time(row, 1) for _ in range(3))
            calls[row] = max(1, int(target_seconds / max(once, 1e-7)))
            workers["new"].time(row, 1)  # builds and warms the row in the new worker too
        samples: dict[str, dict[str, list[float]]] = {row: {"old": [], "new": []} for row in rows}
        order = ["old", "new"]
        for i in range(rounds):
            shuffled = list(rows)
            random.Random(i).shuffle(shuffled)  # no row always follows the same other one
            for row in shuffled:
                order.reverse()  # alternate which revision goes first
                for name in order:
                    samples[row][name].append(workers[name].time(row, calls[row]))
    finally:
        for w in workers.values():
            w.close()
    results = {}
    for row in rows:
        old, new = samples[row]["old"], samples[row]["new"]
        ratios = [n / o for n, o in zip(new, old)]
        q1, median, q3 = _quartiles(ratios)
        results[row] = {"old_us": statistics.median(old) * 1e6, "new_us": statistics.median(new) * 1e6,
                        "ratio_of_medians": statistics.median(new) / statistics.median(old),
                        "ratio_of_fast_quarters": _quartiles(new)[0] / _quartiles(old)[0],
                        "ratio_median": median, "ratio_q1": q1, "ratio_q3": q3,
                        "old_spread": _spread(old), "new_spread": _spread(new), "calls": calls[row]}
    return results


def _spread(values: list[float]) -> float:
    q1, median, q3 = _quartiles(values)
    return (q3 - q1) / median


def _per_op(row: str) -> int:
    """What a row's time is divided by: the chain length for the op rows (µs per op)."""
    from benchmarks.bench_ops import CHAIN
    return CHAIN if row in ("add", "mul", "tanh", "mixed", "numpy_add_control") else 1


def report(results: dict[str, Any], old_label: str, new_label: str) -> str:
    from benchmarks.common import format_table

    lines = []
    for row, r in results.items():
        per = _per_op(row)
        unit = "µs/op" if per > 1 else "µs/step"
        verdict = "ok" if r["ratio_median"] <= LIMIT else "SLOWER"
        if row == "numpy_add_control":
            verdict = "control"
        lines.append([row, f"{r['old_us'] / per:.2f}", f"{r['new_us'] / per:.2f}", unit,
                      f"{r['ratio_median']:.3f}", f"{r['ratio_q1']:.3f}-{r['ratio_q3']:.3f}",
                      f"{r['ratio_of_medians']:.3f}", f"{r['ratio_of_fast_quarters']:.3f}",
                      f"{r['old_spread'] * 100:.0f}%/{r['new_spread'] * 100:.0f}%", verdict])
    headers = ["row", "old", "new", "unit", "new/old", "IQR of new/old", "of medians", "of q1s", "IQR old/new",
               f"<= {LIMIT:g}"]
    return (f"old: {old_label}\nnew: {new_label}\n" + format_table(headers, lines)
            + "\n(process CPU time, median over rounds; new/old: median of the per-round paired ratios;"
            + "\n of medians / of q1s: ratio of the medians / of the lower quartiles, the least disturbed repeats)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare_revisions", description=__doc__.split("\n")[0])
    parser.add_argument("old", help="the revision to compare against (a commit, tag or branch)")
    parser.add_argument("--new", help="the other revision (default: this working tree, uncommitted changes included)")
    parser.add_argument("--rounds", type=int, default=40, help="interleaved repeats per row (default 40)")
    parser.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS), metavar="ROW",
                        help=f"rows to time (default all: {', '.join(ROWS)})")
    parser.add_argument("--target-seconds", type=float, default=0.03, help="CPU seconds per repeat (default 0.03)")
    parser.add_argument("--blas-threads", type=int, default=1, help="BLAS threads in both workers (default 1)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)

    checkouts: list[Path] = []
    tmp = Path(tempfile.mkdtemp(prefix="tinyai-compare-"))

    def checkout(rev: str) -> tuple[Path, str]:
        commit = _git("rev-parse", "--verify", f"{rev}^{{commit}}")
        path = tmp / commit[:12]
        if not path.exists():
            _git("worktree", "add", "--detach", "--quiet", str(path), commit)
            checkouts.append(path)
        return path, f"{rev} = {_git('log', '-1', '--format=%h %s', commit)[:100]}"

    try:
        old_root, old_label = checkout(args.old)
        if args.new:
            new_root, new_label = checkout(args.new)
        else:
            dirty = " (with uncommitted changes)" if _git("status", "--porcelain", "--untracked-files=no") else ""
            new_root, new_label = HERE, f"working tree at {_git('log', '-1', '--format=%h %s')[:80]}{dirty}"
        before = _uptime()
        print(f"before: {before}", flush=True)
        started = time.time()
        results = compare_revisions(old_root, new_root, tuple(args.rows), args.rounds,
                                    args.target_seconds, args.blas_threads)
        after = _uptime()
        print(report(results, old_label, new_label))
        print(f"after {time.time() - started:.0f} s: {after}")
        if args.json:
            args.json.write_text(json.dumps({"old": old_label, "new": new_label, "uptime_before": before,
                                             "uptime_after": after, "rounds": args.rounds,
                                             "blas_threads": args.blas_threads, "rows": results}, indent=2) + "\n")
    finally:
        for path in checkouts:
            _git("worktree", "remove", "--force", str(path))
        try:
            tmp.rmdir()
        except OSError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
