"""Walking the graph behind a Variable, with stable names for its nodes.

Every picture of the graph (DOT, the console tree) needs the same thing: the
Functions that produced a value, the Variables between them, and a name for
each node that does not change from run to run. ``id()`` would do as a key but
not as a name: it differs every run, so a picture could not be compared with
the one from yesterday. Nodes are therefore numbered in *forward* order
(``v0``, ``v1``, ... for Variables, ``f0``, ``f1``, ... for Functions), so the
inputs a reader typed come first and the result comes last.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinyai.autograd import Variable
from tinyai.backend import to_cpu


@dataclass
class Graph:
    """The nodes of a computation graph in forward order.

    Attributes:
        functions: every Function behind the output, earliest first.
        variables: every Variable still alive in the graph, earliest first.
        var_ids: ``id(variable) -> "v<k>"``.
        fn_ids: ``id(function) -> "f<k>"``.
    """

    functions: list = field(default_factory=list)
    variables: list[Variable] = field(default_factory=list)
    var_ids: dict[int, str] = field(default_factory=dict)
    fn_ids: dict[int, str] = field(default_factory=dict)

    def var_id(self, v: Variable) -> str:
        return self.var_ids[id(v)]

    def fn_id(self, f: Any) -> str:
        return self.fn_ids[id(f)]

    def outputs_of(self, function: Any) -> list[Variable]:
        """The outputs of ``function`` that are still alive (outputs are weak references)."""
        return [y for ref in function.outputs if (y := ref()) is not None]


def check_variable(y: Any, where: str) -> Variable:
    """``y`` itself when it is a Variable; otherwise a TypeError naming ``where``."""
    if not isinstance(y, Variable):
        raise TypeError(f"{where}: expected a Variable, got {type(y).__name__}")
    return y


def collect(y: Variable) -> Graph:
    """Find every Function and Variable that ``y`` was computed from.

    The walk is iterative (deep graphs do not hit the recursion limit) and
    visits each Function once however many paths lead to it.
    """
    found: dict[int, tuple[int, Any]] = {}   # id(function) -> (discovery order, function)
    stack = [y.creator] if y.creator is not None else []
    while stack:
        function = stack.pop()
        if id(function) in found:
            continue
        found[id(function)] = (len(found), function)
        for x in function.inputs:
            if x.creator is not None and id(x.creator) not in found:
                stack.append(x.creator)

    # Forward order: by generation, ties broken by discovery so the order is
    # the same on every run for the same program.
    functions = [f for _, f in sorted(found.values(), key=lambda pair: (pair[1].generation, -pair[0]))]
    graph = Graph(functions=functions)

    def add_variable(v: Variable) -> None:
        if id(v) not in graph.var_ids:
            graph.var_ids[id(v)] = f"v{len(graph.variables)}"
            graph.variables.append(v)

    for k, function in enumerate(functions):
        graph.fn_ids[id(function)] = f"f{k}"
        for x in function.inputs:
            add_variable(x)
        for out in graph.outputs_of(function):
            add_variable(out)
    add_variable(y)
    return graph


def format_array(data: Any, max_items: int = 6, precision: int = 4) -> str:
    """A short one-line text for an array: all of it when small, a summary when large."""
    if data is None:
        return "None"
    array = to_cpu(data.data if isinstance(data, Variable) else data)
    if array.size <= max_items:
        return np.array2string(np.asarray(array), precision=precision, separator=", ",
                               suppress_small=True).replace("\n", "")
    flat = np.asarray(array).ravel()
    head = ", ".join(np.format_float_positional(float(v), precision=precision, trim="-") for v in flat[:3])
    return f"[{head}, ...] (min {float(flat.min()):.{precision}g}, max {float(flat.max()):.{precision}g})"


def describe(v: Variable, graph: Graph | None = None) -> str:
    """``v3 'y' (2,) float64``: id (when a graph is given), name, shape and dtype."""
    parts = []
    if graph is not None:
        parts.append(graph.var_id(v))
    if v.name is not None:
        parts.append(repr(v.name))
    parts.append(f"{tuple(v.shape)} {v.dtype}")
    return " ".join(parts)
