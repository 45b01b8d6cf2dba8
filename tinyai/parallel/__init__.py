"""Layer 5: data-parallel training (TinyAI's ml.parallel)."""
from tinyai.parallel.aggregator import GradientAggregator
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
    SpmdError,
    ThreadCommunicator,
    ThreadWorld,
    spmd,
)
from tinyai.parallel.mpi import MpiCommunicator, MpiDataParallel
from tinyai.parallel.pipeline import PipelineParallel, PipelineStageError, bubble_fraction, split_into_stages

__all__ = [
    "GradientAggregator", "deep_copy_model", "is_model_parallelizable", "get_recommended_thread_count",
    "apply_aggregated_gradients", "format_parallel_stats",
    "PipelineParallel", "PipelineStageError", "split_into_stages", "bubble_fraction",
    "MpiCommunicator", "MpiDataParallel",
    "Communicator", "CommunicatorError", "ThreadCommunicator", "ThreadWorld", "spmd", "SpmdError",
]
