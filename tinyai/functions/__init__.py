"""Layer 2: every differentiable operation, as a Function class and a plain function.

``import tinyai.functions as F`` and write ``F.relu(F.linear(x, W, b))``.
Importing this package also gives Variable its operators (``+``, ``*``,
``@``, ``x[i]``, ``x.reshape(...)``): the autograd layer below knows graphs,
not arithmetic.
"""
from tinyai.autograd import Variable
from tinyai.functions.activations import gelu, leaky_relu, relu, sigmoid, softplus
from tinyai.functions.arithmetic import add, div, mul, neg, pow, rdiv, rpow, rsub, sub
from tinyai.functions.cast import cast
from tinyai.functions.loss import huber_loss, mean_squared_error, sigmoid_cross_entropy, softmax_cross_entropy
from tinyai.functions.math import abs, clip, cos, exp, log, maximum, minimum, sin, sqrt, tanh
from tinyai.functions.matrix import linear, matmul
from tinyai.functions.reductions import logsumexp, max, mean, min, sum, var
from tinyai.functions.shape import (
    broadcast_to,
    concat,
    expand_dims,
    flatten,
    get_item,
    reshape,
    split,
    squeeze,
    stack,
    sum_to,
    swapaxes,
    transpose,
)
from tinyai.functions.softmax import log_softmax, softmax
from tinyai.functions.conv import conv2d, conv_transpose2d
from tinyai.functions.dropout import dropout
from tinyai.functions.embedding import embedding
from tinyai.functions.im2col import col2im, im2col
from tinyai.functions.normalization import batch_norm, layer_norm
from tinyai.functions.pooling import avg_pool2d, max_pool2d


def _install_operators() -> None:
    """Attach the arithmetic operators and array-style methods to Variable."""
    Variable.__add__ = add
    Variable.__radd__ = add
    Variable.__sub__ = sub
    Variable.__rsub__ = rsub
    Variable.__mul__ = mul
    Variable.__rmul__ = mul
    Variable.__truediv__ = div
    Variable.__rtruediv__ = rdiv
    Variable.__neg__ = neg
    Variable.__pos__ = lambda self: self
    Variable.__pow__ = pow
    Variable.__rpow__ = rpow
    Variable.__matmul__ = matmul
    Variable.__rmatmul__ = lambda self, other: matmul(other, self)
    Variable.__getitem__ = get_item
    Variable.reshape = reshape
    Variable.transpose = lambda self, *axes: transpose(
        self, axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else (axes or None))
    Variable.T = property(lambda self: transpose(self))
    Variable.sum = sum
    Variable.mean = mean
    Variable.max = max
    Variable.min = min


_install_operators()

__all__ = [
    "add", "sub", "mul", "div", "neg", "pow", "rsub", "rdiv", "rpow",
    "exp", "log", "sin", "cos", "tanh", "sqrt", "abs", "clip", "maximum", "minimum",
    "sigmoid", "relu", "leaky_relu", "gelu", "softplus",
    "reshape", "transpose", "swapaxes", "broadcast_to", "sum_to", "get_item", "concat", "stack",
    "split", "expand_dims", "squeeze", "flatten",
    "sum", "mean", "max", "min", "var", "logsumexp",
    "matmul", "linear", "softmax", "log_softmax",
    "softmax_cross_entropy", "sigmoid_cross_entropy", "mean_squared_error", "huber_loss",
    "im2col", "col2im", "conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d",
    "batch_norm", "layer_norm", "dropout", "embedding", "cast",
]


def __getattr__(name: str):
    # Only reached for a missing name: says tinyai's name for a PyTorch habit.
    from tinyai.backend.pytorch_names import module_attribute_error

    raise module_attribute_error(__name__, name)
