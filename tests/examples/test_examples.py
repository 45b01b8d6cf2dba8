"""The example scripts run (quick mode) as a user would run them, and report sensible results."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_example(name: str, *args: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               MPLBACKEND="Agg")
    result = subprocess.run([sys.executable, str(ROOT / "examples" / name), *args], capture_output=True,
                            text=True, env=env, timeout=240, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def number_after(label: str, text: str) -> float:
    match = re.search(re.escape(label) + r"\s*([-+0-9.eE]+)", text)
    assert match, f"{label!r} not in output:\n{text}"
    return float(match.group(1))


def test_mnist_mlp_quick(tmp_path):
    out = run_example("mnist_mlp.py", "--quick", "--plot", str(tmp_path / "c.png"))
    assert "mnist-mlp" in out and "109386" in out.replace(",", "")      # the summary's parameter count
    assert number_after("test accuracy:", out) > 0.6                     # 800 training images, 2 epochs; chance is 0.1
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_mnist_cnn_quick():
    out = run_example("mnist_cnn.py", "--quick")
    assert number_after("test accuracy:", out) > 0.3                     # 320 training images, 1 epoch


def test_spiral_quick():
    out = run_example("spiral.py", "--quick")
    assert "classes of (0, 0) and (0.9, 0.1):" in out
    losses = [float(v) for v in re.findall(r"epoch +\d+: loss ([0-9.]+)", out)]
    assert len(losses) >= 2 and losses[-1] < losses[0]
    assert 0.0 <= number_after("test accuracy:", out) <= 1.0


def test_sin_lstm_quick():
    out = run_example("sin_lstm.py", "--quick")
    # Predicting 0 everywhere would give the variance of sin, about 0.5.
    assert number_after("test loss:", out) < 0.1
    assert number_after("predicted next value", out) == pytest.approx(0.909, abs=0.4)
