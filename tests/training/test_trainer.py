"""The Trainer loop: learning, history, per-epoch reset, graph freeing, test-mode evaluation, bad input."""
import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinyai
import tinyai.optim as optim
from tinyai import nn
from tinyai.data.dataset import ArrayDataset
from tinyai.training import progress as progress_module
from tinyai.training.evaluator import AccuracyEval
from tinyai.training.monitor import Monitor
from tinyai.training.trainer import NonFiniteLossError, Trainer

from trainer_helpers import CrossEntropy, RecordingNet, blob_dataset

ROOT = Path(__file__).resolve().parents[2]


def make(max_epoch=4, evaluator="acc", lr=0.2, **kwargs):
    tinyai.seed(3)
    dataset = blob_dataset()
    model = RecordingNet(2, 16, 3)
    evaluator = AccuracyEval() if evaluator == "acc" else evaluator
    trainer = Trainer(max_epoch, evaluator=evaluator, progress=kwargs.pop("progress", None), **kwargs)
    trainer.init(dataset, model, CrossEntropy(), optim.SGD(model, lr=lr))
    return trainer, model, dataset


def test_loss_decreases_and_history_has_one_entry_per_epoch():
    trainer, model, _ = make(max_epoch=6)
    history = trainer.train()
    assert set(history) >= {"loss", "train_accuracy", "test_accuracy", "test_loss", "time"}
    assert all(len(values) == 6 for values in history.values())
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert history["test_accuracy"][-1] >= 0.9          # three well-separated blobs
    assert history["train_accuracy"][-1] >= 0.9
    # AccuracyEval measured the test loss with the Trainer's own loss.
    assert all(v is not None and v > 0 for v in history["test_loss"])
    assert history["test_loss"][-1] < history["test_loss"][0]
    assert all(t > 0 for t in history["time"])
    assert history == trainer.monitor.history
    assert trainer.epoch == 6


def test_train_accuracy_is_the_fraction_of_training_samples_right():
    # With lr=0 the model never changes, so the training accuracy of the epoch
    # must equal the accuracy of the fixed model on the whole training set.
    trainer, model, dataset = make(max_epoch=1, lr=0.0)
    history = trainer.train()
    train = dataset.get_train_dataset()
    with tinyai.no_grad():
        scores = model(tinyai.Variable(train.x)).data
    expected = np.mean(np.argmax(scores, axis=1) == train.y)
    assert history["train_accuracy"][0] == pytest.approx(expected)


def test_reset_state_is_called_once_per_epoch():
    trainer, model, _ = make(max_epoch=5, evaluator=None)
    trainer.train()
    assert model.reset_count == 5


def test_graph_is_unchained_after_every_step():
    trainer, model, _ = make(max_epoch=2, evaluator=None)
    trainer.train()
    batches_per_epoch = len(trainer.train_set)
    assert len(model.outputs) == 2 * batches_per_epoch
    # unchain_backward cuts every creator link behind the loss: the
    # predictions are leaves again, so the step's graph can be freed.
    assert all(y.creator is None for y in model.outputs)


def test_evaluation_runs_in_test_mode_without_graph_and_restores_train_mode():
    trainer, model, dataset = make(max_epoch=2)
    trainer.train()
    test_batches = len(dataset.get_test_dataset())
    train_batches = len(trainer.train_set)
    training_calls = [c for c in model.calls if c == (True, True, True)]
    eval_calls = [c for c in model.calls if c == (False, False, False)]
    assert len(training_calls) == 2 * train_batches
    assert len(eval_calls) == 2 * test_batches
    assert len(model.calls) == len(training_calls) + len(eval_calls)
    assert model.training
    trainer.evaluate()
    assert model.calls[-1] == (False, False, False) and model.training


def test_eval_every_skips_epochs_but_always_evaluates_the_last():
    trainer, _, _ = make(max_epoch=5, eval_every=2)
    history = trainer.train()
    measured = [v is not None for v in history["test_accuracy"]]
    assert measured == [False, True, False, True, True]


def test_nan_loss_stops_training_naming_epoch_and_batch():
    class NanAtSecondEpoch(CrossEntropy):
        calls = 0

        def loss(self, target, prediction):
            NanAtSecondEpoch.calls += 1
            value = super().loss(target, prediction)
            return value * np.nan if NanAtSecondEpoch.calls == 6 + 3 else value

    trainer, model, _ = make(max_epoch=3)
    trainer.loss = NanAtSecondEpoch()
    assert len(trainer.train_set) == 6
    with pytest.raises(NonFiniteLossError, match=r"epoch 2/3, batch 3/6: the loss is nan") as info:
        trainer.train()
    assert isinstance(info.value, ValueError) and isinstance(info.value, FloatingPointError)
    assert trainer.epoch == 1


