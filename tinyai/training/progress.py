"""The Trainer's progress display: the one place in tinyai that writes to the terminal.

One display per ``train()`` call, in one of these modes:

    "auto"  "bar" where someone watches the output as it comes (a terminal,
            a Jupyter notebook), else "line": the default (``progress=True``).
            A log file (``tinyai train ... > log.txt``) or a pipe then gets
            the epoch lines alone, not the bar's carriage-return redraws
            mixed into them.
    "bar"   one tqdm progress bar for the whole call (``tqdm.auto``: a widget
            in Jupyter, text in a terminal), restarted for each epoch and
            showing the running loss and samples/s; when an epoch ends its
            summary line is written above the bar, and the bar goes away when
            training ends. Without tqdm installed (``pip install
            'tinyai-numpy[progress]'``) it falls back to "line". Asked for
            by name, the bar is drawn whatever the stream is.
    "line"  the same summary line per epoch, nothing else.
    "off"   nothing.

The summary lines are plain text on the display's stream, so they stay in a
saved or exported notebook, where a widget would not.
"""
from __future__ import annotations

import importlib.util
import logging
import sys
import time
from typing import Any, TextIO

logger = logging.getLogger(__name__)

MODES = ("auto", "bar", "line", "off")


def resolve_mode(progress: bool | str | None) -> str:
    """Map the Trainer's ``progress`` argument to a mode: True -> "auto",
    False -> "line", None -> "off"; the mode names themselves pass through."""
    if progress is True:
        return "auto"
    if progress is False:
        return "line"
    if progress is None:
        return "off"
    if progress in MODES:
        return progress
    raise ValueError(f"Trainer: progress must be True, False, None or one of {MODES}, got {progress!r}")


def _in_jupyter_kernel() -> bool:
    """True inside a Jupyter kernel (where tqdm.auto draws a widget)."""
    shell = sys.modules.get("IPython")
    ipython = getattr(shell, "get_ipython", lambda: None)() if shell is not None else None
    return ipython is not None and "IPKernelApp" in getattr(ipython, "config", {})


def _is_watched(stream: TextIO) -> bool:
    """Whether ``stream`` shows its output as it comes: a terminal, or the
    output of the Jupyter kernel this runs in (not a terminal, but the bar is a widget there)."""
    if stream is sys.stdout or stream is sys.stderr:
        if _in_jupyter_kernel():
            return True
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


def _load_tqdm():
    """tqdm's bar class: the widget in Jupyter, text elsewhere; None without tqdm.

    In Jupyter without ipywidgets, tqdm.auto would print a red TqdmWarning
    and draw text anyway; this takes the text bar directly and says once,
    quietly (logging INFO), which extra brings the widget.
    """
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return None
    if _in_jupyter_kernel() and importlib.util.find_spec("ipywidgets") is None:
        if not TrainingProgress._noted_no_widgets:
            logger.info("the progress widget needs ipywidgets (pip install 'tinyai-numpy[notebook]'); "
                        "showing a text bar")
            TrainingProgress._noted_no_widgets = True
        from tqdm.std import tqdm as text_bar
        return text_bar
    from tqdm.auto import tqdm as auto_bar
    return auto_bar


def format_metrics(metrics: dict[str, float | None]) -> str:
    """``"loss 0.1234, test_accuracy 0.9512"``: accuracies with 4 decimals, the rest with 4 digits."""
    return ", ".join(f"{name} {value:.4f}" if name.endswith("accuracy") else f"{name} {value:.4g}"
                     for name, value in metrics.items() if value is not None)


class TrainingProgress:
    """Shows the progress of one ``train()`` call.

    ``start_epoch`` at the start of each epoch, ``update`` after each batch,
    ``end_epoch`` with the epoch's metrics, ``close`` when training is done
    (``abort`` after an error).

    Args:
        mode: "auto", "bar", "line" or "off" ("auto" is decided here, from ``stream``).
        max_epoch: the last epoch number.
        stream: where the lines (and the text bar) go; stdout by default.
    """

    _warned_no_tqdm = False
    _noted_no_widgets = False

    def __init__(self, mode: str, max_epoch: int, stream: TextIO | None = None) -> None:
        self.mode = mode
        self.stream = stream if stream is not None else sys.stdout
        self.max_epoch = max_epoch
        if mode == "auto":
            mode = self.mode = "bar" if _is_watched(self.stream) else "line"
        self.bar: Any = None
        self._tqdm: Any = None
        if mode == "bar":
            self._tqdm = _load_tqdm()
            if self._tqdm is None:
                if not TrainingProgress._warned_no_tqdm:
                    logger.warning("progress bar needs tqdm (pip install 'tinyai-numpy[progress]'); "
                                   "showing one line per epoch instead")
                    TrainingProgress._warned_no_tqdm = True
                self.mode = "line"
        self.epoch = 0
        self._start_epoch_state(0)

    def _start_epoch_state(self, total: int) -> None:
        self.total = total
        self.samples = 0
        self.loss_sum = 0.0
        self.batches = 0
        self.rate = 0.0
        self.start = time.perf_counter()

    def _label(self) -> str:
        return f"epoch {self.epoch:>{len(str(self.max_epoch))}}/{self.max_epoch}"

    def start_epoch(self, epoch: int, total: int) -> None:
        """Epoch ``epoch`` (1-based) of ``total`` batches begins."""
        self.epoch = epoch
        if self.mode == "bar":
            if self.bar is None:
                # leave=False: when training ends the bar goes; the summary lines stay.
                self.bar = self._tqdm(total=total, desc=self._label(), unit="batch", leave=False,
                                      file=self.stream, dynamic_ncols=True)
            else:
                self.bar.set_description_str(self._label(), refresh=False)
                self.bar.set_postfix_str("", refresh=False)
                self.bar.reset(total=total)
        # Started after the bar exists, so importing tqdm does not count as training time.
        self._start_epoch_state(total)

    def _samples_per_second(self) -> float:
        elapsed = time.perf_counter() - self.start
        return self.samples / elapsed if elapsed > 0 else 0.0

    def update(self, batch_size: int, loss: float) -> None:
        """Count one finished batch of ``batch_size`` samples with loss ``loss``."""
        self.samples += batch_size
        self.loss_sum += loss
        self.batches += 1
        # Training throughput only: the rate is frozen before the evaluation runs.
        self.rate = self._samples_per_second()
        if self.bar is not None:
            self.bar.set_postfix_str(f"loss {self.loss_sum / self.batches:.4g}, "
                                     f"{self.rate:,.0f} samples/s", refresh=False)
            self.bar.update(1)

    def end_epoch(self, metrics: dict[str, float | None]) -> None:
        """The epoch is over: write its summary line with the final ``metrics`` (name -> value)."""
        if self.mode == "off":
            return
        elapsed = time.perf_counter() - self.start
        line = f"{self._label()}: {format_metrics(metrics)}, {elapsed:.1f}s, {self.rate:,.0f} samples/s"
        if self.bar is not None:
            # tqdm.write clears the bar, writes the line above it and draws the bar again.
            self._tqdm.write(line, file=self.stream)
        else:
            # The progress display is the one part of the library that writes to the terminal.
            self.stream.write(line + "\n")
            self.stream.flush()

    def note(self, text: str) -> None:
        """One more line after the epoch's summary (line mode only; the bar mode keeps one line per epoch)."""
        if self.mode == "line":
            self.stream.write(text + "\n")
            self.stream.flush()

    def close(self) -> None:
        """Training is over: remove the bar (the summary lines stay)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def abort(self) -> None:
        """Close the bar after an error."""
        self.close()
