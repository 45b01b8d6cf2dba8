"""Writing files atomically with the permissions users expect.

tinyai writes every file it saves (models, checkpoints, downloads, pictures)
to a temporary file in the destination's directory and renames it into place,
so a crash never leaves half a file. ``tempfile.mkstemp`` creates that
temporary file readable by its owner only (0600); renamed as it is, a saved
model would not be readable by the rest of the group, unlike any file made
with ``open``. ``publish`` gives the file the mode ``open`` would have given
it (0666 less the process's umask: 0644 under the usual umask 022) before
the rename.
"""
from __future__ import annotations

import os
import threading

_umask_lock = threading.Lock()


def current_umask() -> int:
    """The process's file-creation mask (e.g. 0o022)."""
    try:
        # Linux reports it without changing it.
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    # Elsewhere the only way to read it is to set it and put it back.
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def publish(temp_path: str | os.PathLike, path: str | os.PathLike) -> None:
    """Give ``temp_path`` the permissions of a newly created file, then rename it to ``path``."""
    os.chmod(temp_path, 0o666 & ~current_umask())
    os.replace(temp_path, path)
