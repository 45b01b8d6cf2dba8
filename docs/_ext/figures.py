"""Diagrams for the lessons, drawn with matplotlib from what a real run computed.

Used by the pictures hook (docs/_ext/pictures.py) as ``figures.NAME(...)`` in
a page's ``<!-- figure: ... -->`` markers. Each function takes the objects
the page's own example made and returns a matplotlib Figure.
"""
from __future__ import annotations

from typing import Any


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure


def im2col_diagram(image: Any, col: Any, window: tuple[int, int] = (0, 1)) -> Any:
    """The image with one window outlined, and the im2col matrix with that window's row.

    ``image`` is (1, 1, H, W) and ``col`` what ``F.im2col(image, k)`` returned,
    shape (1, 1, k, k, OH, OW); the matrix shows one row per output pixel
    (OH * OW rows) and one column per kernel position (k * k columns): the
    layout in which the convolution becomes one matrix product.
    """
    import numpy as np
    from matplotlib.patches import ConnectionPatch, Rectangle

    pixels = np.asarray(image)[0, 0]
    windows = np.asarray(getattr(col, "data", col))[0, 0]          # (k, k, OH, OW)
    k, _, oh, ow = windows.shape
    matrix = windows.reshape(k * k, oh * ow).T                     # row r*OW+q: the window of (r, q)
    row = window[0] * ow + window[1]
    figure = _figure(9.5, 3.6)
    left, right = figure.subplots(1, 2, gridspec_kw={"width_ratios": [pixels.shape[1], matrix.shape[1] * 0.8]})
    for axis, values, title in ((left, pixels, f"image {pixels.shape[0]}x{pixels.shape[1]}"),
                                (right, matrix, f"im2col: one row per output pixel ({oh * ow}), {k * k} pixels each")):
        axis.imshow(np.zeros_like(values), cmap="Greys", vmin=0, vmax=1)
        for (i, j), value in np.ndenumerate(values):
            axis.text(j, i, f"{value:g}", ha="center", va="center", fontsize=10)
        axis.set_xticks(np.arange(values.shape[1] + 1) - 0.5, minor=True)
        axis.set_yticks(np.arange(values.shape[0] + 1) - 0.5, minor=True)
        axis.grid(which="minor", color="#999999", linewidth=0.8)
        axis.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
        axis.set_title(title, fontsize=11)
    r, q = window
    left.add_patch(Rectangle((q - 0.5, r - 0.5), k, k, fill=True, alpha=0.25, color="tab:orange", linewidth=0))
    left.add_patch(Rectangle((q - 0.5, r - 0.5), k, k, fill=False, edgecolor="tab:orange", linewidth=2.5))
    right.add_patch(Rectangle((-0.5, row - 0.5), k * k, 1, fill=True, alpha=0.25, color="tab:orange", linewidth=0))
    right.add_patch(Rectangle((-0.5, row - 0.5), k * k, 1, fill=False, edgecolor="tab:orange", linewidth=2.5))
    right.set_yticks(range(oh * ow))
    right.set_yticklabels([f"({a}, {b})" for a in range(oh) for b in range(ow)], fontsize=9)
    right.tick_params(axis="y", labelleft=True)
    figure.add_artist(ConnectionPatch(xyA=(q + k - 0.5, r + (k - 1) / 2), coordsA=left.transData,
                                      xyB=(-0.5, row), coordsB=right.transData,
                                      arrowstyle="->", color="tab:orange", linewidth=2))
    figure.tight_layout()
    return figure


