"""Ring all-reduce against MPI's own Allreduce, 1 KB to 64 MB, on the ranks of ``mpiexec -n 2``.

    python -m benchmarks ring_allreduce     # this section alone (about half a minute)

The timing itself is ``benchmarks/mpi_allreduce.py``, run under ``mpiexec``:
for each size, rank 0's median time of three all-reduces of float32 arrays,
interleaved repeat by repeat so that a busy moment of the machine slows all
three alike:

* ``ring``: ``tinyai.parallel.ring.ring_allreduce`` over ``mpi_world()``'s
  ``send``/``recv`` (buffer messages: a header and the bytes, no pickling);
* ``mpi``: mpi4py's buffer ``Allreduce`` (MPICH picks its own algorithm);
* ``tinyai``: ``mpi_world().allreduce`` (gather to rank 0, add in rank
  order, broadcast: the same bits on every rank).

The load average before and after is stored with the numbers: two ranks on
a machine that other programs keep busy wait for each other's time slices,
which distorts every row. Skipped, with the reason in the JSON, when mpi4py
or mpiexec is missing.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import format_bytes

SECTION = "ring_allreduce"
TITLE = "Ring all-reduce vs MPI's Allreduce (float32, 1 KB - 64 MB, mpiexec -n 2)"

ROOT = Path(__file__).resolve().parents[1]
RANKS = 2


def _mpiexec() -> str | None:
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec")


def run(quick: bool = False) -> dict[str, Any]:
    import importlib.util

    mpiexec = _mpiexec()
    if importlib.util.find_spec("mpi4py") is None or mpiexec is None:
        return {"skipped": "mpi4py and mpiexec are needed (pip install 'tinyai-numpy[mpi]')"}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ring.json"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
                   OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
        command = [mpiexec, "-n", str(RANKS), sys.executable, "-m", "benchmarks.mpi_allreduce", str(out)]
        done = subprocess.run(command + (["--quick"] if quick else []), cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
            return {"skipped": f"mpiexec -n {RANKS} failed with exit code {done.returncode}: {last}"}
        data = json.loads(out.read_text(encoding="utf-8"))
    data.update(load_average_before=load_before, load_average_after=os.getloadavg()[0], cpus=os.cpu_count())
    return data


def report(data: dict[str, Any]) -> str:
    if "skipped" in data:
        return f"ring vs MPI Allreduce: skipped ({data['skipped']})"
    lines = [f"all-reduce of float32 arrays on {data['ranks']} MPI ranks (median ms; ring/MPI ratio)",
             f"{'size':>8} {'ring':>10} {'MPI':>10} {'tinyai':>10} {'ring/MPI':>9}"]
    for row in data["rows"]:
        lines.append(f"{format_bytes(row['bytes']):>8} {row['ring_s'] * 1e3:10.3f} {row['mpi_s'] * 1e3:10.3f} "
                     f"{row['tinyai_s'] * 1e3:10.3f} {row['ring_s'] / row['mpi_s']:9.2f}")
    lines.append(f"load average {data['load_average_before']:.1f} before, {data['load_average_after']:.1f} after, "
                 f"on {data['cpus']} CPUs")
    return "\n".join(lines)
