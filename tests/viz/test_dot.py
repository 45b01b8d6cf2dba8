"""DOT output of tinyai.viz, checked by parsing the nodes and edges it writes."""
import re
import shutil
import subprocess

import numpy as np
import pytest

import tinyai as ta
import tinyai.functions as F
from tinyai.viz import dot as dot_module
from tinyai.viz import get_dot_graph, plot_dot_graph, show_graph
from viz_helpers import small_graph

NODE = re.compile(r'^\s*(\w+) \[label="((?:[^"\\]|\\.)*)", shape=(\w+)')
EDGE = re.compile(r"^\s*(\w+) -> (\w+);$")
HAVE_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAVE_DOT, reason="Graphviz's `dot` is not installed (apt-get install graphviz)")


def parse(text):
    """{id: (label, shape)} and the list of edges of a DOT text."""
    nodes, edges = {}, []
    for line in text.splitlines():
        if (m := NODE.match(line)):
            nodes[m.group(1)] = (m.group(2).replace("\\n", "\n"), m.group(3))
        elif (m := EDGE.match(line)):
            edges.append((m.group(1), m.group(2)))
    return nodes, edges


def test_small_graph_nodes_edges_and_labels():
    _, _, y = small_graph()
    text = get_dot_graph(y)
    assert text.startswith("digraph") and text.rstrip().endswith("}")
    nodes, edges = parse(text)
    variables = {k: v for k, v in nodes.items() if v[1] == "ellipse"}
    functions = {k: v for k, v in nodes.items() if v[1] == "box"}
    assert len(variables) == 4 and len(functions) == 2
    # Forward order: the inputs first, the intermediate sum, then the result.
    assert variables["v0"][0] == "x0\n(2,) float64"
    assert variables["v1"][0] == "x1\n(2,) float64"
    assert variables["v2"][0] == "(2,) float64"
    assert variables["v3"][0] == "y\n(2,) float64"
    assert functions == {"f0": ("Add", "box"), "f1": ("Mul", "box")}
    assert sorted(edges) == sorted([("v0", "f0"), ("v1", "f0"), ("f0", "v2"),
                                    ("v2", "f1"), ("v1", "f1"), ("f1", "v3")])


def test_same_program_gives_same_text():
    # Node ids come from the graph's shape, not from id(): two runs agree.
    assert get_dot_graph(small_graph()[2]) == get_dot_graph(small_graph()[2])


def test_shared_subgraph_appears_once():
    x = ta.Variable(np.array(0.5), name="x")
    a = x ** 2
    y = F.exp(a) + F.sin(a)
    nodes, edges = parse(get_dot_graph(y))
    names = sorted(label for label, shape in nodes.values() if shape == "box")
    assert names == ["Add", "Exp", "Pow", "Sin"]
    # 'a' has one node and two outgoing edges (to Exp and to Sin).
    a_id = [k for k, (label, shape) in nodes.items() if shape == "ellipse" and k != "v0"][0]
    assert a_id == "v1"
    assert sum(1 for src, _ in edges if src == a_id) == 2


def test_verbose_shows_values_and_gradients():
    x0, x1, y = small_graph()
    y.backward(np.array([1.0, 1.0]))
    nodes, _ = parse(get_dot_graph(y, verbose=True))
    label = nodes["v1"][0]
    assert "data [3., 4.]" in label
    # d/dx1 of (x0 + x1) * x1 = x0 + 2 x1 = [7, 10]
    assert "grad [ 7., 10.]" in label
    assert "grad None" in nodes["v2"][0]  # intermediate gradients are dropped by default
    assert "data" not in get_dot_graph(y)  # and only shown when asked


def test_names_are_escaped():
    x = ta.Variable(np.array(1.0), name='say "hi" \\ there')
    nodes, _ = parse(get_dot_graph(F.exp(x)))
    assert nodes["v0"][0].startswith('say \\"hi\\" \\\\ there')


def test_freed_outputs_are_left_out():
    class Halves(ta.Function):
        def forward(self, x):
            return x[:1].copy(), x[1:].copy()

        def backward(self, g0, g1):
            return F.concat([g0, g1])

    x = ta.Variable(np.array([1.0, 2.0]), name="x")
    first = Halves()(x)[0]  # the second output is dropped at once
    nodes, edges = parse(get_dot_graph(first))
    assert [k for k, (_, shape) in nodes.items() if shape == "ellipse"] == ["v0", "v1"]
    assert sorted(edges) == [("f0", "v1"), ("v0", "f0")]


