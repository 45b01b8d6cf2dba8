"""Checkpoints: exact round trip, atomic writes, and resume == training straight through."""
import os

import numpy as np
import pytest

import tinyai
import tinyai.optim as optim
from tinyai.backend import default_dtype
from tinyai.training import checkpoint as checkpoint_module
from tinyai.training.checkpoint import load_checkpoint, save_checkpoint, write_npz_atomic
from tinyai.training.evaluator import AccuracyEval
from tinyai.training.monitor import Monitor
from tinyai.training.trainer import Trainer

from trainer_helpers import CrossEntropy, RecordingNet, blob_dataset


def trained_pieces(epochs=1):
    tinyai.seed(5)
    model = RecordingNet(2, 6, 3)
    optimizer = optim.Momentum(model, lr=0.1, momentum=0.9)
    trainer = Trainer(epochs, evaluator=AccuracyEval(), progress=None)
    trainer.init(blob_dataset(), model, CrossEntropy(), optimizer)
    trainer.train()
    return trainer, model, optimizer


def test_round_trip_keeps_weights_optimizer_state_epoch_rng_and_history(tmp_path):
    trainer, model, optimizer = trained_pieces(epochs=2)
    path = tmp_path / "run.npz"
    rng_state = tinyai.backend.get_state()
    save_checkpoint(path, model, optimizer, epoch=2, monitor=trainer.monitor, rng_state=rng_state,
                    extra={"note": "two epochs"})
    loaded = load_checkpoint(path)
    assert loaded.epoch == 2 and loaded.extra == {"note": "two epochs"}
    assert loaded.rng_state == rng_state
    assert loaded.monitor_state == trainer.monitor.history
    state = model.state_dict()
    assert sorted(loaded.model_state) == sorted(state)
    for name in state:
        np.testing.assert_array_equal(loaded.model_state[name], state[name])
        assert loaded.model_state[name].dtype == state[name].dtype
    saved_optimizer = optimizer.state_dict()
    assert sorted(loaded.optimizer_state) == sorted(saved_optimizer)
    for key, value in saved_optimizer.items():
        np.testing.assert_array_equal(np.asarray(loaded.optimizer_state[key]), np.asarray(value))
    # Momentum keeps one velocity per parameter: those must be in the file.
    assert any("velocity" in key for key in loaded.optimizer_state)


def test_file_holds_no_pickles(tmp_path):
    trainer, model, optimizer = trained_pieces()
    path = tmp_path / "c.npz"
    trainer.save_checkpoint(path)
    with np.load(path, allow_pickle=False) as archive:
        for key in archive.files:
            assert archive[key].dtype != object


