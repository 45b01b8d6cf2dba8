"""Run the benchmark sections, print a table for each, write benchmarks/results/<section>.json.

    python -m benchmarks                 # every section
    python -m benchmarks mlp_step        # only the sections named
    python -m benchmarks --quick         # fewer repeats, for a smoke test
    python -m benchmarks --blas-threads 1   # cap BLAS threads (steadier on a busy machine)

The machine (Python, NumPy, BLAS library and threads) is printed first and
stored in every JSON file: numbers mean little without it. On a shared or
busy machine, compare medians and ratios, and read the IQR column as a
warning of how noisy the run was.

Some machines set OPENBLAS_CORETYPE (and OPENBLAS_L2_SIZE) to pin OpenBLAS to
an older kernel, which older OpenBLAS builds needed on their processors; a
current NumPy's OpenBLAS picks the right kernel itself and runs markedly
faster without them. So the benchmarks re-run themselves with both removed
from their own environment (never from the caller's, nor in tests or CI), and
the machine description says which kernel OpenBLAS then chose. Pass
``--keep-blas-env`` to measure with them.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from benchmarks import SECTIONS
from benchmarks.common import describe_machine, machine_info, write_results


def main(argv: list[str] | None = None) -> int:
    modules = [importlib.import_module(name) for name in SECTIONS]
    names = [m.SECTION for m in modules]
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description="Run tinyai's benchmarks.")
    parser.add_argument("sections", nargs="*", metavar="SECTION",
                        help=f"sections to run (default: all of {', '.join(names)})")
    parser.add_argument("--quick", action="store_true", help="fewer repeats: a smoke test, not a measurement")
    parser.add_argument("--keep-blas-env", action="store_true",
                        help="keep OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE if set (by default they are dropped)")
    parser.add_argument("--blas-threads", type=int, metavar="N",
                        help="cap BLAS threads at N (default: as many as the machine gives)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.sections) - set(names))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(names)}")

    if args.blas_threads is not None:
        try:
            from threadpoolctl import threadpool_limits  # dev extra: pip install 'tinyai-numpy[dev]'
        except ImportError:
            parser.error("--blas-threads needs threadpoolctl: pip install 'tinyai-numpy[dev]'")
        # Kept alive until the process ends: the limit holds for every section.
        _limit = threadpool_limits(limits=args.blas_threads, user_api="blas")  # noqa: F841
    machine = machine_info()
    print(describe_machine(machine))
    for module in modules:
        if args.sections and module.SECTION not in args.sections:
            continue
        print(f"\n== {module.TITLE}")
        data = module.run(quick=args.quick)
        print(module.report(data))
        path = write_results(module.SECTION, data, machine)
        print(f"-> {path}")
    return 0


BLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def rerun_without_blas_overrides() -> None:
    """Replace this process by the same command without BLAS_OVERRIDES in its environment.

    OpenBLAS reads them once, when NumPy is first imported; this runs before
    any benchmark module imports NumPy. What was dropped is passed on in
    TINYAI_BENCH_DROPPED_ENV, so the report can say so.
    """
    dropped = {name: os.environ[name] for name in BLAS_OVERRIDES if name in os.environ}
    if not dropped or "--keep-blas-env" in sys.argv or "numpy" in sys.modules:
        return
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env["TINYAI_BENCH_DROPPED_ENV"] = " ".join(f"{k}={v}" for k, v in dropped.items())
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, "-m", "benchmarks", *sys.argv[1:]], env)


if __name__ == "__main__":
    rerun_without_blas_overrides()
    sys.exit(main())
