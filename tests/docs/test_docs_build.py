"""The documentation site builds with ``mkdocs build --strict``: broken links,
missing pages and API references that do not resolve all fail the build
(the build itself is the ``built_site`` fixture in conftest.py)."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_site_builds_strictly(built_site):
    index = (built_site / "index.html").read_text(encoding="utf-8")
    assert "Quick start" in index
    # mkdocstrings rendered the API reference from the docstrings.
    api = (built_site / "api" / "autograd" / "index.html").read_text(encoding="utf-8")
    assert "unchain_backward" in api and "create_graph" in api


def test_doctest_examples_become_code_fences():
    import importlib.util

    spec = importlib.util.spec_from_file_location("doctest_fences", ROOT / "docs" / "_ext" / "doctest_fences.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = "Intro.\n\n    >>> names()\n    ['W', 'b']\n\nAfter.\n```python\n>>> kept\n```"
    assert module.fence_doctests(text) == (
        "Intro.\n\n    ```pycon\n    >>> names()\n    ['W', 'b']\n    ```\n\nAfter.\n```python\n>>> kept\n```")
