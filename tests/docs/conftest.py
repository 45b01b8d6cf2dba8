"""The documentation site, built once per test session for the tests that read it."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def built_site(tmp_path_factory):
    """``mkdocs build --strict`` into a temporary directory (not --quiet: it hides the
    warnings that strict mode counts); the directory, or a
    skip when the docs tools are not installed."""
    for module in ("mkdocs", "material", "mkdocstrings", "matplotlib"):
        pytest.importorskip(module, reason=f"{module} is not installed (pip install 'tinyai-numpy[dev]')")
    if shutil.which("dot") is None:
        # The build draws the lessons' graphs with Graphviz and fails without it (on purpose).
        pytest.skip("Graphviz's `dot` is not installed (apt-get install graphviz); the site's graphs need it")
    site = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    return site
