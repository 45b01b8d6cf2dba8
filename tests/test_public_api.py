"""`import tinyai as ta` gives the names the README and the docs use, as the objects they name."""
import importlib

import tinyai as ta


def test_top_level_names_are_the_package_objects():
    from tinyai.autograd import Function, Variable, no_grad, test_mode
    from tinyai.training import Model, Trainer

    assert (ta.Variable, ta.Function, ta.no_grad, ta.test_mode) == (Variable, Function, no_grad, test_mode)
    assert (ta.Model, ta.Trainer) == (Model, Trainer)


def test_subpackages_are_reachable_as_attributes():
    for name in ("functions", "nn", "optim", "losses", "data", "training", "backend"):
        assert getattr(ta, name) is importlib.import_module(f"tinyai.{name}"), name


def test_every_name_in_all_exists():
    for package in ("tinyai", "tinyai.nn", "tinyai.optim", "tinyai.losses", "tinyai.data", "tinyai.training",
                    "tinyai.functions", "tinyai.backend", "tinyai.autograd"):
        module = importlib.import_module(package)
        missing = [name for name in getattr(module, "__all__", ()) if not hasattr(module, name)]
        assert not missing, f"{package}.__all__ names missing attributes: {missing}"
