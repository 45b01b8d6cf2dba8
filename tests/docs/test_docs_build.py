"""The documentation site builds with ``mkdocs build --strict``: broken links,
missing pages and API references that do not resolve all fail the build."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install 'tinyai[docs]')")
pytest.importorskip("material", reason="mkdocs-material is not installed (pip install 'tinyai[docs]')")
pytest.importorskip("mkdocstrings", reason="mkdocstrings is not installed (pip install 'tinyai[docs]')")


def test_site_builds_strictly(tmp_path):
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(site)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    index = (site / "index.html").read_text(encoding="utf-8")
    assert "Quick start" in index
    # mkdocstrings rendered the API reference from the docstrings.
    api = (site / "api" / "autograd" / "index.html").read_text(encoding="utf-8")
    assert "unchain_backward" in api and "create_graph" in api


def test_doctest_examples_become_code_fences():
    import importlib.util

    spec = importlib.util.spec_from_file_location("doctest_fences", ROOT / "docs" / "_ext" / "doctest_fences.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = "Intro.\n\n    >>> names()\n    ['W', 'b']\n\nAfter.\n```python\n>>> kept\n```"
    assert module.fence_doctests(text) == (
        "Intro.\n\n    ```pycon\n    >>> names()\n    ['W', 'b']\n    ```\n\nAfter.\n```python\n>>> kept\n```")
