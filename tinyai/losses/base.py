"""The Loss object: what a Trainer calls to turn a prediction and a target into one number.

TinyAI's loss classes have one method, ``loss(y, predict)`` — target first.
tinyai keeps that name and order, and adds ``__call__(prediction, target)``
in the order PyTorch users expect; both return the same scalar Variable.
"""
from __future__ import annotations

from typing import Any, Callable

from tinyai.autograd import Variable, as_variable
from tinyai.backend import get_array_module, is_array, to_cpu


class Loss:
    """Base class of the loss objects.

    Subclasses implement ``compute(prediction, target)`` on Variables and
    return a scalar Variable; the base class converts arrays to Variables and
    gives both calling conventions.
    """

    @property
    def name(self) -> str:
        """How error messages name this loss (the class name)."""
        return type(self).__name__

    def loss(self, target: Any, prediction: Any, *args: Any, **kwargs: Any) -> Variable:
        """TinyAI's order: ``loss(target, prediction)`` -> scalar Variable."""
        if prediction is None or target is None:
            raise TypeError(f"{self.name}: prediction and target must not be None")
        return self.compute(as_variable(prediction), as_variable(target), *args, **kwargs)

    def __call__(self, prediction: Any, target: Any, *args: Any, **kwargs: Any) -> Variable:
        """PyTorch's order: ``loss_fn(prediction, target)`` -> scalar Variable."""
        return self.loss(target, prediction, *args, **kwargs)

    def compute(self, prediction: Variable, target: Variable) -> Variable:
        """The loss of ``prediction`` against ``target``; subclasses define it."""
        raise TypeError(f"{self.name} is a Loss without compute(prediction, target)")

    def _named(self, function: Callable[..., Variable], *args: Any, **kwargs: Any) -> Variable:
        """Call a loss function; its ValueError/TypeError gets this loss's name in front."""
        try:
            return function(*args, **kwargs)
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"{self.name}: {exc}") from None

    def __repr__(self) -> str:
        return f"{self.name}()"


def on_device_of(reference: Any, array: Any) -> Any:
    """``array`` (NumPy or device array) moved to the array module of ``reference`` if it is elsewhere."""
    xp = get_array_module(reference)
    if not is_array(array):
        return xp.asarray(array)
    if get_array_module(array) is xp:
        return array
    return xp.asarray(to_cpu(array))
