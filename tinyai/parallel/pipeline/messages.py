"""The messages of a running pipeline: what stages send each other and the caller.

Each stage thread reads its inbox and does what the message says; the caller
reads a results queue. A message is a small frozen dataclass, so a reader
sees at a glance what travels where (and a misspelt field fails loudly):

    caller  -> last stage   Targets      the micro-batches' targets, weights n_m/N, the loss
    caller  -> stage 0      Forward      micro-batch m's inputs
    stage k -> stage k+1    Forward      micro-batch m's activations
    stage k -> stage k-1    Backward     dL/d(activations) of micro-batch m
    caller  -> stage 0      Infer        micro-batch m's inputs, for inference
    stage k -> stage k+1    Infer        micro-batch m's activations, for inference
    caller  -> every stage  Stop         end the thread

    last stage -> caller    LossReady    the batch's mean loss (after the last forward)
    stage 0    -> caller    BackwardDone micro-batch m's backward reached the first stage
    last stage -> caller    Output       micro-batch m's inference output
    any stage  -> caller    StageFailed  stage k raised in a phase of micro-batch m
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Targets:
    """The targets of every micro-batch, their weights n_m / N, and the loss to apply."""

    targets: list
    weights: list
    loss: Any


@dataclass(frozen=True)
class Forward:
    """Micro-batch ``micro_batch`` (of ``count``) entering a stage: inputs or activations."""

    micro_batch: int
    count: int
    data: Any


@dataclass(frozen=True)
class Backward:
    """The gradient of the loss with respect to the stage's output for ``micro_batch``."""

    micro_batch: int
    grad: Any


@dataclass(frozen=True)
class Infer:
    """Micro-batch ``micro_batch`` for inference (no graph, test mode)."""

    micro_batch: int
    data: Any


@dataclass(frozen=True)
class Stop:
    """End the stage's thread."""


@dataclass(frozen=True)
class LossReady:
    """The batch's mean loss, sum_m (n_m / N) L_m."""

    value: float


@dataclass(frozen=True)
class BackwardDone:
    """The backward of ``micro_batch`` has gone through every stage."""

    micro_batch: int


@dataclass(frozen=True)
class Output:
    """The last stage's inference output for ``micro_batch``."""

    micro_batch: int
    data: Any


@dataclass(frozen=True)
class StageFailed:
    """Stage ``stage`` raised ``error`` in ``phase`` ("forward", "loss", "backward", "inference")."""

    stage: int
    phase: str
    micro_batch: int
    error: BaseException