def pipeline_schedule(events: list, stages: int, micro_batches: int) -> Any:
    """A timeline of one real pipeline step: what each stage did when.

    ``events`` are ``PipelineParallel.last_events``: (stage, "F" or "B",
    micro-batch, start s, end s). Forward boxes are blue, backward orange; the
    white gaps are the bubble, and the title compares the measured busy share
    with the ideal 1 - (S - 1) / (M + S - 1).
    """
    figure = _figure(9.5, 0.9 + 0.7 * stages)
    axis = figure.subplots()
    end = max(stop for *_, stop in events)
    busy = sum(stop - start for *_, start, stop in events)
    colours = {"F": "#5b9bd5", "B": "#ed9b4a"}
    for stage, phase, micro, start, stop in events:
        axis.broken_barh([(start * 1e3, (stop - start) * 1e3)], (stage - 0.38, 0.76), facecolors=colours[phase],
                         edgecolors="white", linewidth=0.8)
        if (stop - start) / end > 0.025:
            axis.text((start + stop) / 2 * 1e3, stage, f"{phase}{micro}", ha="center", va="center", fontsize=9)
    ideal = 1 - (stages - 1) / (micro_batches + stages - 1)
    axis.set_yticks(range(stages))
    axis.set_yticklabels([f"stage {k}" for k in range(stages)])
    axis.invert_yaxis()
    axis.set_xlim(0, end * 1e3)
    axis.set_xlabel("milliseconds since the step began (measured)")
    axis.set_title(f"{stages} stages, {micro_batches} micro-batches: stages busy {busy / (stages * end):.0%} "
                   f"of the step (ideal {ideal:.0%}; the gaps are the bubble)", fontsize=10)
    axis.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    return figure


def data_parallel_step(world_size: int = 3, batch_size: int = 10, seed: int = 0) -> Any:
    """One synchronous data-parallel step, run for real and drawn.

    A batch is cut into ``world_size`` shards; each rank of ``spmd`` (threads,
    talking through tinyai.parallel's communicator) trains a replica of the
    model on its shard, weights its gradient by its share of the batch, and one
    all-reduce sums the weighted gradients. The picture shows the real shard
    sizes, losses and gradient norms, and how far the all-reduced gradient is
    from the gradient of the whole batch computed in one piece.
    """
    import numpy as np
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    import tinyai as ta
    from tinyai import nn
    from tinyai.backend import default_dtype
    from tinyai.losses import SoftmaxCrossEntropy
    from tinyai.parallel import deep_copy_model, spmd

    with default_dtype(np.float64):
        ta.seed(seed)
        model = nn.SequentialBlock(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 3))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch_size, 2))
    y = rng.integers(0, 3, batch_size)
    loss = SoftmaxCrossEntropy()
    shards = np.array_split(np.arange(batch_size), world_size)

    def flat_grad(net: Any) -> Any:
        return np.concatenate([p.grad.data.ravel() for _, p in net.named_params()])

    def rank(comm: Any) -> tuple:
        replica = deep_copy_model(model)
        index = shards[comm.rank]
        value = loss(replica(x[index]), y[index])
        value.backward()
        local = flat_grad(replica)
        summed = comm.allreduce(local * (len(index) / batch_size), op="sum")
        return len(index), float(value.item()), float(np.linalg.norm(local)), summed

    results = spmd(rank, world_size)
    whole = loss(model(x), y)
    whole.backward()
    reference = flat_grad(model)
    error = max(float(np.abs(r[3] - reference).max()) for r in results)

    figure = _figure(8.5, 4.4)
    axis = figure.subplots()
    figure.subplots_adjust(left=0.01, right=0.99, top=0.97, bottom=0.02)
    axis.set_xlim(0, 10.05)
    axis.set_ylim(0, world_size + 0.4)
    axis.axis("off")

    def box(x0: float, yc: float, text: str, colour: str, width: float = 1.9) -> tuple[float, float, float]:
        axis.add_patch(FancyBboxPatch((x0, yc - 0.36), width, 0.72, boxstyle="round,pad=0.04",
                                      facecolor=colour, edgecolor="#555555"))
        axis.text(x0 + width / 2, yc, text, ha="center", va="center", fontsize=10)
        return x0, x0 + width, yc

    def arrow(start: tuple, end: tuple) -> None:
        axis.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12, color="#555555"))

    middle = world_size / 2
    batch = box(0.1, middle, f"batch\n{batch_size} examples", "#eeeeee", 1.4)
    reduce_box = box(6.6, middle, f"all-reduce\nsum of (n_k/N) g_k\n|g| = {np.linalg.norm(results[0][3]):.3f}",
                     "#fde7c8", 2.0)
    update = box(8.9, middle, "optimizer\nupdate\n(once)", "#c9e7c0", 1.1)
    for k, (size, value, norm, _) in enumerate(results):
        yk = world_size - 0.5 - k
        shard = box(1.9, yk, f"shard {k}\nn_{k} = {size}", "#dbe9f6", 1.5)
        replica = box(3.95, yk, f"replica {k}\nloss {value:.3f}\n|g_{k}| = {norm:.3f}", "#dbe9f6", 2.2)
        arrow((batch[1], batch[2]), (shard[0], shard[2]))
        arrow((shard[1], shard[2]), (replica[0], replica[2]))
        arrow((replica[1], replica[2]), (reduce_box[0], reduce_box[2]))
    arrow((reduce_box[1], reduce_box[2]), (update[0], update[2]))
    axis.text(5, world_size + 0.2, f"{world_size} ranks of tinyai.parallel.spmd; the all-reduced gradient differs from "
              f"the whole-batch gradient by at most {error:.1e}", ha="center", va="center", fontsize=10)
    return figure


