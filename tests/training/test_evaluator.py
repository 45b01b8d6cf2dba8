"""Evaluators: exact counting, test-mode evaluation, regression loss weighted by samples."""
import numpy as np
import pytest

import tinyai
from tinyai import nn
from tinyai.data.dataset import ArrayDataset
from tinyai.training.evaluator import AccuracyEval, Evaluator, RegressEval, count_correct

from trainer_helpers import SquaredError


def test_count_correct_by_hand():
    scores = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5], [0.0, 1.0, 0.0]])
    assert count_correct(scores, np.array([1, 0, 0, 1])) == 3
    assert count_correct(scores, np.array([[1], [0], [0], [1]])) == 3
    one_hot = np.eye(3)[[1, 2, 2, 1]]
    assert count_correct(scores, one_hot) == 3
    assert count_correct(np.array([0.9, 0.2, 0.6]), np.array([1, 0, 0])) == 2   # binary, threshold 0.5
    assert count_correct(tinyai.Variable(scores), np.array([0, 0, 0, 0])) == 1


def test_count_correct_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="3 targets for 4 predictions"):
        count_correct(np.zeros((4, 3)), np.zeros(3))
    with pytest.raises(ValueError, match=r"one-hot target shape \(4, 2\)"):
        count_correct(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"\(2, 2, 2\)"):
        count_correct(np.zeros((2, 2, 2)), np.zeros(2))


class Scores(nn.Layer):
    """Returns its input as class scores and records the modes it ran under."""

    def __init__(self):
        super().__init__()
        self.modes = []

    def forward(self, x):
        self.modes.append((tinyai.is_train_mode(), tinyai.is_grad_enabled(), self.training))
        return x * 1.0


def labelled(n_right: int, n: int, batch_size: int) -> ArrayDataset:
    """x one-hot of the predicted class; y right in the first n_right samples."""
    predicted = np.arange(n) % 3
    y = predicted.copy()
    y[n_right:] = (predicted[n_right:] + 1) % 3
    return ArrayDataset(np.eye(3, dtype=np.float32)[predicted], y, batch_size)


def test_accuracy_is_counted_over_samples_not_averaged_over_batches():
    # 10 samples in batches of 4, 4, 2; the first 7 are right. Per-batch rates
    # would average (1 + 0.75 + 0) / 3 = 0.583; the true fraction is 0.7.
    model = Scores()
    data = labelled(7, 10, 4)
    result = AccuracyEval(model, data, split="all").evaluate()
    assert result == {"test_accuracy": pytest.approx(0.7)}
    assert model.modes == [(False, False, False)] * 3
    assert model.training                  # train mode restored


def test_evaluator_uses_the_test_split_of_a_split_dataset():
    class Split:
        def __init__(self):
            self.train, self.test = labelled(10, 10, 5), labelled(1, 4, 5)

        def get_train_dataset(self):
            return self.train

        def get_test_dataset(self):
            return self.test

    evaluator = AccuracyEval()
    evaluator.bind(Scores(), Split())
    assert evaluator.evaluate()["test_accuracy"] == pytest.approx(0.25)


def test_regress_eval_is_the_mean_squared_error_over_all_samples():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((11, 2)).astype(np.float64)
    y = rng.standard_normal((11, 2)).astype(np.float64)
    result = RegressEval(SquaredError(), Scores(), ArrayDataset(x, y, batch_size=4), split="all").evaluate()
    assert result["test_loss"] == pytest.approx(np.mean((x - y) ** 2), rel=1e-6)


def test_missing_pieces_are_reported():
    with pytest.raises(ValueError, match="no model or data set"):
        AccuracyEval().evaluate()
    with pytest.raises(TypeError, match="must define evaluate"):
        Evaluator(Scores(), labelled(1, 3, 3)).evaluate()
    with pytest.raises(TypeError, match="split='all'"):
        AccuracyEval(Scores(), [labelled(1, 3, 3)]).evaluate()
    with pytest.raises(ValueError, match="split must be"):
        AccuracyEval(split="train")


def test_default_split_evaluates_only_the_test_part():
    data = labelled(20, 20, 2)            # 20 samples, 2 per batch: 80/20 split -> 2 test batches
    model = Scores()
    assert AccuracyEval(model, data).evaluate() == {"test_accuracy": 1.0}
    assert len(model.modes) == len(data.get_test_dataset()) == 2


def test_accuracy_eval_also_reports_the_mean_test_loss_over_samples():
    from tinyai.losses import SoftmaxCrossEntropy

    rng = np.random.default_rng(1)
    x = rng.standard_normal((10, 3))
    y = rng.integers(0, 3, 10)
    data = ArrayDataset(x, y, batch_size=4)            # batches of 4, 4, 2
    # By hand: softmax cross-entropy of each sample, averaged over the 10 samples.
    shifted = x - x.max(axis=1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    expected = -log_probabilities[np.arange(10), y].mean()
    result = AccuracyEval(Scores(), data, split="all", loss=SoftmaxCrossEntropy()).evaluate()
    assert result["test_loss"] == pytest.approx(expected, rel=1e-5)
    assert result["test_accuracy"] == pytest.approx(np.mean(x.argmax(axis=1) == y))
    # The Trainer hands its loss to an evaluator that has none.
    evaluator = AccuracyEval(split="all")
    evaluator.bind(Scores(), data, SoftmaxCrossEntropy())
    assert evaluator.evaluate()["test_loss"] == pytest.approx(expected, rel=1e-5)
