"""Looking at the graph and at backpropagation in a terminal, without Graphviz.

``ComputationGraphVisualizer`` prints the graph behind a value as an indented
tree, the result at the top and the inputs it came from below it.
``StepByStepVisualizer`` runs ``backward`` and reports every step it takes:
which Function ran, which gradient came in, which went out to each input.
Both are TinyAI's console visualizers; both write to a stream you choose
(``file=``, standard output by default) and also return what they wrote.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, TextIO

from tinyai.autograd import Variable
from tinyai.viz._graph import Graph, check_variable, collect, describe, format_array


class ComputationGraphVisualizer:
    """The graph behind a Variable as an indented tree.

    Each line is a Variable: its id (``v0``, ``v1``, ... as in
    :func:`tinyai.viz.get_dot_graph`), name, shape and dtype, then
    ``<- Mul`` naming the Function that made it, whose inputs follow one
    level deeper. A value reached a second time is printed once more but not
    expanded again (``(see above)``), so a graph with shared parts cannot
    blow up into an exponentially long tree.

    Args:
        verbose: also show each value and gradient.
        indent: the text repeated once per level.

    >>> import tinyai as ta
    >>> x = ta.Variable([1.0, 2.0], name="x")
    >>> print(ComputationGraphVisualizer().render(x * 2), end="")
    v2 (2,) float32 <- Mul
      v0 'x' (2,) float32
      v1 () float32
    """

    def __init__(self, verbose: bool = False, indent: str = "  ") -> None:
        self.verbose = verbose
        self.indent = indent

    def _line(self, v: Variable, graph: Graph, depth: int, note: str) -> str:
        text = self.indent * depth + describe(v, graph)
        if v.creator is not None and id(v.creator) in graph.fn_ids:
            text += f" <- {type(v.creator).__name__}"
        if self.verbose:
            text += f"  data={format_array(v.data)} grad={format_array(v.grad)}"
        return text + note + "\n"

    def render(self, y: Variable) -> str:
        """The tree as a string (one line per Variable, ending with a newline)."""
        check_variable(y, "ComputationGraphVisualizer.render")
        graph = collect(y)
        lines: list[str] = []
        expanded: set[int] = set()
        stack: list[tuple[Variable, int]] = [(y, 0)]
        while stack:  # iterative depth-first walk: deep graphs do not hit the recursion limit
            v, depth = stack.pop()
            creator = v.creator
            repeat = creator is not None and id(creator) in expanded
            lines.append(self._line(v, graph, depth, "  (see above)" if repeat else ""))
            if creator is None or repeat:
                continue
            expanded.add(id(creator))
            for x in reversed(creator.inputs):  # reversed: the first input is printed first
                stack.append((x, depth + 1))
        return "".join(lines)

    def display(self, y: Variable, file: TextIO | None = None) -> str:
        """Write the tree to ``file`` (standard output when None) and return it."""
        text = self.render(y)
        (sys.stdout if file is None else file).write(text)
        return text


def _array(gradient: Any) -> Any:
    """The array of a gradient: backward hands a Function raw arrays or Variables
    (with ``create_graph``); either way the step records the array (``.data`` of
    a raw NumPy array would be a memoryview)."""
    if gradient is None:
        return None
    return gradient.data if isinstance(gradient, Variable) else gradient


@dataclass
class BackwardStep:
    """One step of backpropagation: a Function turning output gradients into input gradients.

    Attributes:
        index: 1 for the first Function ``backward`` ran, 2 for the next, ...
        function: the Function's class name.
        generation: its generation (backward runs the highest first).
        outputs: labels of the Function's outputs (``describe`` text).
        incoming: the gradient arriving for each output (arrays; None where
            an output received none).
        inputs: labels of the Function's inputs.
        outgoing: the gradient sent to each input (arrays; None where the
            Function sent none).
    """

    index: int
    function: str
    generation: int
    outputs: list[str]
    incoming: list[Any]
    inputs: list[str]
    outgoing: list[Any]


class StepByStepVisualizer:
    """Run backward on a value and report, in order, every step it takes.

    Backward is the real one (``y.backward``): the visualizer listens to each
    Function's ``backward`` call while it happens, so the report shows the
    order tinyai really uses (highest generation first) and the gradients it
    really computes. The gradients are left in the leaves afterwards, exactly
    as a plain ``y.backward()`` would leave them.
    """

    def trace_backward(self, y: Variable, grad: Any = None) -> list[BackwardStep]:
        """Run ``y.backward(grad)`` and return the steps it took, first to last."""
        check_variable(y, "StepByStepVisualizer.trace_backward")
        graph = collect(y)
        steps: list[BackwardStep] = []

        def listen(function: Any) -> None:
            original = function.backward  # the class's bound method

            def backward(*gys: Any) -> Any:
                gxs = original(*gys)
                as_tuple = gxs if isinstance(gxs, tuple) else (gxs,)
                outputs = [ref() for ref in function.outputs]
                steps.append(BackwardStep(
                    index=len(steps) + 1,
                    function=type(function).__name__,
                    generation=function.generation,
                    outputs=["(freed)" if out is None else describe(out, graph) for out in outputs],
                    incoming=[_array(g) for g in gys],
                    inputs=[describe(x, graph) for x in function.inputs],
                    outgoing=[_array(g) for g in as_tuple],
                ))
                return gxs

            # An instance attribute shadows the class method for this one object only.
            function.backward = backward

        for function in graph.functions:
            listen(function)
        try:
            y.backward(grad)
        finally:
            for function in graph.functions:
                function.__dict__.pop("backward", None)
        return steps

    def format_steps(self, steps: list[BackwardStep]) -> str:
        """The report for ``steps`` as text."""
        lines = []
        for step in steps:
            lines.append(f"step {step.index}: {step.function} (generation {step.generation})")
            for label, g in zip(step.outputs, step.incoming):
                lines.append(f"  incoming gy for {label}: {format_array(g)}")
            for label, g in zip(step.inputs, step.outgoing):
                lines.append(f"  outgoing gx for {label}: {format_array(g)}")
        return "\n".join(lines) + ("\n" if lines else "")

    def show_backpropagation(self, y: Variable, grad: Any = None, file: TextIO | None = None) -> list[BackwardStep]:
        """Run backward on ``y``, write a step-by-step report to ``file`` (stdout when None).

        Returns the steps, so a program (or a test) can look at them too.
        """
        check_variable(y, "StepByStepVisualizer.show_backpropagation")
        graph = collect(y)
        leaves = [v for v in graph.variables if v.creator is None and v.requires_grad]
        steps = self.trace_backward(y, grad)
        text = self.format_steps(steps)
        if not steps:
            text = f"{describe(y)} has no creator: backward has no step to take\n"
        else:
            text += "gradients left in the leaves:\n" + "".join(
                f"  {describe(v, graph)}: grad = {format_array(v.grad)}\n" for v in leaves)
        (sys.stdout if file is None else file).write(text)
        return steps
