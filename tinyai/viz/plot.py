"""Plots for learning: a data set with a classifier's decision regions, and line plots.

``Plot`` collects what to draw and writes a PNG (or SVG/PDF) with matplotlib's
Agg canvas, which needs no display: it works on a server, in CI and in
threads, and never opens a window. matplotlib is imported only when a picture
is saved, so ``import tinyai`` does not need it.

>>> import numpy as np
>>> plot = Plot(title="loss", xlabel="epoch")
>>> plot = plot.line([3.0, 2.0, 1.5], label="train")
>>> # plot.save("loss.png")   # needs the viz extra
"""
from __future__ import annotations

import io
import os
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

from tinyai.autograd import Variable, no_grad
from tinyai.backend import get_default_dtype, to_cpu

_MATPLOTLIB_MISSING = ("{where}: plotting needs matplotlib; install the viz extra: "
                       "pip install 'tinyai-numpy[viz]'")


def _matplotlib(where: str):
    """Import matplotlib's Figure and Agg canvas, or say which extra to install."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415 - optional extra
        from matplotlib.figure import Figure  # noqa: PLC0415
    except ImportError as exc:
        raise ImportError(_MATPLOTLIB_MISSING.format(where=where)) from exc
    return Figure, FigureCanvasAgg


def _in_ipython() -> bool:
    """True inside IPython or a Jupyter kernel."""
    shell = sys.modules.get("IPython")
    return shell is not None and getattr(shell, "get_ipython", lambda: None)() is not None


def _host(values: Any, where: str, what: str) -> np.ndarray:
    data = values.data if isinstance(values, Variable) else values
    try:
        return np.asarray(to_cpu(data) if not isinstance(data, (list, tuple)) else data)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{where}: {what} must be array-like, got {type(values).__name__}") from exc


def decision_grid(points: np.ndarray, resolution: int, padding: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A ``resolution x resolution`` grid of points covering ``points`` plus a margin.

    Returns the two coordinate grids and the grid as an (resolution**2, 2) array.
    """
    low = points.min(axis=0) - padding
    high = points.max(axis=0) + padding
    gx, gy = np.meshgrid(np.linspace(low[0], high[0], resolution), np.linspace(low[1], high[1], resolution))
    return gx, gy, np.stack([gx.ravel(), gy.ravel()], axis=1)


def predict_classes(predict: Callable[[Any], Any], grid: np.ndarray, threshold: float = 0.0) -> np.ndarray:
    """Class index for every row of ``grid`` from a model's scores.

    ``predict`` maps an (N, 2) array to scores: (N, C) with C >= 2 gives
    the arg-max class; (N,) or (N, 1) is one score per point, class 1 where
    it exceeds ``threshold`` (0 suits logits, 0.5 probabilities).
    """
    with no_grad():  # drawing should not build a graph for 40,000 points
        scores = predict(grid)
    scores = _host(scores, "Plot.decision_regions", "predict's result")
    if scores.ndim == 2 and scores.shape[0] == len(grid) and scores.shape[1] >= 2:
        return scores.argmax(axis=1)
    if scores.shape in ((len(grid),), (len(grid), 1)):
        return (scores.reshape(-1) > threshold).astype(np.int64)
    raise ValueError(f"Plot.decision_regions: predict must map points of shape {grid.shape} to scores "
                     f"of shape ({len(grid)}, C), ({len(grid)},) or ({len(grid)}, 1); got {scores.shape}")


