"""tinyai: deep learning from scratch on NumPy (CuPy on the GPU).

A Python port of the deep-learning core of the Java framework TinyAI.

>>> import tinyai as ta
>>> import tinyai.functions as F
>>> x = ta.Variable([1.0, 2.0, 3.0])
>>> F.sum(x * x).backward()
>>> x.grad.data.tolist()
[2.0, 4.0, 6.0]
"""
from tinyai import backend
from tinyai.autograd import (
    Function,
    Variable,
    as_variable,
    enable_grad,
    is_grad_enabled,
    is_train_mode,
    no_grad,
    test_mode,
    train_mode,
)
from tinyai import functions
from tinyai import nn
from tinyai import losses, optim
from tinyai import data
from tinyai import training
from tinyai.training import Model, Trainer
from tinyai.backend import get_array_module, is_gpu_available, seed, to_cpu, to_gpu

#: PyTorch's name for ``seed``.
manual_seed = seed

__version__ = "0.1.0"

__all__ = [
    "Variable", "Function", "as_variable", "no_grad", "enable_grad", "test_mode", "train_mode",
    "is_grad_enabled", "is_train_mode", "functions", "nn", "backend", "get_array_module",
    "is_gpu_available", "to_gpu", "to_cpu", "seed", "manual_seed",
    "optim", "losses", "Model", "training", "Trainer",
    "data",
]


def __getattr__(name: str):
    # Only reached for a missing name: says tinyai's name for a PyTorch habit.
    from tinyai.backend.pytorch_names import module_attribute_error

    raise module_attribute_error(__name__, name)
