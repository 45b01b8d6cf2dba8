"""The Trainer's progress display: the one place in tinyai that writes to the terminal.

Three modes:

    "bar"   a tqdm progress bar per epoch with the running loss and samples/s
            (``tqdm.auto``: a widget inside Jupyter, text in a terminal); the
            bar stays on screen with the epoch's final numbers. Without tqdm
            installed (``pip install 'tinyai-numpy[progress]'``) it falls back to "line".
    "line"  one summary line per epoch.
    "off"   nothing.
"""
from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

logger = logging.getLogger(__name__)

MODES = ("bar", "line", "off")


def resolve_mode(progress: bool | str | None) -> str:
    """Map the Trainer's ``progress`` argument to a mode: True -> "bar",
    False -> "line", None -> "off"; the mode names themselves pass through."""
    if progress is True:
        return "bar"
    if progress is False:
        return "line"
    if progress is None:
        return "off"
    if progress in MODES:
        return progress
    raise ValueError(f"Trainer: progress must be True, False, None or one of {MODES}, got {progress!r}")


def _load_tqdm():
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


class EpochProgress:
    """Shows one epoch's progress; ``update`` after each batch, ``close`` at the end.

    Args:
        mode: "bar", "line" or "off".
        epoch: the 1-based epoch number shown.
        max_epoch: the last epoch number.
        total: the number of batches in the epoch.
        stream: where lines (and the text bar) go; stdout by default.
    """

    _warned_no_tqdm = False

    def __init__(self, mode: str, epoch: int, max_epoch: int, total: int, stream: TextIO | None = None) -> None:
        self.mode = mode
        self.stream = stream if stream is not None else sys.stdout
        self.epoch, self.max_epoch = epoch, max_epoch
        self.samples = 0
        self.loss_sum = 0.0
        self.batches = 0
        self.rate = 0.0
        self.bar: Any = None
        if mode == "bar":
            tqdm = _load_tqdm()
            if tqdm is None:
                if not EpochProgress._warned_no_tqdm:
                    logger.warning("progress bar needs tqdm (pip install 'tinyai-numpy[progress]'); "
                                   "showing one line per epoch instead")
                    EpochProgress._warned_no_tqdm = True
                self.mode = "line"
            else:
                width = len(str(max_epoch))
                self.bar = tqdm(total=total, desc=f"epoch {epoch:>{width}}/{max_epoch}", unit="batch",
                                leave=True, file=self.stream, dynamic_ncols=True)
        # Started after the bar exists, so importing tqdm does not count as training time.
        self.start = time.perf_counter()

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

    def close(self, metrics: dict[str, float | None]) -> None:
        """End the epoch, showing its final ``metrics`` (name -> value)."""
        shown = ", ".join(f"{name} {value:.4f}" if name.endswith("accuracy") else f"{name} {value:.4g}"
                          for name, value in metrics.items() if value is not None)
        rate = f"{self.rate:,.0f} samples/s"
        if self.bar is not None:
            self.bar.set_postfix_str(f"{shown}, {rate}", refresh=True)
            self.bar.close()
            self.bar = None
        elif self.mode == "line":
            elapsed = time.perf_counter() - self.start
            width = len(str(self.max_epoch))
            # The progress display is the one part of the library that writes to the terminal.
            self.stream.write(f"epoch {self.epoch:>{width}}/{self.max_epoch}: {shown}, {elapsed:.1f}s, {rate}\n")
            self.stream.flush()

    def note(self, text: str) -> None:
        """One more line after the epoch's summary (line mode only; a bar has no room for it)."""
        if self.mode == "line":
            self.stream.write(text + "\n")
            self.stream.flush()

    def abort(self) -> None:
        """Close the bar after an error, without a summary."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
