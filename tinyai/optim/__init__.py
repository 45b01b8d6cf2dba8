"""Layer 4: optimizers, gradient clipping and learning-rate schedules (TinyAI's ml.optimize).

>>> opt = tinyai.optim.Adam(model, lr=1e-3)    # doctest: +SKIP
>>> loss.backward(); opt.update()              # doctest: +SKIP
"""
from tinyai.optim.adam import Adam, AdamW
from tinyai.optim.adaptive import AdaGrad, RMSprop
from tinyai.optim.optimizer import Optimizer, clip_grad_norm
from tinyai.optim.schedules import CosineAnnealing, LinearWarmup, LRSchedule, StepLR, warmup_cosine
from tinyai.optim.sgd import SGD, Momentum

__all__ = [
    "Optimizer", "SGD", "Momentum", "AdaGrad", "RMSprop", "Adam", "AdamW", "clip_grad_norm",
    "LRSchedule", "StepLR", "CosineAnnealing", "LinearWarmup", "warmup_cosine",
]


def __getattr__(name: str):
    # Only reached for a missing name: says tinyai's name for a PyTorch habit.
    from tinyai.backend.pytorch_names import module_attribute_error

    raise module_attribute_error(__name__, name)