def test_nan_loss_with_on_nan_warn_skips_the_update():
    class AlwaysInf(CrossEntropy):
        def loss(self, target, prediction):
            return super().loss(target, prediction) * np.inf

    trainer, model, _ = make(max_epoch=1, on_nan="warn", evaluator=None)
    trainer.loss = AlwaysInf()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    with pytest.warns(RuntimeWarning, match=r"epoch 1/1, batch \d/6: the loss is inf"):
        history = trainer.train()
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])
    assert np.isnan(history["loss"][0])


def test_shape_mismatch_fails_at_first_batch_naming_layer_shapes_and_position():
    tinyai.seed(0)
    dataset = ArrayDataset(np.zeros((20, 5), np.float32), np.zeros(20, np.int64), batch_size=8)
    model = RecordingNet(3, 4, 2)           # expects 3 features, data has 5
    trainer = Trainer(2, progress=None)
    trainer.init(dataset, model, CrossEntropy(), optim.SGD(model, lr=0.1))
    with pytest.raises(ValueError) as info:
        trainer.train()
    message = str(info.value)
    assert "epoch 1/2, batch 1/" in message
    assert "Linear 'fc1'" in message and "3 features" in message and "(8, 5)" in message
    assert "(batch x shape (8, 5), y shape (8,))" in message


def test_context_manager_and_keyword_construction():
    monitor = Monitor()
    with Trainer(max_epoch=1, monitor=monitor, evaluator=AccuracyEval(), progress=None) as trainer:
        tinyai.seed(1)
        model = RecordingNet(2, 8, 3)
        trainer.init(dataset=blob_dataset(), model=model, loss=CrossEntropy(), optimizer=optim.SGD(model, lr=0.1))
        trainer.train(shuffle=False)
        assert trainer.evaluate()["test_accuracy"] == monitor.history["test_accuracy"][0]
    assert monitor.epochs_done == 1


def test_one_line_construction_trains_like_init_and_init_chains():
    def run(how):
        tinyai.seed(4)
        model = RecordingNet(2, 8, 3)
        parts = dict(dataset=blob_dataset(), model=model, loss=CrossEntropy(), optimizer=optim.SGD(model, lr=0.1))
        if how == "keywords":
            trainer = Trainer(2, evaluator=AccuracyEval(), progress=None, **parts)
            assert trainer.model is model
        else:
            trainer = Trainer(2, evaluator=AccuracyEval(), progress=None).init(**parts)
        return trainer.train(shuffle=False), model

    (by_keywords, model_a), (by_init, model_b) = run("keywords"), run("init")
    assert by_keywords["loss"] == by_init["loss"] and len(by_init["loss"]) == 2
    for (name, a), (_, b) in zip(model_a.named_params(), model_b.named_params()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=name)
    model = RecordingNet(2, 8, 3)
    with pytest.raises(TypeError, match="missing loss, optimizer"):
        Trainer(1, dataset=blob_dataset(), model=model)


def test_shuffle_changes_batch_order_only_when_asked():
    def first_batch_x(shuffle):
        trainer, model, _ = make(max_epoch=1, evaluator=None, lr=0.0)
        seen = []
        original = model.forward
        model.forward = lambda x: (seen.append(x.data.copy()), original(x))[1]
        trainer.train(shuffle=shuffle)
        return seen[0]

    plain = first_batch_x(False)
    np.testing.assert_array_equal(plain, blob_dataset().get_train_dataset().x[:16])
    assert not np.array_equal(first_batch_x(True), plain)


def test_misuse_is_reported():
    with pytest.raises(ValueError, match="max_epoch"):
        Trainer(-1)
    with pytest.raises(ValueError, match="on_nan"):
        Trainer(1, on_nan="ignore")
    with pytest.raises(ValueError, match="progress"):
        Trainer(1, progress="fancy")
    with pytest.raises(ValueError, match="init"):
        Trainer(1).train()
    trainer, _, _ = make(evaluator=None)
    with pytest.raises(ValueError, match="no evaluator"):
        trainer.evaluate()
    with pytest.raises(TypeError, match="optimizer of type int"):
        Trainer(1).init(blob_dataset(), nn.Linear(2, 3), CrossEntropy(), 3)


# -- the progress display --------------------------------------------------------

def test_line_progress_prints_one_summary_per_epoch():
    stream = io.StringIO()
    trainer, _, _ = make(max_epoch=3, progress=False, stream=stream)
    trainer.train()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("epoch 1/3: loss ")
    assert all("test_accuracy" in line and "samples/s" in line for line in lines)


