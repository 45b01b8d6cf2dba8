"""Pictures of model parallelism: how a matrix is split, what each layer sends, and a step's timeline.

Each function returns a matplotlib Figure (headless Agg canvas; the ``viz``
extra) drawn from plain numbers, so the pictures show what a real run
measured: ``GridExecutor.last_events`` for the timeline,
``CountingCommunicator.transfers`` for the traffic.
"""
from __future__ import annotations

from typing import Any, Sequence

from tinyai.viz.plot import _matplotlib

#: One colour per rank (or phase), light enough to write on.
COLOURS = ("#4c9be8", "#f39c4a", "#5cc07a", "#d1675f", "#9b7fd1", "#c9a227", "#5bc4c9", "#b0b0b0")
PHASES = {"F": ("forward", "#4c9be8"), "B": ("backward", "#f39c4a"), "FB": ("forward + backward", "#7fb2e0"),
          "AR": ("gradient all-reduce", "#d1675f")}


def tensor_split_figure(ranks: int = 2) -> Any:
    """Column-parallel and row-parallel splits of a weight matrix W (in x out) over ``ranks`` ranks.

    Left: Y = X W with W's columns split, rank r computes Y_r = X W_r (its
    columns of Y). Right: W's rows split, rank r computes the partial X_r W_r
    and an all-reduce sums the partials.
    """
    Figure, FigureCanvasAgg = _matplotlib("tensor_split_figure")
    figure = Figure(figsize=(9, 3.4))
    FigureCanvasAgg(figure)
    for index, (title, by_columns) in enumerate((("column-parallel: W = [W_0 | W_1 | ...]", True),
                                                 ("row-parallel: W = [W_0; W_1; ...]", False))):
        axes = figure.add_subplot(1, 2, index + 1)
        axes.set_xlim(0, 10)
        axes.set_ylim(0, 6)
        axes.set_axis_off()
        axes.set_title(title, fontsize=10)
        # X (replicated or split by columns), W (split), Y (split or summed).
        for r in range(ranks):
            colour = COLOURS[r % len(COLOURS)]
            if by_columns:
                axes.add_patch(_box(figure, 0.3, 1.5, 2.0, 3.0, "#dddddd"))
                axes.add_patch(_box(figure, 3.0 + r * 2.4 / ranks, 1.5, 2.4 / ranks, 3.0, colour))
                axes.add_patch(_box(figure, 6.6 + r * 2.4 / ranks, 1.5, 2.4 / ranks, 3.0, colour))
                axes.text(3.0 + (r + 0.5) * 2.4 / ranks, 3.0, f"W{r}", ha="center", va="center", fontsize=8)
                axes.text(6.6 + (r + 0.5) * 2.4 / ranks, 3.0, f"Y{r}", ha="center", va="center", fontsize=8)
            else:
                axes.add_patch(_box(figure, 0.3 + r * 2.0 / ranks, 1.5, 2.0 / ranks, 3.0, colour))
                axes.add_patch(_box(figure, 3.0, 4.5 - (r + 1) * 3.0 / ranks, 2.4, 3.0 / ranks, colour))
                axes.add_patch(_box(figure, 6.6, 1.5, 2.4, 3.0, "#dddddd"))
                axes.text(0.3 + (r + 0.5) * 2.0 / ranks, 3.0, f"X{r}", ha="center", va="center", fontsize=8)
                axes.text(4.2, 4.5 - (r + 0.5) * 3.0 / ranks, f"W{r}", ha="center", va="center", fontsize=8)
        if by_columns:
            axes.text(1.3, 3.0, "X", ha="center", va="center")
        else:
            axes.text(7.8, 3.0, "Y = sum X_r W_r", ha="center", va="center", fontsize=8)
        axes.text(2.65, 3.0, "x", ha="center", va="center")
        axes.text(6.0, 3.0, "=", ha="center", va="center")
        note = ("no communication forward" if by_columns else "one all-reduce forward")
        axes.text(5.0, 0.8, note, ha="center", fontsize=9)
    figure.tight_layout()
    return figure


def _box(figure: Any, x: float, y: float, width: float, height: float, colour: str) -> Any:
    from matplotlib.patches import Rectangle  # noqa: PLC0415 - optional extra, imported with the figure

    return Rectangle((x, y), width, height, facecolor=colour, edgecolor="black", linewidth=0.8)


def communication_figure(rows: Sequence[tuple[str, float, float]], title: str = "") -> Any:
    """Bytes each rank hands to collectives per layer, forward and backward, as horizontal bars.

    ``rows``: (layer name, forward bytes, backward bytes), top to bottom.
    """
    Figure, FigureCanvasAgg = _matplotlib("communication_figure")
    figure = Figure(figsize=(7, 0.5 + 0.45 * len(rows)))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    names = [name for name, _, _ in rows]
    positions = list(range(len(rows)))[::-1]
    forward = [f / 1024 for _, f, _ in rows]
    backward = [b / 1024 for _, _, b in rows]
    axes.barh([p + 0.2 for p in positions], forward, height=0.38, color=PHASES["F"][1], label="forward")
    axes.barh([p - 0.2 for p in positions], backward, height=0.38, color=PHASES["B"][1], label="backward")
    axes.set_yticks(positions)
    axes.set_yticklabels(names, fontsize=8)
    axes.set_xlabel("KiB handed to collectives by each rank, per step")
    if title:
        axes.set_title(title, fontsize=10)
    axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    return figure


def timeline_figure(events: Sequence[tuple[int, str, int, float, float]], title: str = "") -> Any:
    """A Gantt chart of one step: one row per rank, one bar per event.

    ``events``: (rank, phase, micro-batch, start s, end s), phase "F", "B",
    "FB" or "AR" (as ``GridExecutor.last_events`` of every rank, joined);
    times on one clock, drawn from the earliest start.
    """
    Figure, FigureCanvasAgg = _matplotlib("timeline_figure")
    ranks = sorted({event[0] for event in events})
    figure = Figure(figsize=(8, 0.7 + 0.5 * len(ranks)))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    seen = set()
    origin = min(event[3] for event in events)
    for rank, phase, micro_batch, start, end in events:
        start, end = start - origin, end - origin
        name, colour = PHASES.get(phase, (phase, "#b0b0b0"))
        row = len(ranks) - 1 - ranks.index(rank)
        axes.barh(row, (end - start) * 1e3, left=start * 1e3, height=0.7, color=colour, edgecolor="black",
                  linewidth=0.4, label=None if name in seen else name)
        seen.add(name)
        if phase in ("F", "B") and (end - start) * 1e3 > 0:
            axes.text((start + end) / 2 * 1e3, row, f"{phase}{micro_batch}", ha="center", va="center", fontsize=6)
    axes.set_yticks(range(len(ranks)))
    axes.set_yticklabels([f"rank {r}" for r in reversed(ranks)], fontsize=8)
    axes.set_xlabel("milliseconds since the step began")
    if title:
        axes.set_title(title, fontsize=10)
    axes.legend(fontsize=7, loc="upper right", ncol=len(seen))
    figure.tight_layout()
    return figure


__all__ = ["tensor_split_figure", "communication_figure", "timeline_figure"]
