"""Saved files get the permissions of any new file: 0666 less the umask
(0644 under the usual 022), although they are written to a private
temporary file first and renamed into place."""
import os
import shutil
import stat

import numpy as np
import pytest

import tinyai
import tinyai.optim as optim
from tinyai import nn
from tinyai.backend.files import current_umask
from tinyai.training import Model, Monitor, save_checkpoint


@pytest.fixture(params=[0o022, 0o077, 0o002])
def umask(request):
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_saved_models_checkpoints_and_pictures_follow_the_umask(tmp_path, umask):
    assert current_umask() == umask
    expected = 0o666 & ~umask
    tinyai.seed(0)
    model = Model("tiny", nn.Linear(3, 2))
    model.save(tmp_path / "model.npz")
    save_checkpoint(tmp_path / "ckpt.npz", model, optim.SGD(model, lr=0.1), epoch=1)
    written = [tmp_path / "model.npz", tmp_path / "ckpt.npz"]
    if shutil.which("dot"):
        from tinyai.viz import plot_dot_graph

        x = tinyai.Variable(np.ones(2), name="x")
        written.append(plot_dot_graph(x * x, tmp_path / "graph.svg"))
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        pass
    else:
        monitor = Monitor()
        monitor.start_new_epoch(0)
        monitor.collect("loss", 1.0)
        monitor.end_epoch()
        monitor.plot(tmp_path / "curves.png")
        written.append(tmp_path / "curves.png")
    assert {path.name: oct(mode(path)) for path in written} == {path.name: oct(expected) for path in written}
