"""Predictor: a trained model applied to new inputs (TinyAI's inference package).

A ``Translator`` turns the user's input into an array the model accepts and
the model's output array into the answer the user wants; the ``Predictor``
runs the model in between, in test mode and without recording a graph.

>>> # predictor = Predictor(ClassTranslator(), model)
>>> # predictor.predict(images)          # -> array of class indices
"""
from __future__ import annotations

from typing import Any

import numpy as np

from tinyai.autograd import Variable
from tinyai.backend import device_of, get_array_module, get_default_dtype, is_array, to_cpu
from tinyai.training.evaluator import evaluation
from tinyai.training.placement import model_device


class Translator:
    """Converts inputs to arrays and output arrays to results (TinyAI's
    ``input2NdArray`` / ``ndArray2Output``). This base class passes arrays
    through: float inputs get the default dtype, and the output is returned
    as a NumPy array."""

    def input_to_array(self, data: Any) -> Any:
        """The array fed to the model for ``data``."""
        if isinstance(data, Variable):
            return data.data
        if is_array(data) and get_array_module(data) is not np:
            return data  # already on a device: Predictor.predict moves it only if the model lives elsewhere
        array = np.asarray(data)
        if array.dtype.kind == "f":
            # Float data in the model's precision; integer data (token ids) stays as it is.
            array = array.astype(get_default_dtype(), copy=False)
        return array

    def array_to_output(self, array: Any) -> Any:
        """The result returned to the user for the model's output ``array``."""
        return to_cpu(array)


class ClassTranslator(Translator):
    """Output rows of class scores become class indices, or labels if given.

    Args:
        labels: optional names, ``labels[i]`` for class i.
    """

    def __init__(self, labels: list | None = None) -> None:
        self.labels = None if labels is None else list(labels)

    def array_to_output(self, array: Any) -> Any:
        scores = to_cpu(array)
        if scores.ndim != 2:
            raise ValueError(f"ClassTranslator: expected class scores of shape (N, C), got {scores.shape}")
        indices = np.argmax(scores, axis=1)
        if self.labels is None:
            return indices
        if len(self.labels) != scores.shape[1]:
            raise ValueError(f"ClassTranslator: {len(self.labels)} labels for {scores.shape[1]} classes")
        return [self.labels[i] for i in indices]


class Predictor:
    """Runs a trained model on new data (TinyAI's ``Predictor(translator, model)``).

    Args:
        translator: a ``Translator``; None means the pass-through ``Translator()``.
        model: the trained model.

    ``predict`` runs under ``no_grad`` and ``test_mode`` with the model in
    eval mode, so dropout is off and batch norm uses its running statistics.
    """

    def __init__(self, translator: Translator | None, model: Any) -> None:
        self.translator = Translator() if translator is None else translator
        self.model = model

    def predict(self, data: Any) -> Any:
        """The translated model output for ``data`` (a batch: first axis = samples)."""
        array = self.translator.input_to_array(data)
        with evaluation(self.model):
            device = model_device(self.model)
            if device != device_of(array):
                array = device.put(array)  # onto the model's device
            output = self.model(Variable(array, requires_grad=False))
        return self.translator.array_to_output(output.data)

    __call__ = predict
