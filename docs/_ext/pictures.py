"""MkDocs hook: the lessons' pictures, drawn from real runs while the site builds.

A page asks for a picture with a marker on a line of its own:

    <!-- figure: show_graph(y) | The graph that computed y -->

The expression before ``|`` is evaluated in the page's own namespace, after
the page's ``python`` blocks above the marker have run (in order, in a
temporary directory, as tests/docs/test_docs_code.py runs them), so the
picture shows the example the reader has just read, computed for real. The
text after ``|`` becomes the alt text and the caption. The value draws
itself: a graph view from ``tinyai.viz.show_graph`` (Graphviz SVG), a
matplotlib Figure (``Monitor.plot()``) or a ``tinyai.viz.Plot`` (SVG), or
one of the diagrams in ``docs/_ext/figures.py``. The namespace starts with
``show_graph``, ``Plot`` and ``figures`` (that module). Nothing is checked in: every picture is made here.

A picture that cannot be made (an error in the code, Graphviz or matplotlib
missing) stops the build with the page, the marker and the reason.

Loaded by mkdocs.yml (``hooks: [docs/_ext/pictures.py]``); it is part of the
documentation build, not of the tinyai package.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

#: Where the pictures go inside the built site.
PICTURES = "pictures"
MARKER = re.compile(r"^<!--\s*figure:\s*(?P<expr>.+?)\s*(?:\|\s*(?P<alt>.*?)\s*)?-->[ \t]*$", re.M)
FENCE = re.compile(r"^(?P<indent>[ ]*)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ ]*$", re.M | re.S)

_made: dict[str, bytes] = {}


def _figures_module() -> Any:
    path = Path(__file__).with_name("figures.py")
    spec = importlib.util.spec_from_file_location("tinyai_docs_figures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def render(value: Any) -> tuple[bytes, str, str]:
    """The picture ``value`` draws of itself: (file bytes, extension, "graph" or "chart")."""
    from tinyai.viz import GraphView, Plot

    if isinstance(value, GraphView):
        return value.svg().encode("utf-8"), "svg", "graph"   # Graphviz; raises naming how to install it
    if isinstance(value, Plot):
        return value.to_bytes("svg"), "svg", "chart"
    if hasattr(value, "savefig"):                      # a matplotlib Figure (Monitor.plot, figures.*)
        buffer = io.BytesIO()
        value.savefig(buffer, format="svg")
        return buffer.getvalue(), "svg", "chart"
    raise TypeError(f"a {type(value).__name__} does not draw itself (expected a graph view, "
                    "a matplotlib Figure or a tinyai.viz.Plot)")


def _run_page(markdown: str, page_path: str, site_prefix: str) -> str:
    """Run the page's blocks in order; replace each marker by its picture."""
    from tinyai.viz import Plot, show_graph

    namespace: dict[str, Any] = {"__name__": "__docs__", "figures": _figures_module(),
                                 "show_graph": show_graph, "Plot": Plot}
    events = [(m.start(), "code", m) for m in FENCE.finditer(markdown) if m.group("info").strip() == "python"]
    events += [(m.start(), "figure", m) for m in MARKER.finditer(markdown)]
    events.sort(key=lambda event: event[0])
    pieces, last, count = [], 0, 0
    with tempfile.TemporaryDirectory(prefix="tinyai-docs-") as workdir, _chdir(workdir):
        for _, kind, match in events:
            if kind == "code":
                body = match.group("body")
                if body.lstrip().startswith("# no-run"):
                    continue
                line = markdown.count("\n", 0, match.start()) + 2
                try:
                    with contextlib.redirect_stdout(io.StringIO()):  # the page's prints are for its readers
                        exec(compile(body, f"{page_path}:{line}", "exec"), namespace)  # the page's own example
                except Exception as error:
                    raise PluginError(f"pictures: {page_path}, the code block at line {line} failed before a "
                                      f"picture could be drawn: {type(error).__name__}: {error}") from error
                continue
            expression, alt = match.group("expr"), match.group("alt") or ""
            try:
                data, extension, kind = render(eval(expression, namespace))  # the marker's expression
            except Exception as error:
                raise PluginError(f"pictures: {page_path}: could not draw `{expression}`: "
                                  f"{type(error).__name__}: {error}") from error
            count += 1
            stem = Path(page_path).with_suffix("").as_posix().replace("/", "-")
            name = f"{stem}-{count}-{hashlib.sha1(data).hexdigest()[:8]}.{extension}"
            _made[name] = data
            alt_html = alt.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
            pieces.append(markdown[last:match.start()])
            pieces.append(f'<figure class="tinyai-picture tinyai-{kind}">\n<img src="{site_prefix}{PICTURES}/{name}" '
                          f'alt="{alt_html}">\n<figcaption>{alt_html}</figcaption>\n</figure>')
            last = match.end()
    pieces.append(markdown[last:])
    return "".join(pieces)


@contextlib.contextmanager
def _chdir(path: str):
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def on_pre_build(config: Any) -> None:
    _made.clear()
    # Draw off screen; a picture never opens a window.
    os.environ["MPLBACKEND"] = "Agg"
    root = str(Path(config["config_file_path"]).resolve().parent)
    if root not in sys.path:
        sys.path.insert(0, root)     # the tinyai of this checkout


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if not MARKER.search(markdown):
        return markdown
    # The page's URL decides how far up the site's root is (directory URLs: autograd/ -> ../).
    depth = page.url.count("/")
    return _run_page(markdown, page.file.src_uri, "../" * depth)


def on_post_build(config: Any) -> None:
    folder = Path(config["site_dir"]) / PICTURES
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in _made.items():
        (folder / name).write_bytes(data)
