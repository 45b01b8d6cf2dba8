"""Predictor: inference in test mode without a graph, through a Translator."""
import numpy as np
import pytest

import tinyai
from tinyai import nn
from tinyai.training.predictor import ClassTranslator, Predictor, Translator


class Doubler(nn.Layer):
    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append((tinyai.is_train_mode(), tinyai.is_grad_enabled(), self.training, x.dtype))
        return x * 2.0


def test_pass_through_translator_returns_the_model_output_as_numpy():
    model = Doubler()
    out = Predictor(None, model).predict([[1.0, -2.0]])
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, [[2.0, -4.0]])
    assert model.seen == [(False, False, False, tinyai.backend.get_default_dtype())]
    assert model.training


def test_class_translator_gives_indices_or_labels():
    scores = np.array([[0.1, 0.7, 0.2], [3.0, 1.0, 2.0]], dtype=np.float32)
    np.testing.assert_array_equal(Predictor(ClassTranslator(), Doubler()).predict(scores), [1, 0])
    assert Predictor(ClassTranslator(["cat", "dog", "eel"]), Doubler())(scores) == ["dog", "cat"]
    with pytest.raises(ValueError, match="2 labels for 3 classes"):
        Predictor(ClassTranslator(["a", "b"]), Doubler()).predict(scores)


def test_custom_translator():
    class Sentence(Translator):
        def input_to_array(self, text):
            return np.array([[float(len(word)) for word in text.split()]], dtype=np.float32)

        def array_to_output(self, array):
            return int(array.sum())

    assert Predictor(Sentence(), Doubler()).predict("to be or not") == 2 * (2 + 2 + 2 + 3)


def test_inputs_follow_the_model_to_another_backend():
    from tinyai.testing.standin import to_standin

    model = nn.Linear(2, 3)
    expected = Predictor(None, model).predict(np.ones((1, 2), np.float32))
    model._move(to_standin)
    out = Predictor(None, model).predict(np.ones((1, 2), np.float32))
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_a_device_array_is_fed_as_it_is():
    # A device array (here the CPU stand-in for CuPy, which refuses np.asarray)
    # must reach a model on that device without a round trip through the host.
    from tinyai.testing.standin import to_standin
    from tinyai.backend import get_array_module

    x = to_standin(np.ones((1, 2), np.float32))
    assert Translator().input_to_array(x) is x
    model = nn.Linear(2, 3)
    model._move(to_standin)
    out = Predictor(Translator(), model).predict(x)
    assert get_array_module(out) is np and out.shape == (1, 3)
