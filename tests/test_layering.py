"""The layering of ARCHITECTURE.md, checked by reading every module's imports.

Each layer imports only from layers below it (or from inside its own
package), so that the lower layers can be read, tested and reused without
the upper ones: nothing below ``nn`` knows what a Layer is, nothing below
``training`` knows that a Trainer exists. Imports inside functions count
too: a lazy import is still a dependency, only a later one.

Third-party packages other than NumPy are optional extras; they must be
imported lazily, inside the function that needs them, so ``import tinyai``
works without them.
"""
import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "tinyai"

LAYERS = {
    "backend": 0,
    "autograd": 1,
    "functions": 2,
    "nn": 3,
    "optim": 4, "losses": 4, "data": 4,
    "training": 5, "parallel": 5,
    "cli": 6, "__main__": 6,
}
# The top-level package re-exports the public API of layers 0-5, so importing
# it counts as importing layer 5.
TOP_LEVEL = 5
# testing (gradcheck, strategies, the CuPy stand-in) and viz (graph pictures,
# plots) stand aside: they may use any library layer, and no library layer
# may depend on them.
ASIDE = {"testing", "viz"}
# Same-layer imports that are part of the design, one direction only.
SAME_LAYER_ALLOWED = {
    ("training", "parallel"),  # the Trainer offers data-parallel training
    ("__main__", "cli"),  # `python -m tinyai` runs the command line
}
# Third-party packages allowed at module level (everything else is an optional extra).
REQUIRED_DEPENDENCIES = {"numpy"}
# Modules that are themselves loaded lazily (tinyai.testing's __getattr__ imports
# the strategies on first use), so their module-level import of the extra is lazy.
LAZY_MODULES = {"tinyai.testing.strategies": {"hypothesis"}}


def modules():
    """(dotted module name, path) of every module under tinyai/."""
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def imports(module, path):
    """(imported dotted name, line, inside a function?) for every import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []

    def visit(node, in_function):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno, in_function) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module
            for alias in node.names:
                # `from tinyai import nn` imports the subpackage tinyai.nn;
                # `from tinyai import Variable` imports the top-level package.
                candidate = f"{base}.{alias.name}"
                is_module = (PACKAGE.parent / Path(*candidate.split("."))).is_dir() or \
                    (PACKAGE.parent / Path(*candidate.split("."))).with_suffix(".py").is_file()
                found.append((candidate if is_module else base, node.lineno, in_function))
        inside = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, inside)

    visit(tree, False)
    return found


def area(dotted):
    """The package under tinyai/ a dotted name belongs to ("nn", "cli", ...), or None for tinyai itself."""
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else None


def layering_violations():
    problems = []
    for module, path in modules():
        source = area(module)
        if source is None:  # tinyai/__init__.py gathers the public API from every layer
            continue
        for name, line, _ in imports(module, path):
            if name.split(".")[0] != "tinyai":
                continue
            target = area(name)
            where = f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}"
            if target == source:
                continue
            if target in ASIDE:
                if source not in ASIDE:
                    problems.append(f"{where}: library code must not depend on tinyai.{target}")
                continue
            if source in ASIDE:
                continue
            level = TOP_LEVEL if target is None else LAYERS[target]
            if level < LAYERS[source] or (source, target) in SAME_LAYER_ALLOWED:
                continue
            problems.append(f"{where}: layer {LAYERS[source]} ({source}) may not import layer {level} "
                            f"({target or 'the top-level package'})")
    return problems


def test_every_package_has_a_layer():
    areas = {area(module) for module, _ in modules()} - {None}
    assert areas <= set(LAYERS) | ASIDE, f"packages without a layer: {sorted(areas - set(LAYERS) - ASIDE)}"


def test_no_module_imports_from_a_layer_above():
    problems = layering_violations()
    assert not problems, "upward imports:\n" + "\n".join(problems)


def eager_optional_imports():
    problems = []
    for module, path in modules():
        for name, line, in_function in imports(module, path):
            top = name.split(".")[0]
            if in_function or top in sys.stdlib_module_names or top in REQUIRED_DEPENDENCIES | {"tinyai"}:
                continue
            if top in LAZY_MODULES.get(module, ()):
                continue
            problems.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {name} at module level")
    return problems


def test_optional_dependencies_are_imported_lazily():
    problems = eager_optional_imports()
    assert not problems, "optional extras must be imported inside the function that needs them:\n" + \
        "\n".join(problems)


@pytest.mark.parametrize("source, line, expected", [
    ("nn/fake.py", "from tinyai.training import Model", "layer 3 (nn) may not import layer 5 (training)"),
    ("backend/fake.py", "def f():\n    import tinyai.autograd", "layer 0 (backend) may not import layer 1"),
    ("functions/fake.py", "from .. import nn", "layer 2 (functions) may not import layer 3 (nn)"),
    ("data/fake.py", "from tinyai.optim import SGD", "layer 4 (data) may not import layer 4 (optim)"),
    ("training/fake.py", "from tinyai import Variable", "may not import layer 5 (the top-level package)"),
    ("optim/fake.py", "from tinyai.testing import gradcheck", "must not depend on tinyai.testing"),
])
def test_the_check_catches_an_upward_import(monkeypatch, tmp_path, source, line, expected):
    """The checker itself can fail: plant a bad import in a copy of the package layout."""
    plant(monkeypatch, tmp_path, source, line)
    problems = layering_violations()
    assert len(problems) == 1 and expected in problems[0], problems


def test_the_check_catches_an_eager_optional_import(monkeypatch, tmp_path):
    plant(monkeypatch, tmp_path, "viz/fake.py", "import matplotlib.pyplot as plt")
    problems = eager_optional_imports()
    assert len(problems) == 1 and "viz/fake.py:1 imports matplotlib.pyplot at module level" in problems[0]
    plant(monkeypatch, tmp_path, "viz/fake.py", "def draw():\n    import matplotlib.pyplot as plt")
    assert eager_optional_imports() == []


def plant(monkeypatch, tmp_path, source, line):
    """A copy of the package layout under tmp_path with one module holding ``line``; PACKAGE points at it."""
    fake = tmp_path / "tinyai"
    for package in set(LAYERS) | ASIDE:
        if package not in ("cli", "__main__"):
            (fake / package).mkdir(parents=True, exist_ok=True)
            (fake / package / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    (fake / source).write_text(line + "\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
