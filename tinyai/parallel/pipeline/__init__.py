"""Pipeline (model) parallelism, in two parts a reader can take one at a time.

* ``planning`` — pure functions: cut a model into stages
  (``split_into_stages``), the GPipe timetable (``gpipe_schedule``,
  ``format_schedule``) and its idle share (``bubble_fraction``);
* ``runtime`` — ``PipelineParallel``: one thread per stage carrying the plan
  out, the stages talking through the small message types of ``messages``.
"""
from tinyai.parallel.pipeline.planning import (
    balanced_groups,
    bubble_fraction,
    format_schedule,
    gpipe_schedule,
    split_into_stages,
)
from tinyai.parallel.pipeline.runtime import PIPELINE_BACKENDS, PipelineParallel, PipelineStageError

__all__ = ["PipelineParallel", "PipelineStageError", "split_into_stages", "bubble_fraction", "gpipe_schedule",
           "format_schedule", "balanced_groups"]
