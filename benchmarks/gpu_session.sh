#!/usr/bin/env bash
# One GPU session, unattended: install the gpu extra, run the GPU tests and the
# GPU benchmark, keep everything they print. Run from anywhere:
#
#     bash benchmarks/gpu_session.sh            # results in benchmarks/results/gpu_session/
#     OUT=/some/dir bash benchmarks/gpu_session.sh
#
# It prefers `make test-gpu` / `make bench-gpu` (a .venv with '.[dev,gpu]').
# Where that venv cannot get CuPy (a machine without network access), it falls
# back to a Python that already imports cupy (PYTHON, default python3), with
# this checkout on PYTHONPATH. Exit status: that of the tests.
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-benchmarks/results/gpu_session}"
mkdir -p "$OUT"
PYTHON="${PYTHON:-python3}"
log() { echo "[gpu_session $(date +%H:%M:%S)] $*" | tee -a "$OUT/session.log"; }

log "machine: $(uname -a)"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || log "nvidia-smi failed (no NVIDIA driver?)"

if make .venv/.gpu > "$OUT/install.txt" 2>&1 && .venv/bin/python -c "import cupy; cupy.zeros(1)" >> "$OUT/install.txt" 2>&1; then
    log "using make's .venv with the gpu extra"
    RUN_TESTS=(make test-gpu)
    RUN_BENCH=(make bench-gpu)
else
    log "make could not set up '.[dev,gpu]' (see install.txt); falling back to $PYTHON with PYTHONPATH=$PWD"
    "$PYTHON" -m pip install --quiet 'cupy-cuda12x>=13' pytest hypothesis >> "$OUT/install.txt" 2>&1 || true
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
    RUN_TESTS=("$PYTHON" -m pytest -q -m gpu -p no:cacheprovider)
    RUN_BENCH=("$PYTHON" -m benchmarks gpu)
fi

log "tests: ${RUN_TESTS[*]}"
"${RUN_TESTS[@]}" > "$OUT/test-gpu.txt" 2>&1
status=$?
tail -n 5 "$OUT/test-gpu.txt" | tee -a "$OUT/session.log"

log "benchmark: ${RUN_BENCH[*]}"
"${RUN_BENCH[@]}" > "$OUT/bench-gpu.txt" 2>&1 || log "the benchmark failed (see bench-gpu.txt)"
cp benchmarks/results/gpu.json "$OUT/" 2>/dev/null || true
cat "$OUT/bench-gpu.txt" | tee -a "$OUT/session.log" > /dev/null
log "done: tests exited $status; everything is in $OUT"
exit $status
