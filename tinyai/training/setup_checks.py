"""Checks the Trainer makes when it is set up, so a mistake fails at once, not after an epoch."""
from __future__ import annotations

import logging
import os
from typing import Any

from tinyai.backend.settings import bool_setting

logger = logging.getLogger(__name__)


def check_optimizer_matches(model: Any, optimizer: Any, where: str = "Trainer.init") -> None:
    """Refuse an optimizer that holds none of ``model``'s parameters.

    Such an optimizer (built on another model, or on a copy of this one)
    updates arrays the training loop never differentiates, so training
    would silently change nothing. An optimizer on part of the model (the
    rest frozen) is fine; parameters it holds that are not the model's are
    logged, since this loop gives them a gradient only if the loss has them.
    A model whose lazy layers have not yet created their parameters cannot
    be checked yet and passes.
    """
    if not hasattr(model, "named_params") or not hasattr(optimizer, "named_params"):
        return
    model_ids = {id(p) for _, p in model.named_params()}
    held = list(optimizer.named_params())
    if not model_ids or not held:
        return
    foreign = [name for name, p in held if id(p) not in model_ids]
    if len(foreign) == len(held):
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise ValueError(f"{where}: the optimizer holds none of the model's parameters (it holds {shown}); "
                         f"build it on this model: {type(optimizer).__name__}(model, ...)")
    if foreign:
        logger.warning("%s: the optimizer holds %d parameter(s) that are not the model's: %s",
                       where, len(foreign), ", ".join(foreign))


def _lacks(value: Any, methods: tuple[str, ...]) -> bool:
    return not all(callable(getattr(value, name, None)) for name in methods)


def check_trainer_settings(checkpoint_path: Any, enable_parallel: Any, monitor: Any = None,
                           evaluator: Any = None, stream: Any = None) -> None:
    """Settings that would otherwise fail late (after an epoch of training) or be misread.

    The monitor, evaluator and stream are checked for the methods the
    Trainer calls on them, so that one of one's own making passes; a string
    (``evaluator="accuracy"``, as other libraries spell metrics) or a file
    name given as ``stream`` fails here instead of at the end of the first epoch.
    """
    if monitor is not None and _lacks(monitor, ("start_new_epoch", "collect", "end_epoch")):
        raise TypeError(f"Trainer: monitor must be a Monitor (or None for a new one), "
                        f"got {type(monitor).__name__} {monitor!r}")
    if evaluator is not None and _lacks(evaluator, ("bind", "batch_score", "evaluate")):
        raise TypeError(f"Trainer: evaluator must be an Evaluator such as AccuracyEval() or None, "
                        f"got {type(evaluator).__name__} {evaluator!r}")
    if stream is not None and _lacks(stream, ("write", "flush")):
        raise TypeError(f"Trainer: stream must be a text stream with write() and flush() (an open file, "
                        f"sys.stderr) or None for stdout, got {type(stream).__name__} {stream!r}")
    if checkpoint_path is not None and not isinstance(checkpoint_path, (str, os.PathLike)):
        raise TypeError(f"Trainer: checkpoint_path must be a path (str or os.PathLike) or None, "
                        f"got {type(checkpoint_path).__name__} {checkpoint_path!r}")
    if checkpoint_path is not None:
        # The first checkpoint is written after the first epoch: a path that cannot take it fails now.
        path = os.path.abspath(os.fspath(checkpoint_path))
        if not os.fspath(checkpoint_path) or os.path.isdir(path):
            raise IsADirectoryError(f"Trainer: checkpoint_path {os.fspath(checkpoint_path)!r} is a directory; "
                                    "give a file name such as checkpoint.npz")
        if not os.path.isdir(os.path.dirname(path)):
            raise FileNotFoundError(f"Trainer: checkpoint_path {os.fspath(checkpoint_path)!r}: directory "
                                    f"{os.path.dirname(path)!r} does not exist")
    # "no" and "False" are true to Python: refuse rather than train in parallel by surprise.
    bool_setting(enable_parallel, "Trainer", "enable_parallel")