def test_leaf_without_history():
    x = ta.Variable(np.zeros((2, 3), dtype=np.float32), name="w")
    nodes, edges = parse(get_dot_graph(x))
    assert nodes == {"v0": ("w\n(2, 3) float32", "ellipse")} and edges == []


def test_bad_arguments():
    with pytest.raises(TypeError, match="get_dot_graph: expected a Variable, got ndarray"):
        get_dot_graph(np.zeros(2))
    with pytest.raises(ValueError, match="get_dot_graph: rankdir must be one of"):
        get_dot_graph(ta.Variable(1.0), rankdir="up")
    with pytest.raises(ValueError, match=r"plot_dot_graph: cannot tell the image format from 'graph.bmpx'"):
        plot_dot_graph(ta.Variable(1.0), "graph.bmpx")


def test_dot_file_needs_no_graphviz(tmp_path, monkeypatch):
    monkeypatch.setattr(dot_module.shutil, "which", lambda name: None)
    path = plot_dot_graph(small_graph()[2], tmp_path / "g.dot")
    assert path.read_text() == get_dot_graph(small_graph()[2])


def test_missing_graphviz_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(dot_module.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="plot_dot_graph: Graphviz's `dot` program was not found.*apt-get install graphviz"):
        plot_dot_graph(small_graph()[2], tmp_path / "g.png")
    assert not (tmp_path / "g.png").exists()


def test_dot_is_called_with_an_argument_list(tmp_path, monkeypatch):
    calls = []

    def fake_run(args, **kwargs):
        calls.append((args, kwargs))
        return subprocess.CompletedProcess(args, 0, stdout=b"\x89PNG\r\n\x1a\nfake", stderr=b"")

    monkeypatch.setattr(dot_module.shutil, "which", lambda name: "/usr/bin/dot")
    monkeypatch.setattr(dot_module.subprocess, "run", fake_run)
    plot_dot_graph(small_graph()[2], tmp_path / "g.png")
    (args, kwargs), = calls
    assert args == ["/usr/bin/dot", "-Tpng"]
    assert not kwargs.get("shell", False)
    assert kwargs["input"].decode().startswith("digraph")


def test_dot_failure_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(dot_module.shutil, "which", lambda name: "/usr/bin/dot")
    monkeypatch.setattr(dot_module.subprocess, "run",
                        lambda args, **kw: subprocess.CompletedProcess(args, 1, stdout=b"", stderr=b"syntax error"))
    with pytest.raises(RuntimeError, match="`dot -Tpng` failed with exit status 1: syntax error"):
        plot_dot_graph(small_graph()[2], tmp_path / "g.png")
    assert list(tmp_path.iterdir()) == []


@needs_dot
def test_renders_a_real_png(tmp_path):
    path = plot_dot_graph(small_graph()[2], tmp_path / "graph.png", verbose=True)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 50 and height > 20  # a picture, not an empty canvas


@needs_dot
def test_jupyter_view_renders_svg():
    view = show_graph(small_graph()[2])
    svg = view._repr_svg_()
    assert "<svg" in svg and ">Mul<" in svg and ">Add<" in svg


@needs_dot
def test_jupyter_view_also_renders_png_and_show_writes_a_file_outside_jupyter():
    view = show_graph(small_graph()[2])
    assert view._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"
    path = view.show()
    try:
        assert "<svg" in path.read_text(encoding="utf-8")
    finally:
        path.unlink()


def test_jupyter_view_without_graphviz_falls_back_to_text(monkeypatch, caplog):
    monkeypatch.setattr(dot_module.shutil, "which", lambda name: None)
    view = show_graph(small_graph()[2])
    with caplog.at_level("WARNING"):
        assert view._repr_svg_() is None
    assert "install Graphviz" in caplog.text
    assert repr(view).startswith("digraph")


def test_variable_gets_no_display_hook():
    # Drawing is opt-in through show_graph: plain Variables carry no extra cost.
    assert not hasattr(ta.Variable, "_repr_svg_")
