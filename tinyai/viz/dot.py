"""The computation graph as a Graphviz DOT picture.

``get_dot_graph(y)`` turns the graph behind ``y`` into DOT text: one oval per
Variable (its name, shape and dtype; with ``verbose`` also its value and
gradient), one box per Function, and arrows in the direction the data flowed.
``plot_dot_graph(y, "graph.png")`` hands that text to Graphviz's ``dot``
program, and ``show_graph(y)`` wraps it so a Jupyter notebook draws it inline.

Node ids are ``v0, v1, ...`` and ``f0, f1, ...`` in forward order, so the same
program gives the same DOT text on every run (handy for diffs and tests).
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tinyai.autograd import Variable
from tinyai.backend.files import publish
from tinyai.viz._graph import Graph, check_variable, collect, format_array

logger = logging.getLogger(__name__)

INSTALL_GRAPHVIZ = (
    "Graphviz's `dot` program was not found on PATH; install Graphviz to draw graphs: "
    "`sudo apt-get install graphviz` (Debian/Ubuntu), `brew install graphviz` (macOS), "
    "`conda install graphviz`, or see https://graphviz.org/download/ "
    "(get_dot_graph works without it and returns the DOT text)")

_FORMATS = {"png", "svg", "pdf", "jpg", "jpeg", "gif", "ps", "dot"}


def _quote(text: str) -> str:
    """A DOT string literal: quotes and backslashes escaped, newlines as DOT's centred line break."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n") + '"'


def _variable_label(v: Variable, verbose: bool) -> str:
    lines = []
    if v.name is not None:
        lines.append(str(v.name))
    lines.append(f"{tuple(v.shape)} {v.dtype}")
    if verbose:
        lines.append(f"data {format_array(v.data)}")
        lines.append(f"grad {format_array(v.grad)}")
    return "\n".join(lines)


def _graph_to_dot(graph: Graph, output: Variable, verbose: bool, rankdir: str) -> str:
    out = ["digraph tinyai {",
           f"  rankdir={rankdir};",
           '  node [fontname="Helvetica", fontsize=11];']
    for v in graph.variables:
        # Leaves the user created are the ones whose gradient they read: colour them apart.
        colour = "#fde7c8" if v is output else ("#dbe9f6" if v.creator is None else "#eeeeee")
        out.append(f"  {graph.var_id(v)} [label={_quote(_variable_label(v, verbose))}, shape=ellipse, "
                   f'style=filled, fillcolor="{colour}"];')
    for f in graph.functions:
        out.append(f"  {graph.fn_id(f)} [label={_quote(type(f).__name__)}, shape=box, "
                   'style=filled, fillcolor="#c9e7c0"];')
    for f in graph.functions:
        fid = graph.fn_id(f)
        for x in f.inputs:
            out.append(f"  {graph.var_id(x)} -> {fid};")
        for y in graph.outputs_of(f):
            out.append(f"  {fid} -> {graph.var_id(y)};")
    out.append("}")
    return "\n".join(out) + "\n"


def get_dot_graph(y: Variable, verbose: bool = False, rankdir: str = "LR") -> str:
    """The graph that computed ``y``, as Graphviz DOT text.

    Args:
        y: the result whose history is drawn.
        verbose: also show each Variable's value and gradient (arrays are
            shortened to a few numbers and their range).
        rankdir: the direction of the arrows: ``"LR"`` (left to right) or
            ``"TB"`` (top to bottom).

    Returns:
        DOT text with one node per Variable (``v0``, ``v1``, ... in the order
        they were computed; label: name, shape, dtype), one node per Function
        (``f0``, ``f1``, ...; label: its class name) and an edge from every
        input to its Function and from every Function to its outputs.

    >>> import tinyai as ta
    >>> x = ta.Variable([1.0, 2.0], name="x")
    >>> print(get_dot_graph(x * x).count("->"))
    3
    """
    check_variable(y, "get_dot_graph")
    if rankdir not in ("LR", "TB", "RL", "BT"):
        raise ValueError(f"get_dot_graph: rankdir must be one of LR, TB, RL, BT, got {rankdir!r}")
    return _graph_to_dot(collect(y), y, verbose, rankdir)


def _run_dot(dot_text: str, fmt: str, where: str) -> bytes:
    """Render DOT text with Graphviz; returns the bytes of the picture."""
    executable = shutil.which("dot")
    if executable is None:
        raise RuntimeError(f"{where}: {INSTALL_GRAPHVIZ}")
    # An argument list, never a shell: nothing in a label can be run as a command.
    result = subprocess.run([executable, f"-T{fmt}"], input=dot_text.encode("utf-8"),
                            capture_output=True, check=False, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"{where}: Graphviz `dot -T{fmt}` failed with exit status {result.returncode}: "
                           f"{result.stderr.decode('utf-8', 'replace').strip()}")
    return result.stdout


