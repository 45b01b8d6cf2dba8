"""Writing and reading the .npz files that hold weights and checkpoints, safely.

Writing is atomic. The arrays go to a temporary file in the target's
directory, which is flushed to disk and renamed over the target
(``os.replace``), so the target is always either the old file or the new
one, never half of one. The temporary name is unique to the writer,

    .<target name>.tinyai-<process id>-<random>.tmp

so two processes saving to the same place never share one. Any error
removes it. A process killed outright (SIGKILL, a power cut) cannot clean up
after itself, so every save also removes the temporary files of earlier
saves to the same target whose process is gone.

Reading never unpickles (``allow_pickle=False``) and every failure names the
file and what is wrong with it, as a ``ValueError`` (or ``FileNotFoundError``
and friends when the file cannot be opened at all), instead of NumPy's or
zipfile's own exceptions.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import zipfile
import zlib

import numpy as np

from tinyai.backend.files import publish

logger = logging.getLogger(__name__)

_TEMP_MARK = ".tinyai-"


def _temp_name(path: str) -> str:
    directory, base = os.path.split(path)
    return os.path.join(directory, f".{base}{_TEMP_MARK}{os.getpid()}-{secrets.token_hex(4)}.tmp")


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # our own: perhaps another thread is saving right now
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists but belongs to someone else, or cannot tell: leave it
    return True


def remove_stale_temp_files(path: str | os.PathLike) -> list[str]:
    """Delete the temporary files left by killed saves to ``path``; returns what was removed.

    Only names of tinyai's own pattern for this very target are considered,
    and only those whose writing process no longer exists.
    """
    path = os.path.abspath(os.fspath(path))
    directory, base = os.path.split(path)
    pattern = re.compile(re.escape(f".{base}{_TEMP_MARK}") + r"(\d+)-[0-9a-f]+\.tmp")
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        match = pattern.fullmatch(name)
        if match and not _process_alive(int(match.group(1))):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(directory, name))
                removed.append(name)
    if removed:
        logger.info("removed %d temporary file(s) of interrupted saves to %s", len(removed), path)
    return removed


def write_npz_atomic(path: str | os.PathLike, arrays: dict[str, np.ndarray], where: str = "save") -> None:
    """Write ``arrays`` to ``path`` as an uncompressed .npz, atomically (see the module docstring).

    The name is used as given (no ``.npz`` is appended). On any error the
    temporary file is removed and the exception propagates; a file that was at
    ``path`` before is left untouched.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{where}: path must be a str or os.PathLike, got {type(path).__name__} {path!r}")
    given = path
    if not os.fspath(path):
        raise ValueError(f"{where}: the path is empty; give a file name such as model.npz")
    path = os.path.abspath(os.fspath(path))
    if os.path.isdir(path):  # found now, not by the rename after the whole archive is written
        raise IsADirectoryError(f"{where}: {os.fspath(given)!r} is a directory; give a file name "
                                "such as model.npz")
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{where}: directory {directory!r} does not exist")
    remove_stale_temp_files(path)
    temp_path = _temp_name(path)
    try:
        with open(temp_path, "xb") as stream:
            np.savez(stream, **arrays)  # a file object: np.savez adds no suffix
            stream.flush()
            # The rename must not reach the disk before the data does.
            os.fsync(stream.fileno())
        publish(temp_path, path)  # the mode open() would give, then the rename
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_path)
        raise


def read_npz(path: str | os.PathLike, where: str, kind: str = ".npz file") -> dict[str, np.ndarray]:
    """Every array of the .npz archive at ``path``, read without unpickling anything.

    Raises FileNotFoundError, IsADirectoryError or PermissionError naming
    the path when it cannot be opened, and ValueError naming the path (and
    the entry, where one is at fault) when its content is not a readable
    .npz archive of plain arrays. ``where`` (the caller) starts each message,
    ``kind`` says what the file should have been.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{where}: path must be a str or os.PathLike, got {type(path).__name__} {path!r}")
    path = os.fspath(path)
    corrupt = f"{where}: cannot read {path!r} as {kind} (corrupt, truncated or another format)"
    try:
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"{where}: no such file: {path!r}") from None
    except (IsADirectoryError, PermissionError) as exc:
        raise type(exc)(f"{where}: cannot open {path!r}: {exc.strerror or exc}") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise ValueError(f"{corrupt}: {exc}") from None
    if not hasattr(archive, "files"):
        raise ValueError(f"{where}: {path!r} holds a single .npy array, not {kind} (an .npz archive)")
    arrays = {}
    with archive:
        for key in archive.files:
            try:
                arrays[key] = archive[key]
            except ValueError as exc:
                if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
                    raise ValueError(f"{where}: cannot read {path!r}: entry {key!r} is a pickled object "
                                     "array, and tinyai never unpickles (allow_pickle=False)") from None
                raise ValueError(f"{corrupt}: entry {key!r}: {exc}") from None
            except (OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
                raise ValueError(f"{corrupt}: entry {key!r}: {exc}") from None
    return arrays
