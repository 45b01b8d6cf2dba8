"""Switches that change how operations behave: gradient recording and train/test mode.

Both live in ``contextvars``: a ``with no_grad():`` block in one thread (or
asyncio task) never turns gradients off in another. A new thread starts with
the defaults (gradients on, train mode), whatever its parent had set.
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator

_grad_enabled: contextvars.ContextVar[bool] = contextvars.ContextVar("tinyai_grad_enabled", default=True)
_train_mode: contextvars.ContextVar[bool] = contextvars.ContextVar("tinyai_train_mode", default=True)
# True while a plain (unrecorded) backward pass runs: Functions then receive and
# return raw arrays (see tinyai.autograd.function). Only Variable.backward sets it.
_backward_on_arrays: contextvars.ContextVar[bool] = contextvars.ContextVar("tinyai_backward_on_arrays",
                                                                           default=False)


def is_grad_enabled() -> bool:
    """True when operations record the graph that ``backward`` walks."""
    return _grad_enabled.get()


def is_train_mode() -> bool:
    """True in train mode (dropout drops, batch norm uses batch statistics)."""
    return _train_mode.get()


@contextlib.contextmanager
def _setting(var: contextvars.ContextVar[bool], value: bool) -> Iterator[None]:
    token = var.set(value)
    try:
        yield
    finally:
        var.reset(token)


def no_grad() -> contextlib.AbstractContextManager:
    """Run the block without recording a graph (inference, optimizer updates).

    >>> with no_grad():
    ...     assert not is_grad_enabled()
    """
    return _setting(_grad_enabled, False)


def enable_grad() -> contextlib.AbstractContextManager:
    """Record the graph inside the block, even within ``no_grad()``."""
    return _setting(_grad_enabled, True)


def test_mode() -> contextlib.AbstractContextManager:
    """Evaluate in test mode: dropout passes values through, batch norm uses running statistics."""
    return _setting(_train_mode, False)


def train_mode() -> contextlib.AbstractContextManager:
    """Train mode inside the block (the default)."""
    return _setting(_train_mode, True)


test_mode.__test__ = False  # not a pytest test, despite its name
