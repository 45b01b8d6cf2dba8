"""What a user installs: the distribution name, extras, licence, type marker,
version, and install hints that name the right distribution.

The name ``tinyai`` on the public package index belongs to an unrelated
package, so every hint must say ``tinyai-numpy`` (the import name stays ``tinyai``).
"""
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import tinyai

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]


def test_distribution_name_licence_and_version():
    assert PROJECT["name"] == "tinyai-numpy"
    assert PROJECT["version"] == tinyai.__version__
    # The licence as an SPDX expression (PEP 639), not the deprecated table.
    assert PROJECT["license"] == "MIT"
    assert PROJECT["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    assert (ROOT / "tinyai" / "py.typed").exists()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["tinyai"]


def test_light_extras_for_ci_and_notebooks():
    extras = PROJECT["optional-dependencies"]
    names = {extra: {re.split(r"[<>=\[ ]", requirement)[0] for requirement in requirements}
             for extra, requirements in extras.items()}
    assert names["testing"] == {"pytest", "hypothesis"}
    assert "ipywidgets" in names["notebook"] and "tqdm" in names["notebook"]
    assert "ipywidgets" in names["dev"]


HINT = re.compile(r"""pip install\s+(?:-\w+\s+)*['"]?tinyai(?!-numpy)\b""")


def test_no_install_hint_names_the_unrelated_tinyai_distribution():
    files = [ROOT / "README.md", ROOT / "Makefile"]
    for folder in ("tinyai", "docs", "examples", "benchmarks", "tests"):
        files += [p for p in (ROOT / folder).rglob("*") if p.suffix in {".py", ".md", ".ipynb", ".toml"}]
    wrong = []
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if HINT.search(line):
                wrong.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not wrong, "install hints must name tinyai-numpy:\n" + "\n".join(wrong)
    bad = "pip install 'tiny" + "ai[viz]'"   # split so this line does not match itself
    assert HINT.search(bad) and not HINT.search(bad.replace("tinyai", "tinyai-numpy"))


@pytest.mark.parametrize("command", [[sys.executable, "-m", "tinyai", "--version"]])
def test_version_option(command):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"tinyai {PROJECT['version']}"
