"""Every ```python block in docs/*.md and README.md runs, so the documentation cannot drift from the code.

Blocks of one page run in order in one namespace (a page is one lesson), in a
temporary directory (pages may write files). A block may be left out only by
starting it with a comment ``# no-run: <reason>``; the reason is required.
"""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("**/*.md")) + [ROOT / "README.md"]
IDS = [str(p.relative_to(ROOT)) for p in PAGES]
FENCE = re.compile(r"^(?P<indent>[ ]*)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ ]*$", re.M | re.S)
NO_RUN = re.compile(r"#\s*no-run:\s*(?P<reason>\S.*)")
KNOWN_LANGUAGES = {"python", "bash", "text", "console", "dot", "toml", "yaml", "java"}


def python_blocks(text):
    """(line number, code) of every python block, no-run blocks left out."""
    blocks = []
    for match in FENCE.finditer(text):
        if match.group("info").strip() != "python":
            continue
        body = match.group("body")
        first = body.lstrip().splitlines()[0] if body.strip() else ""
        if first.startswith("# no-run"):
            assert NO_RUN.match(first), f"a no-run block must say why: {first!r}"
            continue
        line = text.count("\n", 0, match.start()) + 2
        blocks.append((line, body))
    return blocks


def test_pages_found():
    assert (DOCS / "index.md") in PAGES and len(PAGES) >= 5


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_fences_are_plain(page):
    # An info string such as "python no-run" is not a fence MkDocs understands:
    # the block would render as text and silently stop being tested.
    for match in FENCE.finditer(page.read_text(encoding="utf-8")):
        info = match.group("info").strip()
        assert info in KNOWN_LANGUAGES, f"{page.name}: unexpected code fence info string {info!r}"


# A RuntimeWarning (overflow, invalid value) in a page's code is a bug in the example or in the library:
# a reader copying the code would see it and not know whether to worry.
@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_python_blocks_run(page, tmp_path, monkeypatch):
    from tinyai.backend import get_state, set_state

    monkeypatch.chdir(tmp_path)
    rng_state = get_state()  # pages may call ta.seed(); leave the suite's RNG as it was
    namespace = {"__name__": f"docs_{page.stem.replace('-', '_')}"}
    try:
        for line, code in python_blocks(page.read_text(encoding="utf-8")):
            try:
                exec(compile(code, f"{page.relative_to(ROOT)}:{line}", "exec"), namespace)  # noqa: S102 - our docs
            except Exception as exc:
                pytest.fail(f"{page.relative_to(ROOT)}, code block at line {line} failed: "
                            f"{type(exc).__name__}: {exc}")
    finally:
        set_state(rng_state)


def test_runner_sees_blocks_and_requires_a_reason():
    text = "x\n```python\na = 1\n```\n\n```python\n# no-run: needs a GPU\nb = 2\n```\n```bash\nls\n```\n"
    assert python_blocks(text) == [(3, "a = 1\n")]  # line 3: the first line of code
    with pytest.raises(AssertionError, match="must say why"):
        python_blocks("```python\n# no-run\nc = 3\n```\n")
