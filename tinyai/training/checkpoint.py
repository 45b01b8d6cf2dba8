"""Checkpoints: everything needed to carry on training later, in one .npz file.

A checkpoint holds

    model/<name>       each parameter and buffer of the model (its state_dict)
    optimizer/<key>    each array of the optimizer's state (momenta, moments)
    __meta__           a JSON text: format version, epochs done, the optimizer's
                       plain numbers (step count, lr), the random generator's
                       state and the Monitor's history

Nothing in it is a pickle, so loading (``np.load(allow_pickle=False)``) never
runs code from the file. Resuming restores the random state too, so that
training for k epochs, saving, loading and training on gives the same
parameters as training straight through.

The file is written atomically: the arrays go to a temporary file in the same
directory, which is flushed to disk and then renamed over the target with
``os.replace``. A crash while writing leaves the previous checkpoint as it was
(and removes the temporary file), never half a file under the real name.
"""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from typing import Any

import numpy as np

from tinyai.backend import is_array, to_cpu
from tinyai.backend.files import publish

FORMAT = "tinyai-checkpoint"
VERSION = 1
_META = "__meta__"
_MODEL = "model/"
_OPTIMIZER = "optimizer/"


def write_npz_atomic(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` as an uncompressed .npz, atomically.

    The name is used as given (no ``.npz`` is appended). On any error the
    temporary file is removed and the exception propagates; a file that was at
    ``path`` before is left untouched.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"save_checkpoint: directory {directory!r} does not exist")
    fd, temp_path = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as stream:
            np.savez(stream, **arrays)
            stream.flush()
            # The rename must not reach the disk before the data does.
            os.fsync(stream.fileno())
        publish(temp_path, path)
    except BaseException:
        try:
            os.unlink(temp_path)
        except FileNotFoundError:
            pass
        raise


def _host_array(value: Any) -> np.ndarray:
    return np.asarray(to_cpu(value))


def _json_number(value: Any) -> Any:
    """Python numbers, strings, bools and None stay; NumPy scalars become Python ones."""
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"save_checkpoint: optimizer state value of type {type(value).__name__} "
                    "is neither an array nor a number")


def save_checkpoint(path: str | os.PathLike, model: Any, optimizer: Any = None, *, epoch: int = 0,
                    monitor: Any = None, rng_state: dict | None = None, extra: dict | None = None) -> None:
    """Save model weights, optimizer state, epoch count, random state and history to ``path``.

    Args:
        path: target file (conventionally ``*.npz``).
        model: anything with ``state_dict()`` (name -> array).
        optimizer: anything with ``state_dict()`` (flat dict of arrays and numbers), or None.
        epoch: the number of epochs completed.
        monitor: a ``Monitor`` whose history is stored, or None.
        rng_state: ``tinyai.backend.get_state()``, or None.
        extra: more JSON-able information to keep (e.g. the command-line settings).
    """
    arrays: dict[str, np.ndarray] = {}
    for name, value in model.state_dict().items():
        arrays[_MODEL + name] = _host_array(value)
    optimizer_numbers: dict[str, Any] = {}
    if optimizer is not None:
        for key, value in optimizer.state_dict().items():
            if is_array(value) and not isinstance(value, np.generic):
                arrays[_OPTIMIZER + key] = _host_array(value)
            else:
                optimizer_numbers[key] = _json_number(value)
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "epoch": int(epoch),
        "has_optimizer": optimizer is not None,
        "optimizer_numbers": optimizer_numbers,
        "rng_state": rng_state,
        "monitor": None if monitor is None else monitor.state_dict(),
        "extra": extra or {},
    }
    arrays[_META] = np.array(json.dumps(meta))
    write_npz_atomic(path, arrays)


@dataclasses.dataclass
class Checkpoint:
    """The contents of a checkpoint file, as ``load_checkpoint`` returns them."""

    model_state: dict[str, np.ndarray]
    optimizer_state: dict[str, Any] | None
    epoch: int
    rng_state: dict | None
    monitor_state: dict | None
    extra: dict


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint written by ``save_checkpoint`` (no pickles are loaded)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"load_checkpoint: no checkpoint at {path!r}")
    with np.load(path, allow_pickle=False) as archive:
        if _META not in archive.files:
            raise ValueError(f"load_checkpoint: {path!r} is not a tinyai checkpoint (no {_META} entry); "
                             "for bare weights use Model.load_weights")
        meta = json.loads(str(archive[_META]))
        if meta.get("format") != FORMAT or meta.get("version") != VERSION:
            raise ValueError(f"load_checkpoint: {path!r} has format {meta.get('format')!r} "
                             f"version {meta.get('version')!r}; expected {FORMAT!r} version {VERSION}")
        model_state = {k[len(_MODEL):]: archive[k] for k in archive.files if k.startswith(_MODEL)}
        optimizer_state = None
        if meta["has_optimizer"]:
            optimizer_state = {k[len(_OPTIMIZER):]: archive[k] for k in archive.files if k.startswith(_OPTIMIZER)}
            optimizer_state.update(meta["optimizer_numbers"])
    return Checkpoint(model_state=model_state, optimizer_state=optimizer_state, epoch=int(meta["epoch"]),
                      rng_state=meta["rng_state"], monitor_state=meta["monitor"], extra=meta["extra"])
