"""Strategies: how the gradients of the shards become an update (see ``strategy.base``)."""
from tinyai.parallel.strategy.allreduce import SynchronousAllReduce
from tinyai.parallel.strategy.base import StepOutcome, Strategy

__all__ = ["Strategy", "StepOutcome", "SynchronousAllReduce"]