def test_bar_progress_is_one_bar_per_train_call_with_a_line_per_epoch(monkeypatch):
    tqdm = pytest.importorskip("tqdm").tqdm
    bars = []

    class CountedTqdm(tqdm):                 # the real text bar, counted
        def __init__(self, *args, **kwargs):
            bars.append(self)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(progress_module, "_load_tqdm", lambda: CountedTqdm)
    stream = io.StringIO()
    trainer, _, _ = make(max_epoch=3, progress="bar", stream=stream)  # asked for by name: drawn on any stream
    trainer.train()
    assert len(bars) == 1                     # not one per epoch
    assert bars[0].disable or bars[0].n == 6  # the bar counted the last epoch's 6 batches
    # Each epoch's summary is a whole line of its own, which a saved notebook keeps.
    lines = [line.split("\r")[-1] for line in stream.getvalue().split("\n")]
    summaries = [line for line in lines if line.startswith("epoch ") and ": loss " in line]
    assert [line[:11] for line in summaries] == ["epoch 1/3: ", "epoch 2/3: ", "epoch 3/3: "]
    assert all("test_accuracy" in line and "samples/s" in line for line in summaries)
    trainer.max_epoch = 4
    trainer.train()                           # a second call: a second bar
    assert len(bars) == 2


def test_bar_falls_back_to_lines_without_tqdm(monkeypatch):
    monkeypatch.setattr(progress_module, "_load_tqdm", lambda: None)
    stream = io.StringIO()
    trainer, _, _ = make(max_epoch=2, progress="bar", stream=stream)
    trainer.train()
    assert [line[:11] for line in stream.getvalue().splitlines()] == ["epoch 1/2: ", "epoch 2/2: "]


def test_the_default_bar_is_drawn_only_where_someone_watches(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    class Closed(io.StringIO):
        def isatty(self):
            raise ValueError("I/O operation on closed file")

    assert progress_module.TrainingProgress("auto", 1, Terminal()).mode == "bar"
    assert progress_module.TrainingProgress("auto", 1, io.StringIO()).mode == "line"
    assert progress_module.TrainingProgress("auto", 1, Closed()).mode == "line"
    assert progress_module.TrainingProgress("bar", 1, io.StringIO()).mode == "bar"
    # In a notebook the output is no terminal, but the bar is a widget there.
    monkeypatch.setattr(progress_module, "_in_jupyter_kernel", lambda: True)
    monkeypatch.setattr(progress_module.sys, "stdout", io.StringIO())
    assert progress_module.TrainingProgress("auto", 1).mode == "bar"
    assert Trainer(1).progress == "auto"


def test_a_log_file_gets_the_epoch_lines_without_the_bar(tmp_path):
    # tinyai train ... > log.txt: a real process whose stdout is a file, not a terminal.
    pytest.importorskip("tqdm")
    log = tmp_path / "log.txt"
    with open(log, "w") as out:
        subprocess.run([sys.executable, "-m", "tinyai", "train", "--example", "spiral", "--epochs", "2",
                        "--batch-size", "30"], stdout=out, stderr=subprocess.PIPE, check=True, timeout=120,
                       cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    text = log.read_text()
    assert "\r" not in text and "batch/s" not in text and "%|" not in text
    epochs = [line for line in text.splitlines() if line.startswith("epoch ")]
    assert [line[:11] for line in epochs] == ["epoch 1/2: ", "epoch 2/2: "]
    assert all(": loss " in line and "samples/s" in line for line in epochs)


def test_progress_off_writes_nothing(capsys):
    trainer, _, _ = make(max_epoch=2, progress=None)
    trainer.train()
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_batches_follow_the_model_to_another_backend():
    # The CPU stand-in for CuPy refuses to mix with NumPy arrays, as a GPU does:
    # training a model moved there works only if every batch is moved too.
    from tinyai.testing.standin import StandInArray, to_standin

    trainer, model, _ = make(max_epoch=3)
    model._move(to_standin)
    history = trainer.train()
    assert isinstance(model.fc1.W.data, StandInArray)
    assert history["loss"][-1] < history["loss"][0]
    assert history["test_accuracy"][-1] >= 0.9


def test_jupyter_without_ipywidgets_gets_the_text_bar_not_a_warning(monkeypatch):
    tqdm = pytest.importorskip("tqdm")
    monkeypatch.setattr(progress_module, "_in_jupyter_kernel", lambda: True)
    real_find_spec = progress_module.importlib.util.find_spec
    monkeypatch.setattr(progress_module.importlib.util, "find_spec",
                        lambda name, *args: None if name == "ipywidgets" else real_find_spec(name, *args))
    assert progress_module._load_tqdm() is tqdm.std.tqdm
    monkeypatch.setattr(progress_module, "_in_jupyter_kernel", lambda: False)
    from tqdm.auto import tqdm as auto_bar
    assert progress_module._load_tqdm() is auto_bar
