"""Layer 4: loss objects (TinyAI's ml.loss), built on the loss functions of tinyai.functions.

Each has TinyAI's ``loss(target, prediction)`` and ``__call__(prediction, target)``:

>>> import numpy as np
>>> loss = SoftmaxCrossEntropy()
>>> round(float(loss(np.zeros((2, 4)), np.array([1, 3])).data), 4)   # log(4)
1.3863
"""
from tinyai.losses.base import Loss
from tinyai.losses.classification import MaskedSoftmaxCrossEntropy, SigmoidCrossEntropy, SoftmaxCrossEntropy
from tinyai.losses.regression import Huber, MeanSquaredLoss

#: PyTorch's names for the same classes.
CrossEntropyLoss = SoftmaxCrossEntropy
MSELoss = MeanSquaredLoss

__all__ = ["Loss", "SoftmaxCrossEntropy", "MaskedSoftmaxCrossEntropy", "SigmoidCrossEntropy",
           "MeanSquaredLoss", "Huber", "CrossEntropyLoss", "MSELoss"]


def __getattr__(name: str):
    # Only reached for a missing name: says tinyai's name for a PyTorch habit.
    from tinyai.backend.pytorch_names import module_attribute_error

    raise module_attribute_error(__name__, name)
