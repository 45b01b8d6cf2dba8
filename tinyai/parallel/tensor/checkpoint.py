"""Whole-model state for a tensor-parallel model: gather the shards to save, cut them to load.

A tensor-parallel model's parameters are shards, but its checkpoint should
not depend on how many ranks trained it: ``full_state_dict`` joins every
split layer's pieces into the unsplit layer's ``W`` and ``b`` under the
unsplit model's names, so ``Model``/``Layer.load_state_dict`` of a
single-process tinyai reads it; ``load_full_state_dict`` cuts such a state
into this rank's shards (any number of ranks). Optimizer state (momenta,
Adam's moments) is gathered and cut the same way.

Both are collective calls: every rank of the model's tensor-parallel
communicator makes them, in the same order. To write a checkpoint, gather on
every rank and let one write::

    state = full_state_dict(model)                      # every rank
    moments = full_optimizer_state(model, optimizer)    # every rank
    if comm.rank == 0:
        tinyai.training.save_checkpoint(path, state, moments, epoch=epoch)
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping

from tinyai.backend import to_cpu
from tinyai.nn.layer import Layer, describe_state_mismatch
from tinyai.parallel.tensor.layers import ColumnParallelLinear, _ParallelLinear, gather_last_axis

_STATE = "state."


def split_layers(model: Layer) -> Iterator[tuple[str, _ParallelLinear]]:
    """(dotted prefix ending in "." or "", layer) for every column- or row-parallel layer of ``model``."""
    for prefix, layer in model.named_layers():
        if isinstance(layer, _ParallelLinear):
            yield (f"{prefix}." if prefix else ""), layer


def full_state_dict(model: Layer) -> dict[str, Any]:
    """``model.state_dict()`` with every split layer's shards replaced by its whole ``W`` and ``b`` (collective)."""
    state = dict(model.state_dict())
    for prefix, layer in split_layers(model):
        for name, value in layer.full_state_dict().items():
            state[prefix + name] = value
    return state


def full_shapes(model: Layer) -> dict[str, tuple[int, ...]]:
    """name -> shape of every entry of ``full_state_dict(model)`` (no communication)."""
    shapes = {name: tuple(value.shape) for name, value in model.state_dict().items()}
    for prefix, layer in split_layers(model):
        for name, shape in layer.full_shapes().items():
            shapes[prefix + name] = shape
    return shapes


def load_full_state_dict(model: Layer, state: Mapping[str, Any]) -> None:
    """Load an unsplit model's state (``full_state_dict``'s or a single-process model's) into the shards.

    Raises ValueError naming every missing, unexpected or mis-shaped entry
    (shapes are the unsplit model's), and changes nothing then.
    """
    state = {k: state[k] for k in state.keys()}  # an NpzFile reads once
    problems = describe_state_mismatch(full_shapes(model), state, strict=True)
    if problems:
        raise ValueError(f"load_full_state_dict of {model._label()} (tensor-parallel over "
                         f"{_tensor_size(model)} ranks; shapes are the unsplit model's): {problems}")
    split = {}
    for prefix, layer in split_layers(model):
        layer.load_full_state_dict({name: state[prefix + name] for name in layer.full_shapes()})
        split.update({prefix + name: None for name in layer.full_shapes()})
    model.load_state_dict({k: v for k, v in state.items() if k not in split}, strict=False)


def full_optimizer_state(model: Layer, optimizer: Any) -> dict[str, Any]:
    """``optimizer.state_dict()`` with every per-parameter array of a split layer gathered whole (collective)."""
    state = dict(optimizer.state_dict())
    for key, layer, name in _split_slots(model, state):
        state[key] = to_cpu(_gather(layer, name, state[key]))
    return state


def load_full_optimizer_state(model: Layer, optimizer: Any, state: Mapping[str, Any]) -> None:
    """Load an unsplit optimizer state (``full_optimizer_state``'s) into this rank's optimizer."""
    state = {k: state[k] for k in state.keys()}
    for key, layer, name in list(_split_slots(model, state)):
        state[key] = _cut(layer, name, state[key])
    optimizer.load_state_dict(state)


def _split_slots(model: Layer, state: Mapping[str, Any]) -> Iterator[tuple[str, _ParallelLinear, str]]:
    """(key, layer, parameter name) of every array slot ("state.<param>.<slot>") of a split parameter."""
    for prefix, layer in split_layers(model):
        for name in layer.full_shapes():
            head = f"{_STATE}{prefix}{name}."
            for key in list(state):
                if key.startswith(head) and "." not in key[len(head):] and getattr(state[key], "ndim", 0):
                    yield key, layer, name


def _gather(layer: _ParallelLinear, name: str, value: Any) -> Any:
    """The whole array of a split parameter's slot: the pieces joined along the split axis."""
    if isinstance(layer, ColumnParallelLinear):
        return gather_last_axis(value, layer.comm) if name == "W" else layer.comm.allgather(value)
    return layer.comm.allgather(value) if name == "W" else value


def _cut(layer: _ParallelLinear, name: str, value: Any) -> Any:
    if isinstance(layer, ColumnParallelLinear):
        return value[..., layer.start:layer.stop]
    return value[layer.start:layer.stop] if name == "W" else value


def _tensor_size(model: Layer) -> int:
    for _, layer in split_layers(model):
        return layer.comm.size
    return 1


def full_grads(model: Layer) -> dict[str, Any]:
    """name -> the unsplit model's gradient (the split layers' pieces joined), for every parameter with one.

    A collective call. Handy to check a split model against the unsplit one.
    """
    grads = {name: p.grad.data for name, p in model.named_params() if p.grad is not None}
    for prefix, layer in split_layers(model):
        for name in layer.full_shapes():
            if prefix + name in grads:
                grads[prefix + name] = _gather(layer, name, grads[prefix + name])
    return grads


__all__ = ["full_state_dict", "load_full_state_dict", "full_grads", "full_optimizer_state",
           "load_full_optimizer_state"]
