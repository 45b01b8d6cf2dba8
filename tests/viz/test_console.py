"""The console visualizers on small graphs whose gradients are worked out by hand."""
import ast
import io
from pathlib import Path

import numpy as np
import pytest

import tinyai as ta
import tinyai.functions as F
from tinyai.viz import ComputationGraphVisualizer, StepByStepVisualizer
from viz_helpers import small_graph


def test_tree_of_a_small_graph():
    _, _, y = small_graph()
    stream = io.StringIO()
    text = ComputationGraphVisualizer().display(y, file=stream)
    assert stream.getvalue() == text
    assert text == (
        "v3 'y' (2,) float64 <- Mul\n"
        "  v2 (2,) float64 <- Add\n"
        "    v0 'x0' (2,) float64\n"
        "    v1 'x1' (2,) float64\n"
        "  v1 'x1' (2,) float64\n")


def test_display_defaults_to_stdout(capsys):
    _, _, y = small_graph()
    text = ComputationGraphVisualizer().display(y)
    assert capsys.readouterr().out == text


def test_shared_part_is_expanded_once():
    x = ta.Variable(np.array(0.5), name="x")
    a = x ** 2
    y = a * a  # Mul's two inputs are the same value
    lines = ComputationGraphVisualizer().render(y).splitlines()
    assert lines[0].endswith("<- Mul")
    assert lines[1].endswith("<- Pow") and not lines[1].endswith("(see above)")
    assert lines[-1].endswith("<- Pow  (see above)")
    assert sum("'x'" in line for line in lines) == 1  # x is listed under the first expansion only


def test_verbose_tree_shows_values():
    x0, x1, y = small_graph()
    y.backward(np.ones(2))
    text = ComputationGraphVisualizer(verbose=True).render(y)
    assert "v1 'x1' (2,) float64  data=[3., 4.] grad=[ 7., 10.]" in text


def test_deep_chain_does_not_recurse():
    x = ta.Variable(np.array(1.0), name="x")
    y = x
    for _ in range(3000):
        y = y + 1.0
    assert len(ComputationGraphVisualizer().render(y).splitlines()) == 1 + 2 * 3000


def test_steps_in_backward_order_with_hand_computed_gradients():
    x0, x1, y = small_graph()
    stream = io.StringIO()
    steps = StepByStepVisualizer().show_backpropagation(y, grad=np.array([1.0, -1.0]), file=stream)
    assert [s.function for s in steps] == ["Mul", "Add"]
    assert [s.generation for s in steps] == [1, 0]
    mul, add = steps
    # Mul(t, x1) with t = x0 + x1 = [4, 6]: gy * x1 for t, gy * t for x1.
    np.testing.assert_allclose(mul.incoming[0], [1.0, -1.0])
    np.testing.assert_allclose(mul.outgoing[0], [3.0, -4.0])
    np.testing.assert_allclose(mul.outgoing[1], [4.0, -6.0])
    # Add passes its gradient to both inputs unchanged.
    np.testing.assert_allclose(add.incoming[0], [3.0, -4.0])
    np.testing.assert_allclose(add.outgoing[0], [3.0, -4.0])
    np.testing.assert_allclose(add.outgoing[1], [3.0, -4.0])
    assert mul.inputs == ["v2 (2,) float64", "v1 'x1' (2,) float64"]
    # backward really ran: x1 collected both contributions, 4 + 3 and -6 - 4.
    np.testing.assert_allclose(x1.grad.data, [7.0, -10.0])
    np.testing.assert_allclose(x0.grad.data, [3.0, -4.0])
    report = stream.getvalue()
    assert report.index("step 1: Mul (generation 1)") < report.index("step 2: Add (generation 0)")
    assert "outgoing gx for v1 'x1' (2,) float64: [ 4., -6.]" in report
    assert "v1 'x1' (2,) float64: grad = [  7., -10.]" in report


def test_each_function_reported_once_after_all_its_gradients_arrived():
    # a = x^2 feeds Exp and Sin; Pow must run once, with the summed gradient.
    x = ta.Variable(np.array(0.7), name="x")
    a = x ** 2
    y = F.exp(a) + F.sin(a)
    steps = StepByStepVisualizer().trace_backward(y)
    names = [s.function for s in steps]
    assert names[0] == "Add" and names[-1] == "Pow" and sorted(names[1:3]) == ["Exp", "Sin"]
    np.testing.assert_allclose(steps[-1].incoming[0], np.exp(0.49) + np.cos(0.49))
    np.testing.assert_allclose(x.grad.data, (np.exp(0.49) + np.cos(0.49)) * 2 * 0.7)


def test_listening_leaves_no_trace_on_functions():
    _, _, y = small_graph()
    mul = y.creator
    StepByStepVisualizer().trace_backward(y, grad=np.ones(2))
    assert "backward" not in vars(mul)


def test_leaf_has_no_steps():
    stream = io.StringIO()
    assert StepByStepVisualizer().show_backpropagation(ta.Variable(np.array(2.0), name="w"), file=stream) == []
    assert "has no creator" in stream.getvalue()


def test_bad_argument():
    with pytest.raises(TypeError, match="ComputationGraphVisualizer.render: expected a Variable, got list"):
        ComputationGraphVisualizer().render([1.0])
    with pytest.raises(TypeError, match="StepByStepVisualizer.show_backpropagation: expected a Variable"):
        StepByStepVisualizer().show_backpropagation(3.0)


def test_viz_imports_only_backend_and_autograd():
    # viz is an aside layer: nothing above autograd may be imported from it.
    allowed = ("tinyai.backend", "tinyai.autograd", "tinyai.viz")
    for path in Path(ta.__file__).parent.joinpath("viz").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tinyai"):
                assert node.module.startswith(allowed), f"{path.name} imports {node.module}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("tinyai") or alias.name.startswith(allowed), path.name


def test_steps_hold_arrays_not_memoryviews():
    # backward hands Functions raw arrays; `.data` of a NumPy array is a
    # memoryview, which a learner cannot print or compare.
    _, _, y = small_graph()
    steps = StepByStepVisualizer().trace_backward(y, grad=np.array([1.0, -1.0]))
    gradients = [g for step in steps for g in step.incoming + step.outgoing if g is not None]
    assert len(gradients) == 6 and all(isinstance(g, np.ndarray) for g in gradients)
    np.testing.assert_allclose(steps[0].outgoing[1], [4.0, -6.0])
