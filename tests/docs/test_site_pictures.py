"""The built site shows pictures made from real runs, and reads offline.

Every lesson page (the "Learn" section of mkdocs.yml) has at least one
picture, drawn by docs/_ext/pictures.py while the site was built; nothing
in the site is fetched from the network.
"""
import importlib.util
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def lesson_pages():
    """The Markdown files of the Learn section, from mkdocs.yml's nav."""
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = yaml.load(text, Loader=yaml.BaseLoader)["nav"]     # BaseLoader: mkdocs.yml's !!python tags stay text
    learn = next(entry["Learn"] for entry in nav if isinstance(entry, dict) and "Learn" in entry)
    return [page for entry in learn for page in entry.values()]


def test_every_lesson_page_has_a_picture_made_at_build_time(built_site):
    pages = lesson_pages()
    assert len(pages) >= 8
    missing = []
    for page in pages:
        html_path = built_site / Path(page).with_suffix("") / "index.html"
        html = html_path.read_text(encoding="utf-8")
        sources = re.findall(r'<img src="((?:\.\./)*pictures/[^"]+)"', html)
        if not sources:
            missing.append(page)
        for source in sources:
            picture = (html_path.parent / source).resolve()
            data = picture.read_bytes()
            assert len(data) > 1000, f"{page}: {source} is nearly empty"
            assert data.lstrip()[:5] in (b"<?xml", b"<svg ") or data[:8] == b"\x89PNG\r\n\x1a\n", source
    assert not missing, f"lesson pages without a picture: {missing}"


def test_graph_pictures_show_the_page_example(built_site):
    # The first picture of "Autograd from scratch" is the graph of d = a * b + a.
    html = (built_site / "autograd" / "index.html").read_text(encoding="utf-8")
    first = re.search(r'<img src="\.\./(pictures/[^"]+\.svg)"', html).group(1)
    svg = (built_site / first).read_text(encoding="utf-8")
    assert ">Mul<" in svg and ">Add<" in svg and ">a<" in svg and ">b<" in svg


def test_the_site_asks_nothing_from_the_network(built_site):
    remote = re.compile(r"""<(?:link|script|img)\b[^>]*\b(?:href|src)=["'](?:https?:)?//""", re.I)
    offenders = [str(path.relative_to(built_site)) for path in built_site.rglob("*.html")
                 if remote.search(path.read_text(encoding="utf-8"))]
    assert not offenders, f"pages that load something from the network: {offenders[:5]}"
    css = "".join(path.read_text(encoding="utf-8") for path in built_site.rglob("*.css"))
    assert "fonts.googleapis" not in css and "fonts.gstatic" not in css


def load_hook():
    spec = importlib.util.spec_from_file_location("pictures_hook", ROOT / "docs" / "_ext" / "pictures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_picture_that_cannot_be_made_stops_the_build():
    from mkdocs.exceptions import PluginError

    hook = load_hook()
    page = "```python\nx = 1\n```\n\n<!-- figure: no_such_name(x) | broken -->\n"
    with pytest.raises(PluginError, match=r"lesson.md: could not draw `no_such_name\(x\)`: NameError"):
        hook._run_page(page, "lesson.md", "../")
    with pytest.raises(PluginError, match="does not draw itself"):
        hook._run_page("<!-- figure: 42 | a number -->\n", "lesson.md", "../")
    failing_code = "```python\nraise ValueError('boom')\n```\n<!-- figure: 1 -->\n"
    with pytest.raises(PluginError, match="code block at line 2 failed.*boom"):
        hook._run_page(failing_code, "lesson.md", "../")