def test_crash_while_writing_leaves_previous_checkpoint_and_no_temp_file(tmp_path, monkeypatch):
    trainer, model, optimizer = trained_pieces()
    path = tmp_path / "ckpt.npz"
    trainer.save_checkpoint(path)
    before = path.read_bytes()
    saved_W = model.fc1.W.data.copy()

    def crashing_savez(file, **arrays):
        file.write(b"PK\x03\x04 half a zip")       # some bytes reach the disk ...
        raise OSError("disk full")                  # ... then the writer dies

    monkeypatch.setattr(checkpoint_module.np, "savez", crashing_savez)
    model.fc1.W.data += 1.0
    with pytest.raises(OSError, match="disk full"):
        trainer.save_checkpoint(path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["ckpt.npz"]
    monkeypatch.undo()
    np.testing.assert_array_equal(load_checkpoint(path).model_state["fc1.W"], saved_W)


def test_interrupt_while_writing_also_cleans_up(tmp_path, monkeypatch):
    def interrupted(file, **arrays):
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint_module.np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_npz_atomic(tmp_path / "x.npz", {"a": np.zeros(3)})
    assert os.listdir(tmp_path) == []


def test_bad_paths_and_files_are_named(tmp_path):
    trainer, model, optimizer = trained_pieces()
    missing_dir = tmp_path / "nope" / "c.npz"
    with pytest.raises(FileNotFoundError, match="nope"):
        trainer.save_checkpoint(missing_dir)
    with pytest.raises(FileNotFoundError, match="absent.npz"):
        load_checkpoint(tmp_path / "absent.npz")
    plain = tmp_path / "weights.npz"
    np.savez(plain, W=np.zeros(2))
    with pytest.raises(ValueError, match="not a tinyai checkpoint"):
        load_checkpoint(plain)


def test_load_checkpoint_rejects_more_epochs_than_max_epoch(tmp_path):
    trainer, model, optimizer = trained_pieces(epochs=2)
    trainer.save_checkpoint(tmp_path / "c.npz")
    short = Trainer(1, progress=None).init(blob_dataset(), model, CrossEntropy(), optimizer)
    with pytest.raises(ValueError, match="2 epochs done, more than max_epoch=1"):
        short.load_checkpoint(tmp_path / "c.npz")


def run(epochs, max_epoch, checkpoint=None, resume_from=None, init_seed=11):
    """Train in float64 with dropout-free momentum SGD and per-epoch shuffling."""
    tinyai.seed(init_seed)
    model = RecordingNet(2, 8, 3)
    optimizer = optim.Momentum(model, lr=0.05, momentum=0.9)
    dataset = blob_dataset(batch_size=10)
    if resume_from is None:
        trainer = Trainer(max_epoch, evaluator=AccuracyEval(), progress=None, checkpoint_path=checkpoint)
        trainer.init(dataset, model, CrossEntropy(), optimizer)
        while trainer.epoch < epochs:      # stop early, as a crash would
            trainer.max_epoch = epochs
            trainer.train()
        trainer.max_epoch = max_epoch
    else:
        trainer = Trainer.resume(resume_from, dataset=dataset, model=model, loss=CrossEntropy(),
                                 optimizer=optimizer, max_epoch=max_epoch, evaluator=AccuracyEval(),
                                 progress=None)
        assert trainer.epoch == 3
        trainer.train()
    return model.state_dict(), trainer.monitor.history


def test_resume_from_epoch_k_equals_training_straight_through(tmp_path):
    with default_dtype(np.float64):
        straight, straight_history = run(epochs=6, max_epoch=6)
        path = tmp_path / "ckpt.npz"
        run(epochs=3, max_epoch=6, checkpoint=path)
        # A different seed for the fresh model: its initial weights must be overwritten.
        resumed, resumed_history = run(epochs=6, max_epoch=6, resume_from=path, init_seed=999)
    assert straight["fc1.W"].dtype == np.float64
    for name in straight:
        np.testing.assert_array_equal(resumed[name], straight[name])
    assert resumed_history["loss"] == straight_history["loss"]
    assert resumed_history["test_accuracy"] == straight_history["test_accuracy"]


def test_resume_without_rng_state_would_differ(tmp_path):
    # The property above is not vacuous: the shuffles after epoch k depend on
    # the restored random state. Dropping it changes the result.
    with default_dtype(np.float64):
        straight, _ = run(epochs=6, max_epoch=6)
        path = tmp_path / "ckpt.npz"
        run(epochs=3, max_epoch=6, checkpoint=path)
        original = checkpoint_module.load_checkpoint

        def without_rng(p):
            loaded = original(p)
            loaded.rng_state = None
            return loaded

        import tinyai.training.trainer as trainer_module
        trainer_module.load_checkpoint = without_rng
        try:
            resumed, _ = run(epochs=6, max_epoch=6, resume_from=path, init_seed=999)
        finally:
            trainer_module.load_checkpoint = original
    assert not np.array_equal(resumed["fc1.W"], straight["fc1.W"])


def test_monitor_history_survives_resume(tmp_path):
    trainer, model, optimizer = trained_pieces(epochs=2)
    trainer.save_checkpoint(tmp_path / "c.npz")
    monitor = Monitor()
    fresh = Trainer(3, monitor=monitor, progress=None).init(blob_dataset(), model, CrossEntropy(), optimizer)
    fresh.load_checkpoint(tmp_path / "c.npz")
    assert monitor.history == trainer.monitor.history
    history = fresh.train()
    assert len(history["loss"]) == 3 and history["loss"][:2] == trainer.monitor.history["loss"]
