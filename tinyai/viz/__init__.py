"""Seeing what tinyai computes: graph pictures, console visualizers and plots.

* :func:`get_dot_graph`, :func:`plot_dot_graph`, :func:`show_graph`: the
  computation graph as Graphviz DOT text, an image file, or an inline
  picture in Jupyter.
* :class:`ComputationGraphVisualizer`: the graph as an indented tree in the
  terminal.
* :class:`StepByStepVisualizer`: backward, one Function at a time, with the
  gradients going in and out.
* :func:`tensor_split_figure`, :func:`communication_figure`,
  :func:`timeline_figure`: model parallelism drawn from a real run.
* :class:`Plot`: decision regions of a classifier and line plots, as PNG
  files (matplotlib, the ``viz`` extra).

This is an aside layer: it uses only ``tinyai.backend`` and
``tinyai.autograd``, and nothing in tinyai depends on it.
"""
from tinyai.viz.console import BackwardStep, ComputationGraphVisualizer, StepByStepVisualizer
from tinyai.viz.dot import GraphView, get_dot_graph, plot_dot_graph, show_graph
from tinyai.viz.model_parallel import communication_figure, tensor_split_figure, timeline_figure
from tinyai.viz.plot import Plot

__all__ = [
    "get_dot_graph", "plot_dot_graph", "show_graph", "GraphView",
    "ComputationGraphVisualizer", "StepByStepVisualizer", "BackwardStep", "Plot",
    "tensor_split_figure", "communication_figure", "timeline_figure",
]
