"""Tools for testing differentiable code: gradient checks and hypothesis strategies.

Meant for tinyai's own suite and for yours: ``gradcheck(my_function, x)`` in
a test proves a hand-written backward right.
"""
from tinyai.testing.gradcheck import gradcheck, gradgradcheck, numerical_grad

__all__ = ["gradcheck", "gradgradcheck", "numerical_grad"]
