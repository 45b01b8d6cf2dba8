"""The Monitor: what happened in each epoch, and a picture of it.

TinyAI's ``Monitor`` keeps four lists (loss, validation loss, accuracy,
validation accuracy) and a list of epoch times. Here the lists live in one
dict keyed by metric name, so an evaluator may add a metric of its own; the
usual names are

    loss            mean training loss over the epoch's batches
    train_accuracy  fraction of training samples classified right (TinyAI: accuracy)
    test_loss       mean loss on the test split (TinyAI: val_loss)
    test_accuracy   fraction of test samples classified right (TinyAI: val_accuracy)
    time            seconds the epoch took

Every list has one entry per finished epoch; a metric that was not measured
in some epoch holds ``None`` there, so ``history["time"][i]`` and
``history["loss"][i]`` always describe the same epoch.
"""
from __future__ import annotations

import functools
import io
import logging
import math
import os
import sys
import time
from typing import Any

logger = logging.getLogger(__name__)

#: The metrics every Monitor has, in the order a summary line shows them.
STANDARD_METRICS = ("loss", "train_accuracy", "test_loss", "test_accuracy", "time")


class Monitor:
    """Collects per-epoch training information and draws training curves.

    The Trainer drives it: ``start_new_epoch(i)``, then ``collect(name, value)``
    for each metric, then ``end_epoch()``, which records the epoch's time.

    >>> m = Monitor()
    >>> m.start_new_epoch(0); m.collect("loss", 0.5); m.end_epoch()
    >>> m.history["loss"]
    [0.5]
    """

    def __init__(self) -> None:
        self._history: dict[str, list[Any]] = {name: [] for name in STANDARD_METRICS}
        self._current: dict[str, Any] = {}
        self._epoch_start: float | None = None
        self.epoch: int = -1

    # -- collecting --------------------------------------------------------------
    def start_new_epoch(self, epoch: int) -> None:
        """Begin epoch ``epoch`` (0-based) and start its clock."""
        self.epoch = epoch
        self._current = {}
        self._epoch_start = time.perf_counter()

    def collect(self, name: str, value: float) -> None:
        """Record ``value`` for metric ``name`` in the current epoch."""
        if self._epoch_start is None:
            raise ValueError(f"Monitor.collect: no epoch in progress (call start_new_epoch before collecting {name!r})")
        self._current[name] = float(value)

    # TinyAI's names for the same thing.
    def collect_info(self, loss: float) -> None:
        """Record the epoch's mean training loss (TinyAI's collectInfo)."""
        self.collect("loss", loss)

    def collect_accuracy(self, accuracy: float) -> None:
        """Record the epoch's training accuracy."""
        self.collect("train_accuracy", accuracy)

    def collect_val_loss(self, loss: float) -> None:
        """Record the loss on the test split (TinyAI calls it validation loss)."""
        self.collect("test_loss", loss)

    def collect_val_accuracy(self, accuracy: float) -> None:
        """Record the accuracy on the test split."""
        self.collect("test_accuracy", accuracy)

    def end_epoch(self) -> None:
        """Close the epoch: store its metrics and how long it took."""
        if self._epoch_start is None:
            raise ValueError("Monitor.end_epoch: no epoch in progress (call start_new_epoch first)")
        self._current.setdefault("time", time.perf_counter() - self._epoch_start)
        done = len(self._history["time"])
        for name in self._current:
            # A metric first seen now gets None for the epochs before it.
            self._history.setdefault(name, [None] * done)
        for name, values in self._history.items():
            values.append(self._current.get(name))
        self._current = {}
        self._epoch_start = None

    # -- reading -----------------------------------------------------------------
    @property
    def epochs_done(self) -> int:
        """How many epochs have been recorded."""
        return len(self._history["time"])

    @property
    def history(self) -> dict[str, list[Any]]:
        """A copy of every metric's per-epoch list (``None`` where not measured)."""
        return {name: list(values) for name, values in self._history.items()}

    def last(self, name: str) -> float | None:
        """The latest recorded value of ``name``, or None."""
        values = self._history.get(name, [])
        return values[-1] if values else None

    def best(self, name: str) -> float | None:
        """The best value of ``name`` so far: the lowest loss or time, the highest anything else."""
        values = [v for v in self._history.get(name, []) if v is not None and not math.isnan(v)]
        if not values:
            return None
        return min(values) if name.endswith("loss") or name == "time" else max(values)

    def summary_line(self, index: int = -1) -> str:
        """One line describing epoch ``index`` (the last by default), e.g.
        ``epoch 3: loss 0.2113, train_accuracy 0.9402, test_accuracy 0.9315, time 2.1s``."""
        if self.epochs_done == 0:
            return "no epochs recorded"
        if index < 0:
            index += self.epochs_done
        parts = []
        for name, values in self._history.items():
            value = values[index]
            if value is None or name == "time":
                continue
            parts.append(f"{name} {value:.4f}" if name.endswith("accuracy") else f"{name} {value:.4g}")
        parts.append(f"time {self._history['time'][index]:.1f}s")
        return f"epoch {index + 1}: " + ", ".join(parts)

    # -- checkpoints -------------------------------------------------------------
    def state_dict(self) -> dict[str, list[Any]]:
        """The history, JSON-able, for a checkpoint."""
        return self.history

    def load_state_dict(self, state: dict[str, list[Any]]) -> None:
        """Replace the history with one saved by ``state_dict``."""
        lengths = {name: len(values) for name, values in state.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"Monitor.load_state_dict: metric lists differ in length: {lengths}")
        self._history = {name: [] for name in STANDARD_METRICS}
        done = next(iter(lengths.values()), 0)
        for name in STANDARD_METRICS:
            self._history[name] = [None] * done
        for name, values in state.items():
            self._history[name] = [None if v is None else float(v) for v in values]
        self._current = {}
        self._epoch_start = None

    # -- pictures ----------------------------------------------------------------
    def plot(self, path: str | os.PathLike | None = None, show: bool | None = None) -> Any:
        """Draw the loss curves and, when recorded, the accuracy curves.

        In Jupyter, ``trainer.monitor.plot()`` as the last line of a cell shows
        the picture once: the figure is kept out of pyplot (whose inline
        backend would draw it a second time) and displays itself as a PNG.

        Args:
            path: where to save the figure (PNG, or any format matplotlib
                knows from the extension). Parent directories must exist.
            show: True: display it now (in Jupyter, in the cell's output; in a
                terminal with a display, in a window). By default a window
                opens only when no ``path`` is given, a display is available
                and this is not Jupyter.

        Returns:
            The matplotlib ``Figure``.

        matplotlib is an optional dependency (``pip install 'tinyai-numpy[viz]'``).
        Drawing never needs a display, so saving a file always works.
        """
        try:
            import matplotlib  # noqa: F401
        except ImportError as error:
            raise ImportError("Monitor.plot needs matplotlib: pip install 'tinyai-numpy[viz]'") from error
        notebook = _in_ipython()
        headless = os.name != "nt" and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY")
        if show is None:
            show = path is None and not headless and not notebook
        window = show and not notebook
        figure = _new_figure(self._figure_size(), window)
        self._draw(figure)
        if path is not None:
            figure.savefig(os.fspath(path), dpi=100)
            logger.info("Monitor.plot: saved training curves to %s", path)
        if show and notebook:
            from IPython.display import display

            display(figure)
        elif window:
            import matplotlib.pyplot as plt

            plt.show()
        return figure

    def _accuracy_names(self) -> list[str]:
        return [n for n in self._history if n.endswith("accuracy") and any(v is not None for v in self._history[n])]

    def _figure_size(self) -> tuple[float, float]:
        return (5.5 * (2 if self._accuracy_names() else 1), 4)

    def _draw(self, figure: Any) -> None:
        """Draw the curves onto ``figure``: loss on the left, accuracy (if any) on the right."""
        epochs = list(range(1, self.epochs_done + 1))

        def curve(axis, name: str, label: str, style: str) -> bool:
            points = [(e, v) for e, v in zip(epochs, self._history.get(name, [])) if v is not None]
            if points:
                xs, ys = zip(*points)
                axis.plot(xs, ys, style, label=label)
            return bool(points)

        accuracy_names = self._accuracy_names()
        columns = 2 if accuracy_names else 1
        axes = figure.subplots(1, columns, squeeze=False)
        loss_axis = axes[0][0]
        curve(loss_axis, "loss", "train loss", "o-")
        curve(loss_axis, "test_loss", "test loss", "s--")
        loss_axis.set_xlabel("epoch")
        loss_axis.set_ylabel("loss")
        loss_axis.set_title("loss")
        loss_axis.grid(True, alpha=0.3)
        loss_axis.legend()
        if accuracy_names:
            accuracy_axis = axes[0][1]
            for name, style in zip(accuracy_names, ("o-", "s--", "^:", "d-.")):
                curve(accuracy_axis, name, name.replace("_", " "), style)
            accuracy_axis.set_xlabel("epoch")
            accuracy_axis.set_ylabel("accuracy")
            accuracy_axis.set_title("accuracy")
            accuracy_axis.grid(True, alpha=0.3)
            accuracy_axis.legend()
        figure.tight_layout()


def _in_ipython() -> bool:
    """True inside IPython or a Jupyter kernel."""
    shell = sys.modules.get("IPython")
    return shell is not None and getattr(shell, "get_ipython", lambda: None)() is not None


@functools.lru_cache(maxsize=None)
def _figure_class() -> type:
    """A matplotlib Figure that shows itself in Jupyter (as a PNG) when it is a cell's value.

    Made on first use: matplotlib is an optional extra.
    """
    from matplotlib.figure import Figure

    class CurvesFigure(Figure):
        """A Figure that Jupyter displays once, as a PNG."""

        def _repr_png_(self) -> bytes:
            buffer = io.BytesIO()
            self.savefig(buffer, format="png", dpi=100)
            return buffer.getvalue()

    return CurvesFigure


def _new_figure(size: tuple[float, float], window: bool) -> Any:
    """A figure of ``size`` inches: in pyplot when it will open a window, else
    outside pyplot on the headless Agg canvas (nothing draws it behind our back)."""
    if window:
        import matplotlib.pyplot as plt

        return plt.figure(figsize=size, FigureClass=_figure_class())
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure = _figure_class()(figsize=size)
    FigureCanvasAgg(figure)
    return figure
