"""Layer 5: distributed training (TinyAI's ml.parallel).

Read it as its parts:

* communicators (``tinyai.parallel.comm``): how ranks talk — all-reduce,
  all-gather, broadcast, send/recv — over threads, processes or MPI;
* executors (``tinyai.parallel.executor``): where shards run — threads,
  processes, MPI ranks — and how workers start, fail and stop;
* strategies (``tinyai.parallel.strategy``): how the shards' gradients become
  an update — synchronous all-reduce, by the executor or with a chosen
  exchange (``CompressedAllReduce``: compressed gradients, or the ring);
* gradient compression (``tinyai.parallel.compression``), ring all-reduce
  over send/recv (``tinyai.parallel.ring``), and what a run exchanged
  (``tinyai.parallel.stats``, behind ``Trainer.parallel_stats()``);
* TinyAI's own pieces: ``ParallelBatchProcessor`` (one worker's work on one
  shard), ``GradientAggregator``, and ParallelTrainingUtils as functions;
* pipeline parallelism (``tinyai.parallel.pipeline``).
"""
from tinyai.parallel.aggregator import GradientAggregator
from tinyai.parallel.engine import DataParallel
from tinyai.parallel.executor import Executor, WorkerContext, WorkerError, make_executor
from tinyai.parallel.options import ParallelOptions
from tinyai.parallel.processor import BatchProcessResult, ParallelBatchProcessor
from tinyai.parallel.strategy import (
    CompressedAllReduce, LocalSGD, ParameterServer, StepOutcome, Strategy, SynchronousAllReduce,
)
from tinyai.parallel.stats import ParallelStats
from tinyai.parallel.utils import (
    apply_aggregated_gradients,
    deep_copy_model,
    format_parallel_stats,
    get_recommended_thread_count,
    is_model_parallelizable,
)
from tinyai.parallel.comm import (
    Communicator,
    CommunicatorError,
    MpiCommunicator,
    ProcessCommunicator,
    ProcessWorld,
    SpmdError,
    ThreadCommunicator,
    ThreadWorld,
    mpi_world,
    spmd,
)
from tinyai.parallel.pipeline import PipelineParallel, PipelineStageError, bubble_fraction, split_into_stages
from tinyai.parallel.grid import ProcessGrid
from tinyai.parallel.hybrid import GridExecutor, HybridParallel

__all__ = [
    "GradientAggregator", "deep_copy_model", "is_model_parallelizable", "get_recommended_thread_count",
    "apply_aggregated_gradients", "format_parallel_stats",
    "ParallelBatchProcessor", "BatchProcessResult",
    "DataParallel", "ParallelOptions", "Executor", "WorkerContext", "WorkerError", "make_executor",
    "Strategy", "StepOutcome", "SynchronousAllReduce", "CompressedAllReduce", "ParameterServer", "LocalSGD",
    "ParallelStats",
    "PipelineParallel", "PipelineStageError", "split_into_stages", "bubble_fraction",
    "Communicator", "CommunicatorError", "ThreadCommunicator", "ThreadWorld", "ProcessCommunicator",
    "ProcessWorld", "MpiCommunicator", "mpi_world", "spmd", "SpmdError",
    "ProcessGrid", "HybridParallel", "GridExecutor",
]
