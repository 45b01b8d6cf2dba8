"""The notebooks execute from top to bottom in a real Jupyter kernel."""
import os
import shutil
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "examples" / "notebooks"


def execute(name: str, replace: dict[str, str] | None = None):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    for old, new in (replace or {}).items():
        cells = [c for c in notebook.cells if c.cell_type == "code" and old in c.source]
        assert len(cells) == 1, f"{old!r} must appear in exactly one cell"
        cells[0].source = cells[0].source.replace(old, new)
    client = nbclient.NotebookClient(notebook, timeout=180, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
    return notebook


def outputs_text(notebook) -> str:
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            # A print may arrive in several stream messages: glue them back together.
            if output.get("output_type") != "stream":
                parts.append((None, output.get("data", {}).get("text/plain", "")))
            elif parts and parts[-1][0] == output["name"]:
                parts[-1] = (output["name"], parts[-1][1] + output["text"])
            else:
                parts.append((output["name"], output["text"]))
    return "\n".join(text for _, text in parts)


@pytest.fixture(autouse=True)
def kernel_finds_tinyai(monkeypatch):
    # The kernel is a new process: it must import this checkout's tinyai.
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def cell_with(notebook, code: str):
    cells = [c for c in notebook.cells if c.cell_type == "code" and code in c.source]
    assert len(cells) == 1, f"{code!r} must appear in exactly one cell"
    return cells[0]


def test_autograd_notebook_shows_first_and_second_derivatives():
    notebook = execute("01_autograd.ipynb")
    text = outputs_text(notebook)
    assert "f'(2)  = 24.0" in text and "f''(2) = 44.0" in text
    assert "second derivative of x^3 at 2: 12.0" in text
    assert "agrees with finite differences" in text
    # The graph shows itself as a picture, not as an object's repr.
    outputs = cell_with(notebook, "show_graph(y)").outputs
    if shutil.which("dot"):
        assert len(outputs) == 1 and "image/svg+xml" in outputs[0]["data"]
        assert "<svg" in outputs[0]["data"]["image/svg+xml"] and "Mul" in outputs[0]["data"]["image/svg+xml"]


def test_train_mnist_notebook_trains_and_plots():
    pytest.importorskip("ipywidgets", reason="the notebook's progress widget needs ipywidgets (dev extra)")
    notebook = execute("02_train_mnist.ipynb", {"SUBSET = None": "SUBSET = 1500", "EPOCHS = 3": "EPOCHS = 2"})
    text = outputs_text(notebook)
    accuracy = float(text.split("test accuracy after 2 epochs: ")[1].split()[0])
    assert accuracy > 0.6
    # One progress display for the whole train() call, and one plain-text line
    # per epoch: the lines are what a saved or exported notebook keeps.
    training = cell_with(notebook, "trainer.train()").outputs
    widgets = [o for o in training if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(widgets) == 1
    stdout = "".join(o.get("text", "") for o in training if o.get("name") == "stdout")
    assert [line[:10] for line in stdout.splitlines() if line.startswith("epoch")] == ["epoch 1/2:", "epoch 2/2:"]
    assert "test_accuracy" in stdout
    stderr = "".join(o.get("text", "") for c in notebook.cells for o in c.get("outputs", [])
                     if o.get("name") == "stderr")
    assert "TqdmWarning" not in stderr and "IProgress not found" not in stderr
    # monitor.plot() as the last line draws once.
    plot_outputs = cell_with(notebook, "trainer.monitor.plot()").outputs
    assert len(plot_outputs) == 1 and plot_outputs[0]["data"]["image/png"]
    assert "predicted:" in text and "true:" in text


def test_data_parallel_notebook_matches_single_thread_with_notebook_defined_model():
    # The model class lives in the notebook's __main__: worker processes must still get it.
    text = outputs_text(execute("03_data_parallel.ipynb"))
    assert "threads   vs single:" in text and "processes vs single:" in text
    assert text.count("workers=2") == 2  # neither run fell back to a single worker
    assert "auto would choose:" in text
