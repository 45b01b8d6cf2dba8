"""Placing a training run on a device: the model, the optimizer's state, and the current GPU.

``Trainer(device="gpu:1")`` calls ``place_on_device`` once in ``init``:
parameters, their gradients and buffers (batch normalisation's running
statistics) move with ``model.to(device)``, and the optimizer's per-parameter
state (momentum, Adam's moments) follows them, so no step ever pays a host
round trip. Batches are moved as they arrive (``batch_variables``), and
``device_scope`` makes the model's GPU the current CUDA device while a step
runs, so that the arrays a step creates (dropout masks, zeros for a
gradient) are allocated next to the parameters.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

from tinyai.backend.device import CPU, Device, as_device, device_of


def model_device(model: Any) -> Device:
    """The device of ``model``'s first Parameter (the CPU if it has none yet)."""
    if hasattr(model, "device"):
        return model.device
    for p in (model.params() if hasattr(model, "params") else ()):
        return device_of(p.data)
    return CPU


def place_on_device(model: Any, optimizer: Any, device: "str | Device") -> Device:
    """Move ``model`` and ``optimizer``'s state to ``device``; returns the Device.

    Raises RuntimeError (naming the reason) when the device cannot be used.
    """
    device = as_device(device)
    model.to(device)
    state = getattr(optimizer, "state", None)
    if isinstance(state, dict):
        for slots in state.values():
            for slot, value in slots.items():
                slots[slot] = device.put(value)
    return device


@contextlib.contextmanager
def device_scope(model: Any) -> Iterator[Device]:
    """Inside the block the model's device is the current one (a no-op on the CPU)."""
    device = model_device(model)
    with device.scope():
        yield device
