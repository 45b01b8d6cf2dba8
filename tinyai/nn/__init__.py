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
from tinyai.nn import init

__all__ = ["Parameter", "Layer", "Block", "Linear", "init"]
