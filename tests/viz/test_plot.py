"""Plot helpers: real PNG files, and decision regions that follow the model."""
import sys

import numpy as np
import pytest

import tinyai as ta
from tinyai.viz import Plot
from tinyai.viz.plot import decision_grid, predict_classes

PNG = b"\x89PNG\r\n\x1a\n"
pytest.importorskip("matplotlib", reason="matplotlib (the viz extra) is not installed")


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == PNG
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def two_blobs():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-1.5, 0.5, (30, 2)), rng.normal(1.5, 0.5, (30, 2))])
    t = np.repeat([0, 1], 30)
    return x, t


def linear_scores(points):
    # Class 1 to the right of x = 0, as a model returning a Variable would.
    p = points.data if isinstance(points, ta.Variable) else points
    return ta.Variable(np.stack([-p[:, 0], p[:, 0]], axis=1))


def test_decision_regions_png(tmp_path):
    x, t = two_blobs()
    path = Plot(title="blobs").decision_regions(linear_scores, x, t, resolution=50).save(tmp_path / "r.png")
    assert png_size(path) == (600, 450)  # 6 x 4.5 inches at 100 dpi


def test_line_png(tmp_path):
    path = Plot(xlabel="epoch", ylabel="loss").line([1.0, 0.5, 0.3], label="train").line(
        np.array([1.1, 0.7, 0.6]), x=[1, 2, 3], label="test").save(tmp_path / "loss.png", dpi=50)
    assert png_size(path) == (300, 225)


def test_regions_follow_the_model():
    x, _ = two_blobs()
    gx, gy, grid = decision_grid(x, 20, 0.5)
    assert grid.shape == (400, 2) and gx.shape == (20, 20)
    assert grid[:, 0].min() == pytest.approx(x[:, 0].min() - 0.5)
    classes = predict_classes(linear_scores, grid)
    np.testing.assert_array_equal(classes, (grid[:, 0] > 0).astype(int))


def test_one_score_per_point_uses_the_threshold():
    grid = np.array([[0.2, 0.0], [0.7, 0.0]])
    np.testing.assert_array_equal(predict_classes(lambda p: p[:, 0], grid, threshold=0.5), [0, 1])
    np.testing.assert_array_equal(predict_classes(lambda p: p[:, :1], grid), [1, 1])


def test_predict_runs_without_recording_a_graph():
    seen = []

    def predict(points):
        seen.append(ta.is_grad_enabled())
        return np.zeros((len(points), 2))

    predict_classes(predict, np.zeros((4, 2)))
    assert seen == [False]


def test_bad_inputs_are_named():
    x, t = two_blobs()
    with pytest.raises(ValueError, match=r"Plot.decision_regions: points must have shape \(N, 2\).*got \(60, 3\)"):
        Plot().decision_regions(linear_scores, np.zeros((60, 3)))
    with pytest.raises(ValueError, match="Plot.scatter: 60 points but 59 labels"):
        Plot().scatter(x, t[:-1])
    with pytest.raises(ValueError, match=r"predict must map points of shape \(100, 2\).*got \(100, 2, 1\)"):
        Plot().decision_regions(lambda p: np.zeros((len(p), 2, 1)), x, resolution=10)
    with pytest.raises(ValueError, match="Plot.line: x has 2 values but y has 3"):
        Plot().line([1, 2, 3], x=[0, 1])
    with pytest.raises(ValueError, match="Plot.save: nothing to draw"):
        Plot().save("never.png")


def test_one_hot_labels_are_accepted(tmp_path):
    x, t = two_blobs()
    onehot = np.eye(2)[t]
    path = Plot().scatter(x, onehot).save(tmp_path / "s.png")
    assert png_size(path)[0] > 0


def test_missing_matplotlib_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # makes the import fail
    with pytest.raises(ImportError, match=r"Plot.save: plotting needs matplotlib.*tinyai-numpy\[viz\]"):
        Plot().line([1.0, 2.0]).save(tmp_path / "x.png")


def test_plot_displays_itself_as_png_in_jupyter():
    x, t = two_blobs()
    plot = Plot(title="blobs", size=(4.0, 3.0)).decision_regions(linear_scores, x, t)
    data = plot._repr_png_()
    assert data[:8] == PNG
    assert (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")) == (400, 300)
    assert repr(plot) == "Plot(title='blobs', layers: regions, scatter)"
    assert Plot()._repr_png_() is None               # nothing drawn: the text repr stands
    assert plot.to_bytes("svg").lstrip().startswith(b"<?xml")
