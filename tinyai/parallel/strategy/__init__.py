"""Strategies: how the gradients of the shards become an update (see ``strategy.base``).

``make_strategy`` (``strategy.factory``) picks one from the Trainer's options.
"""
from tinyai.parallel.strategy.allreduce import SynchronousAllReduce
from tinyai.parallel.strategy.base import StepOutcome, Strategy
from tinyai.parallel.strategy.compressed import CompressedAllReduce
from tinyai.parallel.strategy.factory import make_strategy
from tinyai.parallel.strategy.local_sgd import LocalSGD
from tinyai.parallel.strategy.parameter_server import ParameterServer

__all__ = ["Strategy", "StepOutcome", "SynchronousAllReduce", "CompressedAllReduce", "ParameterServer", "LocalSGD",
           "make_strategy"]
