"""Loading is all or nothing, errors name the path, weights that do not fit are refused, saves leave no litter."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

import tinyai
import tinyai.optim as optim
from tinyai import nn
from tinyai.training import Model, Monitor, Trainer
from tinyai.training.checkpoint import load_checkpoint
from tinyai.training.npz_files import remove_stale_temp_files

from trainer_helpers import CrossEntropy, RecordingNet, blob_dataset


def snapshot(model):
    return {name: np.array(value, copy=True) for name, value in model.state_dict().items()}


def assert_unchanged(model, before):
    now = model.state_dict()
    assert sorted(now) == sorted(before)
    for name, value in before.items():
        np.testing.assert_array_equal(now[name], value, err_msg=name)


def mlp_model(seed=0):
    tinyai.seed(seed)
    return Model("mlp", nn.SequentialBlock(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)))


def weights_file(tmp_path, model, **replace):
    """The model's weights as a file, with some entries replaced."""
    path = tmp_path / "w.npz"
    model.save(path)
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays.update(replace)
    np.savez(path, **arrays)
    return path


def last_param_name(model):
    return [name for name, _ in model.named_params()][-1]


@pytest.mark.parametrize("bad,words", [
    (lambda shape: np.full(shape, "x"), ["dtype <U1", "real numbers"]),
    (lambda shape: np.ones(shape, np.complex128), ["complex128", "imaginary part would be lost"]),
    (lambda shape: np.full(shape, 1e300), ["1e+300", "beyond the range of float32"]),
    (lambda shape: np.full(shape, np.nan, np.float32), ["NaN or infinite", "allow_non_finite=True"]),
], ids=["str", "complex", "overflow", "nan"])
def test_a_bad_last_array_leaves_every_weight_as_it_was(tmp_path, bad, words):
    source, target = mlp_model(1), mlp_model(2)
    name = last_param_name(target)
    path = weights_file(tmp_path, source, **{name: bad(target.state_dict()[name].shape)})
    before = snapshot(target)
    with pytest.raises(ValueError) as info:
        target.load_weights(path)
    message = str(info.value)
    assert str(path) in message and name in message, message
    assert all(w in message for w in words), message
    assert_unchanged(target, before)


def test_non_finite_weights_load_when_allowed(tmp_path):
    source, target = mlp_model(1), mlp_model(2)
    name = last_param_name(target)
    path = weights_file(tmp_path, source, **{name: np.full(target.state_dict()[name].shape, np.inf, np.float32)})
    target.load_weights(path, allow_non_finite=True)
    assert np.isinf(target.state_dict()[name]).all()


def test_a_failed_load_leaves_a_lazy_model_lazy(tmp_path):
    tinyai.seed(0)
    lazy = Model("lazy", nn.SequentialBlock(nn.Linear(None, 4), nn.Linear(None, 2)))
    path = tmp_path / "w.npz"
    np.savez(path, **{"linear0.W": np.ones((3, 4), np.float32), "linear0.b": np.ones(4, np.float32),
                      "linear1.W": np.ones((4, 2), np.complex64), "linear1.b": np.ones(2, np.float32)})
    with pytest.raises(ValueError, match="linear1.W has dtype complex64"):
        lazy.load_weights(path)
    assert list(lazy.named_params()) == []
    assert lazy(np.ones((1, 5), np.float32)).shape == (1, 2)   # still free to take any input width


def _trainer(optimizer_cls, max_epoch=2, seed=5, **kwargs):
    tinyai.seed(seed)
    model = RecordingNet(2, 6, 3)
    trainer = Trainer(max_epoch, progress=None)
    trainer.init(blob_dataset(), model, CrossEntropy(), optimizer_cls(model, lr=0.1, **kwargs))
    return trainer, model


def test_a_checkpoint_of_another_optimizer_changes_nothing(tmp_path):
    saved, _ = _trainer(optim.Adam, max_epoch=1)
    saved.train()
    path = tmp_path / "adam.npz"
    saved.save_checkpoint(path)

    trainer, model = _trainer(optim.Momentum, seed=9, momentum=0.9)
    trainer.train()
    trainer.max_epoch = 3
    before, history = snapshot(model), {k: list(v) for k, v in trainer.monitor.history.items()}
    optimizer_state, rng = trainer.optimizer.state_dict(), tinyai.backend.get_state()
    with pytest.raises(ValueError) as info:
        trainer.load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message and "Momentum" in message and "nothing was changed" in message
    assert_unchanged(model, before)
    assert trainer.epoch == 2 and trainer.monitor.history == history
    assert tinyai.backend.get_state() == rng
    for key, value in trainer.optimizer.state_dict().items():
        np.testing.assert_array_equal(np.asarray(value), np.asarray(optimizer_state[key]))


