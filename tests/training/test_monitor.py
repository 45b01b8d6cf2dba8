"""Monitor: per-epoch history, best values, summary lines, and a real PNG from plot()."""
import struct

import pytest

from tinyai.training.monitor import Monitor


def filled(losses=(1.0, 0.6, 0.7), accuracies=(0.5, 0.8, 0.9)):
    monitor = Monitor()
    for epoch, (loss, accuracy) in enumerate(zip(losses, accuracies)):
        monitor.start_new_epoch(epoch)
        monitor.collect_info(loss)
        if epoch != 1:                     # not measured in epoch 1
            monitor.collect_val_accuracy(accuracy)
        monitor.end_epoch()
    return monitor


def test_history_has_one_entry_per_epoch_with_none_where_not_measured():
    history = filled().history
    assert history["loss"] == [1.0, 0.6, 0.7]
    assert history["test_accuracy"] == [0.5, None, 0.9]
    assert history["train_accuracy"] == [None, None, None]
    assert len(history["time"]) == 3 and all(t >= 0 for t in history["time"])


def test_a_new_metric_is_back_filled_for_earlier_epochs():
    monitor = filled()
    monitor.start_new_epoch(3)
    monitor.collect("learning_rate", 0.05)
    monitor.end_epoch()
    assert monitor.history["learning_rate"] == [None, None, None, 0.05]
    assert monitor.history["loss"][3] is None


def test_best_is_lowest_loss_and_highest_accuracy():
    monitor = filled()
    assert monitor.best("loss") == 0.6
    assert monitor.best("test_accuracy") == 0.9
    assert monitor.best("train_accuracy") is None
    assert monitor.last("loss") == 0.7


def test_summary_line_names_the_epoch_and_its_numbers():
    line = filled().summary_line(0)
    assert line.startswith("epoch 1: loss 1, test_accuracy 0.5000, time ")


def test_history_is_a_copy():
    monitor = filled()
    monitor.history["loss"].append(5.0)
    assert len(monitor.history["loss"]) == 3


def test_collect_outside_an_epoch_is_an_error():
    with pytest.raises(ValueError, match="start_new_epoch"):
        Monitor().collect("loss", 1.0)
    with pytest.raises(ValueError, match="start_new_epoch"):
        Monitor().end_epoch()


def test_state_dict_round_trip_and_validation():
    monitor = filled()
    copy = Monitor()
    copy.load_state_dict(monitor.state_dict())
    assert copy.history == monitor.history
    with pytest.raises(ValueError, match="differ in length"):
        copy.load_state_dict({"loss": [1.0], "time": [1.0, 2.0]})


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("with_accuracy", [True, False])
def test_plot_writes_a_real_png(tmp_path, with_accuracy):
    pytest.importorskip("matplotlib")
    monitor = filled()
    if not with_accuracy:
        monitor = Monitor()
        for epoch, loss in enumerate((1.0, 0.5)):
            monitor.start_new_epoch(epoch)
            monitor.collect_info(loss)
            monitor.end_epoch()
    path = tmp_path / "curves.png"
    figure = monitor.plot(path)
    data = path.read_bytes()
    width, height = png_size(data)
    assert len(data) > 5000                       # drawn curves, not an empty image
    assert height == 400 and width == (1100 if with_accuracy else 550)   # figsize x dpi 100
    assert len(figure.axes) == (2 if with_accuracy else 1)
    labels = [line.get_label() for line in figure.axes[0].lines]
    assert labels == ["train loss"]
