"""tinyai's benchmarks: ``python -m benchmarks`` (or ``make bench``) runs every section.

Each section is a module ``benchmarks/bench_*.py`` with four names:
``SECTION`` (the JSON file name), ``TITLE``, ``run(quick) -> dict`` and
``report(data) -> str``. Add a module and list it in ``SECTIONS`` below to add
a section (data parallel, GPU, ...). Timing helpers live in
``benchmarks.common``. Speed is measured here and never asserted in tests.

Whether a change made tinyai slower is a question about two revisions, and
two runs of a section minutes apart differ by more than a few percent on a
shared machine. ``python -m benchmarks.compare_revisions OLD`` answers it:
it checks OLD out in a temporary ``git worktree``, runs the op-overhead and
MLP-step rows of OLD and of this working tree in two processes turn about,
in process CPU time, and reports the ratio per row with its spread and the
machine's load.
"""
SECTIONS = ("benchmarks.bench_ops", "benchmarks.bench_mlp", "benchmarks.bench_parallel", "benchmarks.bench_compression",
            "benchmarks.bench_ring", "benchmarks.bench_gpu", "benchmarks.bench_conv", "benchmarks.bench_tensor",
            "benchmarks.bench_beyond_sync")
