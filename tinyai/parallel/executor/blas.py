"""Limiting BLAS to one thread while data-parallel workers compute.

Each worker of a thread executor runs its own matrix products; if BLAS also
spread every product over all cores, the workers would fight for them. So
BLAS is limited to one thread while the shards run, and given back its own
setting afterwards.

Two trainers may run steps at the same time (in two threads of one program),
and BLAS's setting is one per process. Nesting the limit naively breaks: the
second trainer saves the *limited* setting and restores it after the first
has restored the original, leaving BLAS at one thread for good. So the
limit is reference counted: the first step in saves and limits, the last
step out restores.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Any, Iterator

_lock = threading.Lock()
_users = 0
_controller: Any = None
_saved: Any = None


def _get_controller() -> Any:
    """threadpoolctl's controller (finding the BLAS libraries takes most of a millisecond: once), or False."""
    global _controller
    if _controller is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # optional: without it, BLAS keeps its own setting
            _controller = False
        else:
            _controller = ThreadpoolController()
    return _controller


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Inside the block BLAS uses one thread; the original setting returns when the last user leaves."""
    global _users, _saved
    with _lock:
        controller = _get_controller()
        if controller and _users == 0:
            _saved = controller.limit(limits=1, user_api="blas")
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0 and _saved is not None:
                _saved.restore_original_limits()
                _saved = None


def use_one_blas_thread_for_good() -> None:
    """Limit BLAS to one thread for the rest of this process: a worker process calls it as it starts.

    Worker processes compute side by side, one per core, so each must keep to
    one BLAS thread. A spawned worker already does (the executor sets
    OPENBLAS_NUM_THREADS and friends for the fresh interpreter), but a forked
    one (notebooks, the REPL) inherits BLAS as the master set it up, with a
    thread per core: two forked workers on two cores ran four BLAS threads and
    a SimpleConvNet step took twice as long.
    """
    controller = _get_controller()
    if controller:
        controller.limit(limits=1, user_api="blas")  # never restored: the process exists to be a worker


def blas_thread_counts() -> list[int]:
    """The current thread count of every loaded BLAS library (empty without threadpoolctl)."""
    controller = _get_controller()
    if not controller:
        return []
    return [info["num_threads"] for info in controller.select(user_api="blas").info()]
