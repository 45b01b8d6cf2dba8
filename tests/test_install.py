"""A fresh virtual environment, ``pip install .`` and the README's first command
run from another directory: the wheel carries the package, the bundled MNIST
files and the console script (nothing is read from the source tree)."""
import os
import re
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_pip_install_into_a_fresh_venv_then_train_from_elsewhere(tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    # This interpreter's pip installs into the new environment (pip >= 22.3).
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", str(ROOT)],
                             capture_output=True, text=True, env=env, timeout=300)
    if install.returncode and "no such option: --python" in install.stderr:
        pytest.skip("this pip cannot install into another environment (needs pip >= 22.3)")
    assert install.returncode == 0, install.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    tinyai = env_dir / "bin" / "tinyai"
    version = subprocess.run([str(tinyai), "--version"], capture_output=True, text=True, cwd=elsewhere, env=env)
    assert version.returncode == 0 and version.stdout.startswith("tinyai "), version.stderr
    run = subprocess.run([str(tinyai), "train", "--example", "mnist-mlp", "--epochs", "1", "--limit", "2000",
                          "--no-progress"], capture_output=True, text=True, cwd=elsewhere, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    accuracy = float(re.search(r"final test accuracy: ([\d.]+)%", run.stdout).group(1))
    assert accuracy > 50.0          # 2,000 images, one epoch: ~74%; chance is 10%
    # The installed copy ran, not this checkout.
    where = subprocess.run([str(python), "-c", "import tinyai; print(tinyai.__file__)"], capture_output=True,
                           text=True, cwd=elsewhere, env=env)
    assert str(env_dir) in where.stdout and str(ROOT) not in where.stdout