def _meta_edit(tmp_path, edit):
    trainer, _ = _trainer(optim.SGD, max_epoch=1)
    path = tmp_path / "c.npz"
    trainer.save_checkpoint(path)
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays["__meta__"] = edit(str(arrays["__meta__"]))
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("edit,words", [
    (lambda text: np.array(text[:-5]), ["__meta__", "not valid JSON"]),
    (lambda text: np.array(json.dumps({k: v for k, v in json.loads(text).items() if k != "epoch"})),
     ["lacks epoch"]),
    (lambda text: np.array(json.dumps({**json.loads(text), "epoch": "3"})), ["'epoch'", "'3'", "wrong type"]),
    (lambda text: np.array(json.dumps({**json.loads(text), "epoch": -1})), ["negative"]),
    (lambda text: np.array(json.dumps([1, 2])), ["not a JSON object"]),
    (lambda text: np.zeros(3), ["__meta__", "float64", "not a JSON text"]),
], ids=["truncated json", "no epoch", "epoch str", "epoch negative", "json list", "not text"])
def test_a_broken_meta_record_is_named(tmp_path, edit, words):
    path = _meta_edit(tmp_path, edit)
    with pytest.raises(ValueError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message and all(w in message for w in words), message


def test_damaged_and_pickled_checkpoints_are_named(tmp_path):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip" * 100)
    with pytest.raises(ValueError, match=r"cannot read .*garbage.npz.* as a tinyai checkpoint"):
        load_checkpoint(garbage)
    evil = tmp_path / "evil.npz"
    np.savez(evil, __meta__=np.array("{}"), **{"model/W": np.array([object()], dtype=object)})
    with pytest.raises(ValueError, match=r"evil.npz.*'model/W' is a pickled object array"):
        load_checkpoint(evil)
    broken = tmp_path / "broken.npz"
    trainer, _ = _trainer(optim.SGD, max_epoch=1)
    trainer.save_checkpoint(broken)
    with zipfile.ZipFile(broken) as archive:
        names = archive.namelist()
    data = bytearray(broken.read_bytes())
    data[100:140] = b"\xff" * 40      # inside the first entry's data: a CRC or format error
    broken.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="broken.npz"):
        load_checkpoint(broken)
    assert names


def test_a_monitor_history_that_does_not_load_changes_nothing(tmp_path):
    class StrictMonitor(Monitor):
        def load_state_dict(self, state):
            raise ValueError("history of another kind")

    trainer, model = _trainer(optim.SGD, max_epoch=1)
    trainer.train()
    path = tmp_path / "c.npz"
    trainer.save_checkpoint(path)
    other, other_model = _trainer(optim.SGD, max_epoch=1, seed=8)
    other.monitor = StrictMonitor()
    before = snapshot(other_model)
    with pytest.raises(ValueError, match="history of another kind; nothing was changed"):
        other.load_checkpoint(path)
    assert_unchanged(other_model, before)


# -- temporary files of interrupted saves ----------------------------------------------------------
def _dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temp_files_of_dead_writers_are_removed_by_the_next_save(tmp_path):
    model = mlp_model()
    path = tmp_path / "w.npz"
    dead = tmp_path / f".w.npz.tinyai-{_dead_pid()}-0badcafe.tmp"
    alive = tmp_path / f".w.npz.tinyai-{os.getppid()}-0badcafe.tmp"       # its writer still runs
    other_target = tmp_path / f".x.npz.tinyai-{_dead_pid()}-0badcafe.tmp"  # another file's
    not_ours = tmp_path / ".w.npz.abc123.tmp"                               # not tinyai's pattern
    for p in (dead, alive, other_target, not_ours):
        p.write_bytes(b"half")
    model.save(path)
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in (path, alive, other_target, not_ours))


@pytest.mark.slow
def test_a_save_killed_with_sigkill_leaves_nothing_after_the_next_save(tmp_path):
    script = textwrap.dedent(f"""
        import numpy as np, sys
        from tinyai.training.npz_files import write_npz_atomic
        big = {{"a": np.zeros(8_000_000)}}
        print("ready", flush=True)
        while True:
            write_npz_atomic({str(tmp_path / 'c.npz')!r}, big)
    """)
    env = dict(os.environ, PYTHONPATH=os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", ""))
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env)
    try:
        assert child.stdout.readline().strip() == b"ready"
        for _ in range(200):     # wait until a temporary file is being written, then kill
            if any(name.endswith(".tmp") for name in os.listdir(tmp_path)):
                break
            os.sched_yield()
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    leftovers = [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]
    from tinyai.training.npz_files import write_npz_atomic
    write_npz_atomic(tmp_path / "c.npz", {"a": np.ones(3)})
    assert [name for name in os.listdir(tmp_path) if name.endswith(".tmp")] == []
    np.testing.assert_array_equal(np.load(tmp_path / "c.npz")["a"], np.ones(3))
    assert remove_stale_temp_files(tmp_path / "c.npz") == []
    assert len(leftovers) <= 1


def test_optimizer_state_beyond_float32_is_refused_and_nothing_changes():
    tinyai.seed(0)
    model = RecordingNet(2, 6, 3)
    optimizer = optim.Momentum(model, lr=0.1, momentum=0.9)
    state = optimizer.state_dict()
    key = next(k for k in state if k.endswith(".velocity"))
    bad = dict(state, **{key: np.full(np.shape(state[key]), 1e300)})
    before = {k: np.array(v, copy=True) for k, v in optimizer.state_dict().items()}
    with pytest.raises(ValueError, match=rf"{key} holds 1e\+300, beyond the range of float32"):
        optimizer.load_state_dict(bad)
    for k, v in optimizer.state_dict().items():
        np.testing.assert_array_equal(np.asarray(v), before[k])