def compression_tradeoff(gradient: Any, compressors: list) -> Any:
    """Bytes on the wire against the error each compressor leaves, measured on ``gradient``.

    Each point is one compressor's real ``compress``/``decompress`` round trip:
    its payload size and the relative error ||g - decompress(compress(g))|| / ||g||.
    """
    import numpy as np

    g = np.asarray(gradient)
    figure = _figure(7.5, 3.8)
    axis = figure.subplots()
    for compressor in compressors:
        payload = compressor.compress(g)
        error = float(np.linalg.norm(g - compressor.decompress(payload)) / np.linalg.norm(g))
        axis.scatter(payload.nbytes, error, s=40, zorder=3)
        axis.annotate(repr(compressor), (payload.nbytes, error), textcoords="offset points", xytext=(6, 4), fontsize=9)
    axis.axvline(g.nbytes, color="#999999", linestyle="--", linewidth=1)
    axis.annotate(f"uncompressed: {g.nbytes:,} bytes", (g.nbytes, 0.05), textcoords="offset points",
                  xytext=(-6, 0), ha="right", fontsize=9, color="#555555")
    axis.set_xscale("log")
    axis.set_xlabel("bytes sent for one gradient of 1,000 float32 values (log scale)")
    axis.set_ylabel("relative error after decompress")
    axis.set_ylim(bottom=-0.05)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def staleness_histograms(runs: dict, bound: int | None = None) -> Any:
    """Bars of ``parallel_stats()["staleness_histogram"]`` for each named run, side by side.

    ``runs`` maps a label to the stats of a real run; ``bound``, if given, is
    drawn as the stale-synchronous limit on staleness.
    """
    figure = _figure(7.5, 3.6)
    axis = figure.subplots()
    width = 0.8 / max(1, len(runs))
    for i, (label, stats) in enumerate(runs.items()):
        histogram = stats["staleness_histogram"]
        lags = sorted(histogram)
        axis.bar([lag + (i - (len(runs) - 1) / 2) * width for lag in lags], [histogram[lag] for lag in lags],
                 width=width, label=f"{label} (max {max(lags, default=0)})")
    if bound is not None:
        axis.axvline(bound + 0.5, color="#aa3333", linestyle="--", linewidth=1)
        axis.annotate(f"bound (N - 1)(2s + 1) = {bound}", (bound + 0.5, 0.9), xycoords=("data", "axes fraction"),
                      textcoords="offset points", xytext=(6, 0), fontsize=9, color="#aa3333")
    axis.set_yscale("log")
    axis.set_xlabel("staleness: updates applied between a worker's pull and its push")
    axis.set_ylabel("pushes (log scale)")
    axis.set_ylim(bottom=0.5)
    axis.legend(fontsize=9)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure
