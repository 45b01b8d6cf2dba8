"""SimpleConvNet (TinyAI's SimpleConvNet): a small convolutional classifier for MNIST-sized images."""
from __future__ import annotations

from typing import Any, Sequence

from tinyai.autograd import Variable
from tinyai.backend.settings import is_int
from tinyai.nn.activation import ReLU
from tinyai.nn.block import Block
from tinyai.nn.conv import Conv2d
from tinyai.nn.layer import _check_variable
from tinyai.nn.linear import Linear
from tinyai.nn.pooling import MaxPool2d
from tinyai.nn.shape import Flatten


class SimpleConvNet(Block):
    """(conv 3x3 pad 1 -> ReLU -> max-pool 2x2) twice, then flatten and one Linear layer.

    Args:
        name: the block's name.
        in_channels: image channels (1 for MNIST).
        image_size: height = width of the input (28 for MNIST); each pooling halves it.
        num_classes: outputs (logits).
        channels: output channels of the two convolutions.

    Shapes: (N, in_channels, image_size, image_size) -> (N, num_classes).
    With the defaults: 1x28x28 -> 16x14x14 -> 32x7x7 -> 1568 -> 10.
    """

    def __init__(self, name: str = "convnet", in_channels: int = 1, image_size: int = 28, num_classes: int = 10,
                 channels: Sequence[int] = (16, 32)) -> None:
        super().__init__(name)
        if len(channels) != 2:
            raise ValueError(f"{self._label()}: channels must give two sizes, got {tuple(channels)}")
        if not is_int(image_size) or image_size < 4:
            raise ValueError(f"{self._label()}: image_size must be an int >= 4 (two 2x2 poolings), got {image_size!r}")
        self.in_channels = in_channels
        self.image_size = image_size
        self.conv1 = Conv2d(in_channels, channels[0], 3, pad=1)
        self.relu1 = ReLU()
        self.pool1 = MaxPool2d(2)
        self.conv2 = Conv2d(channels[0], channels[1], 3, pad=1)
        self.relu2 = ReLU()
        self.pool2 = MaxPool2d(2)
        self.flatten = Flatten()
        side = image_size // 2 // 2
        self.fc = Linear(channels[1] * side * side, num_classes)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The shape of one input image: (channels, height, width)."""
        return (self.in_channels, self.image_size, self.image_size)

    def forward(self, x: Any) -> Variable:
        x = _check_variable(self, x)
        expected = (self.in_channels, self.image_size, self.image_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"{self._label()}: expected images of shape (N, {', '.join(map(str, expected))}), "
                             f"got {tuple(x.shape)}")
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        return self.fc(self.flatten(x))