def plot_dot_graph(y: Variable, to_file: str | os.PathLike, verbose: bool = False, rankdir: str = "LR") -> Path:
    """Draw the graph behind ``y`` into an image file with Graphviz's ``dot``.

    The format comes from the file's extension (``.png``, ``.svg``, ``.pdf``,
    ...; ``.dot`` writes the DOT text itself and needs no Graphviz).

    Returns:
        The path written.

    Raises:
        RuntimeError: when Graphviz is not installed (the message says how to
            install it) or ``dot`` fails.
        ValueError: for an extension Graphviz is not asked to write.
    """
    path = Path(to_file)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in _FORMATS:
        raise ValueError(f"plot_dot_graph: cannot tell the image format from {str(path)!r}; "
                         f"use one of the extensions {', '.join(sorted(_FORMATS))}")
    text = get_dot_graph(y, verbose=verbose, rankdir=rankdir)
    if fmt == "dot":
        path.write_text(text, encoding="utf-8")
        return path
    picture = _run_dot(text, fmt, "plot_dot_graph")
    # Write to a sibling temporary file first so a failure never leaves half a picture.
    with tempfile.NamedTemporaryFile(dir=path.parent or ".", prefix=".tinyai-graph-", delete=False) as tmp:
        tmp.write(picture)
    publish(tmp.name, path)
    return path


class GraphView:
    """A drawn computation graph that Jupyter shows inline as SVG.

    Made by :func:`show_graph`. The DOT text is built once, when the view is
    made (so later changes to the graph do not alter it); the SVG is rendered
    the first time a notebook asks for it.

    Attributes:
        source: the DOT text.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self._svg: str | None = None

    def svg(self) -> str:
        """The picture as SVG text (runs Graphviz once, then remembers it)."""
        if self._svg is None:
            self._svg = _run_dot(self.source, "svg", "show_graph").decode("utf-8")
        return self._svg

    def _repr_svg_(self) -> str | None:
        # Jupyter calls this; returning None makes it fall back to the text repr
        # instead of showing a traceback when Graphviz is missing.
        try:
            return self.svg()
        except RuntimeError as exc:
            logger.warning("%s", exc)
            return None

    def _repr_png_(self) -> bytes | None:
        # Front ends that do not take SVG (some exporters) use this one.
        try:
            return _run_dot(self.source, "png", "show_graph")
        except RuntimeError as exc:
            logger.warning("%s", exc)
            return None

    def show(self) -> Path | None:
        """Display the picture inline in Jupyter; elsewhere write it as SVG to a
        temporary file and return its path (there is no window to open)."""
        shell = sys.modules.get("IPython")
        if shell is not None and getattr(shell, "get_ipython", lambda: None)() is not None:
            from IPython.display import SVG, display  # noqa: PLC0415 - only inside IPython

            display(SVG(self.svg()))
            return None
        with tempfile.NamedTemporaryFile("w", suffix=".svg", prefix="tinyai-graph-", delete=False,
                                         encoding="utf-8") as file:
            file.write(self.svg())
        logger.info("GraphView.show: not in Jupyter; the graph was written to %s", file.name)
        return Path(file.name)

    def save(self, to_file: str | os.PathLike) -> Path:
        """Write the picture; the format comes from the extension (as in plot_dot_graph)."""
        path = Path(to_file)
        fmt = path.suffix.lstrip(".").lower()
        if fmt not in _FORMATS:
            raise ValueError(f"GraphView.save: cannot tell the image format from {str(path)!r}; "
                             f"use one of the extensions {', '.join(sorted(_FORMATS))}")
        if fmt == "dot":
            path.write_text(self.source, encoding="utf-8")
        else:
            path.write_bytes(_run_dot(self.source, fmt, "GraphView.save"))
        return path

    def __repr__(self) -> str:
        return self.source


def show_graph(y: Variable, verbose: bool = False, rankdir: str = "LR") -> GraphView:
    """The graph behind ``y`` as an object a Jupyter notebook displays inline (SVG).

    Put ``show_graph(loss)`` last in a cell to see the picture; outside a
    notebook, ``repr`` gives the DOT text and ``.save("graph.svg")`` writes a
    file. Nothing is added to Variable itself, so ordinary code pays nothing
    for this.
    """
    return GraphView(get_dot_graph(y, verbose=verbose, rankdir=rankdir))
