"""Layer 1: Variable, Function, backward, and the thread-safe configuration."""
from tinyai.autograd.config import (
    enable_grad,
    is_grad_enabled,
    is_train_mode,
    no_grad,
    test_mode,
    train_mode,
)
from tinyai.autograd.function import Function
from tinyai.autograd.variable import Variable, as_variable

__all__ = [
    "Variable", "Function", "as_variable", "no_grad", "enable_grad", "test_mode",
    "train_mode", "is_grad_enabled", "is_train_mode",
]
