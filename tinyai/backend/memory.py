"""Keeping freed memory for the next array: glibc malloc settings for array workloads.

Every training step allocates the same large arrays again: activations, the
windows of each convolution, gradients. By default glibc gives each block
larger than its (moving) threshold straight from the operating system
(``mmap``) and hands it back when freed (``munmap``), and it returns freed
memory at the top of its heap too. Then every new array of a step is fresh
memory: the kernel zero-fills it and takes a page fault on every 4 KiB of it
at first touch. For the small CNN of the benchmarks that was more than half
of a training step's time.

So, on Linux with glibc, importing tinyai asks malloc (``mallopt``) to serve
blocks up to 32 MiB from its heap and to keep up to 1 GiB of freed memory for
reuse rather than returning it. The process then holds on to its peak memory
use, as PyTorch's and TensorFlow's caching allocators do (PyTorch's CPU
performance guide recommends jemalloc or tcmalloc for the same reason).

Set the environment variable ``TINYAI_MALLOC=system`` before importing tinyai
to leave malloc as it is.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

logger = logging.getLogger(__name__)

# mallopt parameters, from glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Blocks up to this size come from the heap (glibc's largest allowed threshold on 64-bit).
MMAP_THRESHOLD = 32 * 1024 * 1024
#: Freed memory at the top of the heap is kept up to this size.
TRIM_THRESHOLD = 1024 * 1024 * 1024

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Apply the malloc settings described above, once; True when they are in force."""
    global _applied
    if _applied is None:
        _applied = _apply()
    return _applied


def _apply() -> bool:
    if os.environ.get("TINYAI_MALLOC", "").lower() == "system" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    if not ok:
        logger.debug("tinyai: mallopt refused the array-friendly settings; malloc left as it is")
    return ok
