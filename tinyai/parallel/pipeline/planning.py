"""Pipeline planning: pure functions that decide how a pipeline runs, before anything runs.

* ``split_into_stages`` cuts a chain of layers into S consecutive stages with
  balanced parameter counts (``balanced_groups`` does the cutting);
* ``gpipe_schedule`` is the GPipe timetable: which stage does which
  micro-batch's forward or backward at each tick (``format_schedule`` draws it);
* ``bubble_fraction`` is the share of a step a stage spends idle,
  (S - 1) / (M + S - 1).

Nothing here starts a thread or touches a gradient; the runtime
(``tinyai.parallel.pipeline.runtime``) carries a plan out.
"""
from __future__ import annotations

from typing import Sequence

from tinyai.backend.settings import is_int
from tinyai.nn import Layer, MlpBlock, SequentialBlock


def bubble_fraction(stages: int, micro_batches: int) -> float:
    """The share of a GPipe step a stage spends idle: (S - 1) / (M + S - 1).

    It assumes every stage takes the same time per micro-batch. More
    micro-batches shrink the bubble; more stages grow it.

    >>> bubble_fraction(2, 4)
    0.2
    >>> bubble_fraction(4, 1)  # no micro-batching: only one stage works at a time
    0.75
    """
    if stages < 1 or micro_batches < 1:
        raise ValueError(f"bubble_fraction: stages and micro_batches must be at least 1, "
                         f"got {stages} and {micro_batches}")
    return (stages - 1) / (micro_batches + stages - 1)


def gpipe_schedule(stages: int, micro_batches: int) -> list[list[str]]:
    """The GPipe timetable: row k lists what stage k does at each tick ("F2", "B0" or "..").

    Forward of micro-batch m reaches stage k at tick k + m. The last stage
    starts the backwards (last micro-batch first) right after its last
    forward, and each backward reaches the stage below one tick later.
    Steps take 2 (M + S - 1) ticks.
    """
    if stages < 1 or micro_batches < 1:
        raise ValueError(f"gpipe_schedule: stages and micro_batches must be at least 1, "
                         f"got {stages} and {micro_batches}")
    s, m_count = stages, micro_batches
    ticks = 2 * (m_count + s - 1)
    rows = [[".."] * ticks for _ in range(s)]
    for k in range(s):
        for m in range(m_count):
            rows[k][k + m] = f"F{m}"
            rows[k][(s - 1 + m_count) + (m_count - 1 - m) + (s - 1 - k)] = f"B{m}"
    return rows


def format_schedule(stages: int, micro_batches: int) -> str:
    """``gpipe_schedule`` as a text chart, one line per stage.

    >>> print(format_schedule(2, 2))
    tick     0  1  2  3  4  5
    stage 0  F0 F1 .. .. B1 B0
    stage 1  .. F0 F1 B1 B0 ..
    """
    rows = gpipe_schedule(stages, micro_batches)
    width = max(len(cell) for row in rows for cell in row)
    label = len(f"stage {stages - 1}")
    head = "tick".ljust(label) + "  " + " ".join(str(t).ljust(width) for t in range(len(rows[0])))
    lines = [head.rstrip()]
    for k, row in enumerate(rows):
        lines.append(f"stage {k}".ljust(label) + "  " + " ".join(cell.ljust(width) for cell in row))
    return "\n".join(line.rstrip() for line in lines)


def balanced_groups(sizes: Sequence[int], n: int) -> list[tuple[int, int]]:
    """Cut ``sizes`` into ``n`` non-empty consecutive groups: (start, stop) of each.

    First the smallest possible largest group sum is found; then, among the
    cuts that achieve it, the one whose group *lengths* are most even (least
    sum of squares), so parameter-free layers such as activations are spread
    rather than piled into one stage. Both by dynamic programming over
    (groups used, layers covered), O(n L^2).
    """
    length = len(sizes)
    prefix = [0]
    for s in sizes:
        prefix.append(prefix[-1] + s)
    inf = float("inf")

    # best_max[j][i]: smallest largest-group sum over cuts of sizes[:i] into j groups.
    best_max = [[inf] * (length + 1) for _ in range(n + 1)]
    best_max[0][0] = 0
    for j in range(1, n + 1):
        for i in range(j, length + 1):
            best_max[j][i] = min(max(best_max[j - 1][c], prefix[i] - prefix[c]) for c in range(j - 1, i))
    limit = best_max[n][length]

    # Among cuts whose every group sum is <= limit, least sum of squared group lengths.
    cost = [[inf] * (length + 1) for _ in range(n + 1)]
    cut = [[0] * (length + 1) for _ in range(n + 1)]
    cost[0][0] = 0
    for j in range(1, n + 1):
        for i in range(j, length + 1):
            for c in range(j - 1, i):
                # "<=": on a tie the later cut wins, so an activation stays with the layer before it.
                if prefix[i] - prefix[c] <= limit and cost[j - 1][c] + (i - c) ** 2 <= cost[j][i]:
                    cost[j][i] = cost[j - 1][c] + (i - c) ** 2
                    cut[j][i] = c
    bounds, stop = [], length
    for j in range(n, 0, -1):
        start = cut[j][stop]
        bounds.append((start, stop))
        stop = start
    return bounds[::-1]


def split_into_stages(block: SequentialBlock | MlpBlock | Sequence[Layer], n: int) -> list[SequentialBlock]:
    """Cut a chain of layers into ``n`` consecutive stages balanced by parameter count.

    Args:
        block: a SequentialBlock or MlpBlock (whose children run one after
            the other), or a list of Layers meant to run in that order.
        n: the number of stages, 1 <= n <= number of layers.

    Returns:
        ``n`` SequentialBlocks named "stage0", "stage1", ... that hold the
        *same* layer objects (no copies): training the stages trains
        ``block``, and an optimizer built on ``block`` sees their gradients.

    The cut minimises the largest stage's parameter count (the slowest stage
    sets the pace of the whole pipeline); parameter count is only a proxy
    for time, and lazy layers count 0 until their first call.

    >>> from tinyai.nn import Linear, ReLU
    >>> net = SequentialBlock(Linear(4, 16), ReLU(), Linear(16, 16), ReLU(), Linear(16, 2))
    >>> [len(stage) for stage in split_into_stages(net, 2)]
    [2, 3]
    """
    if isinstance(block, (SequentialBlock, MlpBlock)):
        layers = list(block.children())
    elif isinstance(block, (list, tuple)):
        layers = list(block)
    else:
        raise TypeError(f"split_into_stages: needs a SequentialBlock, an MlpBlock or a list of Layers "
                        f"(whose layers run one after the other), got {type(block).__name__}")
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise TypeError(f"split_into_stages: item {i} is a {type(layer).__name__}, not a Layer")
    if not is_int(n) or not 1 <= n <= len(layers):
        raise ValueError(f"split_into_stages: n must be an int from 1 to the number of layers "
                         f"({len(layers)}), got {n!r}")
    groups = balanced_groups([layer.num_params() for layer in layers], n)
    stages = []
    for k, (start, stop) in enumerate(groups):
        stage = SequentialBlock(name=f"stage{k}")
        for layer in layers[start:stop]:
            stage.add_layer(layer)
        stages.append(stage)
    return stages
