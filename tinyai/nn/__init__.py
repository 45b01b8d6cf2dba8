"""Layer 3: Parameters, Layers, Blocks, and the ready-made layers and blocks (TinyAI's nnet).

>>> import tinyai.nn as nn
>>> net = nn.Linear(4, 2)
>>> [name for name, _ in net.named_params()]
['W', 'b']
"""
from tinyai.nn.parameter import Parameter
from tinyai.nn.layer import Layer
from tinyai.nn.block import Block
from tinyai.nn.linear import Linear
from tinyai.nn.activation import GELU, Activation, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh, get_activation
from tinyai.nn.shape import Flatten, Reshape
from tinyai.nn.recurrent import GRU, LSTM, SimpleRNN
from tinyai.nn.dropout import Dropout
from tinyai.nn.conv import Conv2d, DepthwiseSeparableConv2d
from tinyai.nn.pooling import AvgPool2d, MaxPool2d
from tinyai.nn.embedding import Embedding
from tinyai.nn.normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from tinyai.nn.attention import MultiHeadAttention
from tinyai.nn.positional import PositionalEncoding
from tinyai.nn.transformer import FeedForward, TransformerDecoderLayer, TransformerEncoderLayer
from tinyai.nn import init
from tinyai.nn.blocks import (
    GruBlock,
    LstmBlock,
    MlpBlock,
    Seq2Seq,
    Seq2SeqDecoder,
    Seq2SeqEncoder,
    SequentialBlock,
    SimpleConvNet,
    SimpleRnnBlock,
    Transformer,
    TransformerDecoder,
    TransformerEncoder,
)

#: PyTorch's name for ``SequentialBlock``.
Sequential = SequentialBlock

__all__ = [
    "Parameter", "Layer", "Block", "init",
    "Linear", "Flatten", "Reshape",
    "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU", "Softmax", "Activation", "get_activation",
    "Conv2d", "DepthwiseSeparableConv2d", "MaxPool2d", "AvgPool2d", "Embedding",
    "SimpleRNN", "LSTM", "GRU", "Dropout", "BatchNorm1d", "BatchNorm2d", "LayerNorm",
    "MultiHeadAttention", "PositionalEncoding", "FeedForward", "TransformerEncoderLayer", "TransformerDecoderLayer",
    "MlpBlock", "SequentialBlock", "Sequential", "SimpleConvNet", "SimpleRnnBlock", "LstmBlock", "GruBlock",
    "Seq2SeqEncoder", "Seq2SeqDecoder", "Seq2Seq", "TransformerEncoder", "TransformerDecoder", "Transformer",
]


def __getattr__(name: str):
    # Only reached for a missing name: says tinyai's name for a PyTorch habit.
    from tinyai.backend.pytorch_names import module_attribute_error

    raise module_attribute_error(__name__, name)
