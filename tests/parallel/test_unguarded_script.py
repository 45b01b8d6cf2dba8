"""A script without ``if __name__ == "__main__":`` runs its body once under every backend.

Worker processes start with 'spawn', and a spawned interpreter normally
imports the parent's script again, running every unguarded line. These tests
run real scripts in a subprocess and count how often their body starts.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

BODY = """
import logging
import numpy as np
import tinyai as ta
from tinyai import nn, optim
from tinyai.data import ArrayDataset
from tinyai.training import Trainer
{model_import}

logging.basicConfig(level=logging.WARNING, format="LOG %(levelname)s %(name)s %(message)s")
with open({counter!r}, "a") as f:
    f.write("started\\n")
ta.seed(0)
rng = np.random.default_rng(0)
x, y = rng.standard_normal((40, 6)).astype(np.float32), rng.standard_normal((40, 3)).astype(np.float32)
model = {model}
trainer = Trainer(1, progress=None, enable_parallel=True, thread_count=2, parallel_backend={backend!r})
trainer.init(ArrayDataset(x, y, batch_size=16), model, {loss}, optim.SGD(model, lr=0.1))
trainer.train()
print("TRAINED", trainer._parallel.chosen_backend)
trainer.shutdown()
"""

IMPORTED = dict(model_import="from tests.parallel.models import MeanSquared, TwoLayerNet",
                model="TwoLayerNet()", loss="MeanSquared()")
IN_SCRIPT = dict(model_import="""
import tinyai.functions as F

class ScriptNet(nn.Block):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(x)

class ScriptLoss:
    def loss(self, target, prediction):
        return F.mean_squared_error(prediction, target)
""", model="ScriptNet()", loss="ScriptLoss()")


def _run(tmp_path, backend, parts):
    counter = tmp_path / "starts.txt"
    script = tmp_path / f"unguarded_{backend}.py"
    script.write_text(BODY.format(counter=str(counter), backend=backend, **parts))
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    starts = counter.read_text().count("started") if counter.exists() else 0
    return result, starts


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["auto", "thread", "process"])
def test_an_unguarded_script_runs_its_body_once(tmp_path, backend):
    result, starts = _run(tmp_path, backend, IMPORTED)
    assert result.returncode == 0, result.stderr
    assert starts == 1, result.stderr
    assert "TRAINED" in result.stdout
    assert "bootstrapping" not in result.stderr


@pytest.mark.slow
def test_classes_in_an_unguarded_script_process_refuses_naming_the_guard_and_auto_uses_threads(tmp_path):
    result, starts = _run(tmp_path, "process", IN_SCRIPT)
    assert result.returncode != 0 and starts == 1
    assert "has no 'if __name__ == \"__main__\":' guard" in result.stderr
    assert "docs/data-parallel.md" in result.stderr

    (tmp_path / "starts.txt").unlink()
    result, starts = _run(tmp_path, "auto", IN_SCRIPT)
    assert result.returncode == 0, result.stderr
    assert starts == 1
    warnings = [line for line in result.stderr.splitlines() if line.startswith("LOG WARNING")]
    assert len(warnings) == 1 and "process backend could not start" in warnings[0] and "guard" in warnings[0]
    chosen = result.stdout.split("TRAINED")[1].strip()
    assert chosen in ("single", "thread")
