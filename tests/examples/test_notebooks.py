"""The notebooks execute from top to bottom in a real Jupyter kernel."""
import os
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
            parts.append(output.get("text", ""))
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


@pytest.fixture(autouse=True)
def kernel_finds_tinyai(monkeypatch):
    # The kernel is a new process: it must import this checkout's tinyai.
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def test_autograd_notebook_shows_first_and_second_derivatives():
    text = outputs_text(execute("01_autograd.ipynb"))
    assert "f'(2)  = 24.0" in text and "f''(2) = 44.0" in text
    assert "second derivative of x^3 at 2: 12.0" in text
    assert "agrees with finite differences" in text


def test_train_mnist_notebook_trains_and_plots():
    notebook = execute("02_train_mnist.ipynb", {"SUBSET = None": "SUBSET = 1500", "EPOCHS = 3": "EPOCHS = 2"})
    text = outputs_text(notebook)
    accuracy = float(text.split("test accuracy after 2 epochs: ")[1].split()[0])
    assert accuracy > 0.6
    images = [o for c in notebook.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert images, "the Monitor.plot cell produced no image"
    assert "predicted:" in text and "true:" in text


def test_data_parallel_notebook_matches_single_thread_with_notebook_defined_model():
    # The model class lives in the notebook's __main__: worker processes must still get it.
    text = outputs_text(execute("03_data_parallel.ipynb"))
    assert "threads   vs single:" in text and "processes vs single:" in text
    assert text.count("workers=2") == 2  # neither run fell back to a single worker
    assert "auto would choose:" in text
