"""The API reference is complete: every name in the ``__all__`` of a public
tinyai module is rendered somewhere under docs/api.

What counts is what the built site actually shows, read from the object
inventory (``objects.inv``) mkdocstrings writes: each rendered identifier is
imported back and compared by identity, so a name documented under another
path (``tinyai.nn.Linear`` rendered as ``tinyai.nn.linear.Linear``) counts, and
a member hidden by a ``filters`` or ``members`` option does not.
"""
import importlib
import inspect
import pkgutil
import zlib

import pytest

import tinyai


def public_modules():
    """tinyai and every module below it whose dotted name has no ``_`` part and that declares ``__all__``."""
    modules = [tinyai]
    for info in pkgutil.walk_packages(tinyai.__path__, "tinyai."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        module = importlib.import_module(info.name)
        if hasattr(module, "__all__"):
            modules.append(module)
    return modules


def read_inventory(site):
    """The identifiers of the objects rendered on the site (Sphinx inventory format, version 2)."""
    data = (site / "objects.inv").read_bytes()
    header_end = 0
    for _ in range(4):
        header_end = data.index(b"\n", header_end) + 1
    names = set()
    for line in zlib.decompress(data[header_end:]).decode("utf-8").splitlines():
        name, domain_role, _priority, location = line.split(" ", 4)[:4]
        if domain_role.startswith("py:"):
            anchor = location.split("#", 1)[1] if "#" in location else ""
            names.add(name if anchor in ("", "$") else anchor)
    return names


def resolve(identifier):
    """The object a dotted identifier names, or None."""
    parts = identifier.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        try:
            for attribute in parts[split:]:
                obj = getattr(obj, attribute)
        except AttributeError:
            return None
        return obj
    return None


def test_inventory_reader_sees_rendered_objects(built_site):
    rendered = read_inventory(built_site)
    assert "tinyai.autograd.Variable" in rendered
    assert resolve("tinyai.autograd.Variable.backward") is tinyai.Variable.backward
    assert resolve("tinyai.no_such_name") is None


def test_every_public_name_is_in_the_api_reference(built_site):
    rendered = read_inventory(built_site)
    rendered_ids = {id(obj) for obj in map(resolve, rendered) if obj is not None}
    missing = []
    for module in public_modules():
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.ismodule(obj):
                found = any(r == obj.__name__ or r.startswith(obj.__name__ + ".") for r in rendered)
            elif inspect.isclass(obj) or callable(obj):
                found = id(obj) in rendered_ids
            else:  # a constant: look for it by name
                found = any(r.rsplit(".", 1)[-1] == name and r.startswith(module.__name__) for r in rendered)
            if not found:
                missing.append(f"{module.__name__}.{name}")
    assert not missing, (f"{len(missing)} public names are missing from the API reference (docs/api/*.md): "
                         + ", ".join(sorted(missing)))