class Plot:
    """A figure built step by step, then written to a file with :meth:`save`.

    Each drawing method returns the Plot, so calls chain::

        Plot(title="spiral").decision_regions(model, x, t).save("spiral.png")

    Args:
        title, xlabel, ylabel: text on the figure.
        size: width and height in inches (at 100 dots per inch).
    """

    def __init__(self, title: str = "", xlabel: str = "", ylabel: str = "",
                 size: tuple[float, float] = (6.0, 4.5)) -> None:
        self.title = title
        self.xlabel = xlabel
        self.ylabel = ylabel
        self.size = size
        self._layers: list[tuple[str, dict]] = []  # drawn in order when saved

    def line(self, y: Any, x: Any = None, label: str | None = None) -> "Plot":
        """A line through the values ``y`` (against ``x``, or 0, 1, 2, ... when None).

        Typical use: a training curve, ``Plot(xlabel="epoch").line(losses, label="train")``.
        """
        ys = _host(y, "Plot.line", "y").astype(np.float64).reshape(-1)
        xs = np.arange(len(ys)) if x is None else _host(x, "Plot.line", "x").astype(np.float64).reshape(-1)
        if xs.shape != ys.shape:
            raise ValueError(f"Plot.line: x has {xs.shape[0]} values but y has {ys.shape[0]}")
        self._layers.append(("line", {"x": xs, "y": ys, "label": label}))
        return self

    def scatter(self, points: Any, labels: Any = None) -> "Plot":
        """Points of a 2-D data set, coloured by class when ``labels`` are given.

        Args:
            points: shape (N, 2).
            labels: N class indices, or N one-hot rows of shape (N, C).
        """
        xy = self._points(points, "Plot.scatter")
        classes = None if labels is None else self._labels(labels, len(xy), "Plot.scatter")
        self._layers.append(("scatter", {"points": xy, "classes": classes}))
        return self

    def decision_regions(self, predict: Callable[[Any], Any], points: Any, labels: Any = None,
                         resolution: int = 200, padding: float = 0.5, threshold: float = 0.0) -> "Plot":
        """Shade the plane by the class ``predict`` chooses, then draw the data on top.

        Args:
            predict: maps an (N, 2) array of points to class scores: (N, C)
                (arg-max wins) or one score per point (class 1 above
                ``threshold``). A tinyai model works as it is.
            points: the data set, shape (N, 2); sets the region drawn.
            labels: optional class of each point (indices or one-hot).
            resolution: grid points along each axis.
            padding: margin around the data, in data units.
        """
        xy = self._points(points, "Plot.decision_regions")
        if resolution < 2:
            raise ValueError(f"Plot.decision_regions: resolution must be at least 2, got {resolution}")
        dtype = xy.dtype if xy.dtype.kind == "f" else get_default_dtype()
        gx, gy, grid = decision_grid(xy.astype(np.float64), resolution, padding)
        classes = predict_classes(predict, grid.astype(dtype), threshold).reshape(gx.shape)
        self._layers.append(("regions", {"gx": gx, "gy": gy, "classes": classes}))
        return self.scatter(xy, labels)

    @staticmethod
    def _points(points: Any, where: str) -> np.ndarray:
        xy = _host(points, where, "points")
        if xy.ndim != 2 or xy.shape[1] != 2 or len(xy) == 0:
            raise ValueError(f"{where}: points must have shape (N, 2) with N >= 1, got {xy.shape}")
        return xy

    @staticmethod
    def _labels(labels: Any, n: int, where: str) -> np.ndarray:
        t = _host(labels, where, "labels")
        if t.ndim == 2:
            t = t.argmax(axis=1)  # one-hot rows
        t = t.reshape(-1)
        if len(t) != n:
            raise ValueError(f"{where}: {n} points but {len(t)} labels")
        return t.astype(np.int64)

    def save(self, path: str | os.PathLike, dpi: int = 100) -> Path:
        """Draw everything added so far and write it to ``path`` (format from the extension).

        Raises ImportError naming the ``viz`` extra when matplotlib is missing.
        """
        path = Path(path)
        self.figure("Plot.save", dpi).savefig(path)
        return path

    def to_bytes(self, fmt: str = "png", dpi: int = 100) -> bytes:
        """The picture as the bytes of a ``fmt`` file ("png", "svg", "pdf")."""
        buffer = io.BytesIO()
        self.figure("Plot.to_bytes", dpi).savefig(buffer, format=fmt)
        return buffer.getvalue()

    def _repr_png_(self) -> bytes | None:
        # Jupyter shows a Plot that ends a cell as this PNG. None (nothing to
        # draw, or no matplotlib) lets it fall back to the text repr.
        if not self._layers:
            return None
        try:
            return self.to_bytes("png")
        except ImportError:
            return None

    def show(self) -> None:
        """Display the picture: inline in Jupyter, else in a matplotlib window."""
        if _in_ipython():
            from IPython.display import Image, display  # noqa: PLC0415 - only inside IPython

            display(Image(self.to_bytes("png")))
            return
        if not self._layers:
            raise ValueError("Plot.show: nothing to draw; call line, scatter or decision_regions first")
        try:
            import matplotlib.pyplot as plt  # noqa: PLC0415 - optional extra
        except ImportError as exc:
            raise ImportError(_MATPLOTLIB_MISSING.format(where="Plot.show")) from exc
        figure = plt.figure(figsize=self.size)
        self._draw(figure)
        plt.show()

    def __repr__(self) -> str:
        kinds = ", ".join(kind for kind, _ in self._layers) or "empty"
        return f"Plot(title={self.title!r}, layers: {kinds})"

    def figure(self, where: str = "Plot.figure", dpi: int = 100) -> Any:
        """A matplotlib Figure (headless Agg canvas) with everything drawn on it."""
        if not self._layers:
            raise ValueError(f"{where}: nothing to draw; call line, scatter or decision_regions first")
        Figure, FigureCanvasAgg = _matplotlib(where)
        figure = Figure(figsize=self.size, dpi=dpi)
        FigureCanvasAgg(figure)  # attaches the headless canvas to the figure
        self._draw(figure)
        return figure

    def _draw(self, figure: Any) -> None:
        """Draw the layers, in the order they were added, on one pair of axes of ``figure``."""
        axes = figure.add_subplot(1, 1, 1)
        cmap = "tab10"
        has_label = False
        for kind, layer in self._layers:
            if kind == "line":
                axes.plot(layer["x"], layer["y"], label=layer["label"])
                has_label |= layer["label"] is not None
            elif kind == "regions":
                axes.contourf(layer["gx"], layer["gy"], layer["classes"], alpha=0.3, cmap=cmap,
                              levels=np.arange(layer["classes"].max() + 2) - 0.5, vmin=-0.5, vmax=9.5)
            else:
                classes = layer["classes"]
                axes.scatter(layer["points"][:, 0], layer["points"][:, 1], s=12,
                             c=None if classes is None else classes, cmap=None if classes is None else cmap,
                             vmin=None if classes is None else -0.5, vmax=None if classes is None else 9.5,
                             edgecolors="k", linewidths=0.3)
        axes.set_title(self.title)
        axes.set_xlabel(self.xlabel)
        axes.set_ylabel(self.ylabel)
        if has_label:
            axes.legend()
        figure.tight_layout()
