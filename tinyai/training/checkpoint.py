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
(and removes the temporary file), never half a file under the real name; the
temporary files of a save that was killed outright are removed by the next
save to the same path (see ``tinyai.training.npz_files``).

Reading checks the whole file before handing anything back: a damaged
archive, a pickled entry, a broken or incomplete ``__meta__`` record each
give a ValueError that names the path and the fault.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Mapping

import numpy as np

from tinyai.backend import is_array, to_cpu
from tinyai.training.npz_files import read_npz, write_npz_atomic  # noqa: F401 (write_npz_atomic: its old home)

FORMAT = "tinyai-checkpoint"
VERSION = 1
_META = "__meta__"
_MODEL = "model/"
_OPTIMIZER = "optimizer/"


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


def _state_of(owner: Any) -> Mapping[str, Any]:
    """``owner.state_dict()``, or ``owner`` when it already is a state dict."""
    return owner if isinstance(owner, Mapping) else owner.state_dict()


def save_checkpoint(path: str | os.PathLike, model: Any, optimizer: Any = None, *, epoch: int = 0,
                    monitor: Any = None, rng_state: dict | None = None, extra: dict | None = None) -> None:
    """Save model weights, optimizer state, epoch count, random state and history to ``path``.

    Args:
        path: target file (conventionally ``*.npz``).
        model: anything with ``state_dict()`` (name -> array), or such a
            dict itself (e.g. a tensor-parallel model's gathered
            ``tinyai.parallel.tensor.full_state_dict``).
        optimizer: anything with ``state_dict()`` (flat dict of arrays and
            numbers), such a dict, or None.
        epoch: the number of epochs completed.
        monitor: a ``Monitor`` whose history is stored, or None.
        rng_state: ``tinyai.backend.get_state()``, or None.
        extra: more JSON-able information to keep (e.g. the command-line settings).
    """
    arrays: dict[str, np.ndarray] = {}
    for name, value in _state_of(model).items():
        arrays[_MODEL + name] = _host_array(value)
    optimizer_numbers: dict[str, Any] = {}
    if optimizer is not None:
        for key, value in _state_of(optimizer).items():
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
    write_npz_atomic(path, arrays, where="save_checkpoint")


@dataclasses.dataclass
class Checkpoint:
    """The contents of a checkpoint file, as ``load_checkpoint`` returns them."""

    model_state: dict[str, np.ndarray]
    optimizer_state: dict[str, Any] | None
    epoch: int
    rng_state: dict | None
    monitor_state: dict | None
    extra: dict


#: The entries of ``__meta__`` and the types each must have.
_META_FIELDS = {"format": str, "version": int, "epoch": int, "has_optimizer": bool,
                "optimizer_numbers": dict, "rng_state": (dict, type(None)), "monitor": (dict, type(None)),
                "extra": dict}


def _read_meta(arrays: dict[str, np.ndarray], path: str) -> dict:
    """The checked ``__meta__`` record of a checkpoint's arrays, or a ValueError naming the fault."""
    where = f"load_checkpoint: {path!r}"
    if _META not in arrays:
        raise ValueError(f"{where} is not a tinyai checkpoint (no {_META} entry); "
                         "for bare weights use Model.load_weights")
    raw = arrays[_META]
    if raw.shape != () or raw.dtype.kind != "U":
        raise ValueError(f"{where}: its {_META} entry is a {raw.dtype} array of shape {raw.shape}, not a JSON text")
    try:
        meta = json.loads(str(raw))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: its {_META} entry is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{where}: its {_META} entry holds a {type(meta).__name__}, not a JSON object")
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise ValueError(f"{where} has format {meta.get('format')!r} "
                         f"version {meta.get('version')!r}; expected {FORMAT!r} version {VERSION}")
    missing = [name for name in _META_FIELDS if name not in meta]
    if missing:
        raise ValueError(f"{where}: its {_META} record lacks {', '.join(missing)} (an incomplete or edited file)")
    for name, kinds in _META_FIELDS.items():
        value = meta[name]
        if not isinstance(value, kinds) or (kinds is int and isinstance(value, bool)):
            raise ValueError(f"{where}: {_META} field {name!r} is {value!r}, of the wrong type")
    if meta["epoch"] < 0:
        raise ValueError(f"{where}: {_META} field 'epoch' is {meta['epoch']}, a negative epoch count")
    return meta


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint written by ``save_checkpoint`` (no pickles are loaded).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: naming the path, when the file is not a readable .npz
            archive of plain arrays, or not a tinyai checkpoint, or its
            ``__meta__`` record is broken or incomplete.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"load_checkpoint: no checkpoint at {path!r}")
    arrays = read_npz(path, "load_checkpoint", "a tinyai checkpoint")
    meta = _read_meta(arrays, path)
    model_state = {k[len(_MODEL):]: v for k, v in arrays.items() if k.startswith(_MODEL)}
    optimizer_state = None
    if meta["has_optimizer"]:
        optimizer_state = {k[len(_OPTIMIZER):]: v for k, v in arrays.items() if k.startswith(_OPTIMIZER)}
        optimizer_state.update(meta["optimizer_numbers"])
    return Checkpoint(model_state=model_state, optimizer_state=optimizer_state, epoch=meta["epoch"],
                      rng_state=meta["rng_state"], monitor_state=meta["monitor"], extra=meta["extra"])
