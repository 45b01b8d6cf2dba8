"""A griffe extension for the API reference: show doctest examples as code.

tinyai's docstrings carry ``>>>`` examples, which Python's doctest reads
but Markdown does not: rendered as text, an output line such as
``['W', 'b']`` looks like a Markdown reference link and the strict build
fails on it. This extension wraps each run of doctest lines (the ``>>>``
and ``...`` lines plus their expected output, up to the next blank line) in
a ```` ```pycon ```` fence before mkdocstrings renders the docstring.

Loaded by mkdocs.yml (``extensions: [docs/_ext/doctest_fences.py]``); it is
part of the documentation build, not of the tinyai package.
"""
from __future__ import annotations

from typing import Any

import griffe

_SECTION_WITH_OWN_PARSER = "Examples:"  # griffe already treats >>> inside it as code


def fence_doctests(text: str) -> str:
    """``text`` with every doctest run outside a fence wrapped in a pycon fence."""
    lines = text.splitlines()
    out: list[str] = []
    in_fence = False
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith("```"):
            in_fence = not in_fence
        if in_fence or not stripped.startswith(">>>"):
            out.append(line)
            i += 1
            continue
        indent = line[: len(line) - len(line.lstrip())]
        out.append(f"{indent}```pycon")
        while i < len(lines) and lines[i].strip():
            out.append(lines[i])
            i += 1
        out.append(f"{indent}```")
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    """Wrap doctest examples of every docstring in code fences."""

    def on_instance(self, *, obj: Any, **kwargs: Any) -> None:
        docstring = getattr(obj, "docstring", None)
        if docstring is None or ">>>" not in docstring.value:
            return
        if _SECTION_WITH_OWN_PARSER in docstring.value:
            return
        docstring.value = fence_doctests(docstring.value)
