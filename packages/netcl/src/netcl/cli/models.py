"""The models ``netcl train`` builds: the seed's MLP, a small CNN and a small ResNet, for any
image size."""

from __future__ import annotations

import math

from netcl.core.device import Device
from netcl.core.tensor import Tensor, ops
from netcl.core.tensor.dispatch import DeviceLike
from netcl.nn import (
    AdaptiveAvgPool2d,
    BatchNorm2d,
    Conv2d,
    Flatten,
    Linear,
    MaxPool2d,
    Module,
    ReLU,
    Sequential,
)

MODELS = ("mlp", "cnn", "resnet")


class BasicBlock(Module):
    """Two 3x3 convolutions with BatchNorm and a residual connection (He et al., 2016), the
    shortcut a strided 1x1 convolution and BatchNorm where the shape changes (torchvision's
    BasicBlock, parameter names included)."""

    def __init__(self, q: DeviceLike, channels_in: int, channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = Conv2d(q, channels_in, channels, 3, stride, padding=1, bias=False)
        self.bn1 = BatchNorm2d(q, channels)
        self.conv2 = Conv2d(q, channels, channels, 3, padding=1, bias=False)
        self.bn2 = BatchNorm2d(q, channels)
        self.downsample: Module | None = None
        if stride != 1 or channels_in != channels:
            self.downsample = Sequential(
                Conv2d(q, channels_in, channels, 1, stride, bias=False), BatchNorm2d(q, channels))

    def forward(self, x: Tensor) -> Tensor:
        out = ops.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return ops.relu(ops.add(out, shortcut))


def build_model(name: str, device: Device, image_shape: tuple[int, ...], classes: int,
                hidden: int = 256) -> Module:
    """``mlp``: Flatten, Linear(pixels, hidden), ReLU, Linear(hidden, classes) (the seed's
    model: 784-256-10 on MNIST). ``cnn``: two 3x3 convolutions (16 and 32 channels, each
    ReLU then 2x2 max-pooling), then Linear(features, hidden), ReLU, Linear(hidden, classes).
    ``resnet``: a 3x3 convolution to 16 channels with BatchNorm and ReLU, three BasicBlocks
    (16, 32 stride 2, 64 stride 2), global average pooling and Linear(64, classes)
    (``hidden`` unused); examples/resnet.py trains it on mnist5k."""
    q = device.queue
    channels, height, width = image_shape
    if name == "mlp":
        return Sequential(
            Flatten(), Linear(q, channels * height * width, hidden), ReLU(),
            Linear(q, hidden, classes),
        )
    if name == "cnn":
        features = 32 * (height // 4) * (width // 4)
        return Sequential(
            Conv2d(q, channels, 16, 3, padding=1), ReLU(), MaxPool2d(2),
            Conv2d(q, 16, 32, 3, padding=1), ReLU(), MaxPool2d(2),
            Flatten(), Linear(q, features, hidden), ReLU(), Linear(q, hidden, classes),
        )
    if name == "resnet":
        return Sequential(
            Conv2d(q, channels, 16, 3, padding=1, bias=False), BatchNorm2d(q, 16), ReLU(),
            BasicBlock(q, 16, 16, 1), BasicBlock(q, 16, 32, 2), BasicBlock(q, 32, 64, 2),
            AdaptiveAvgPool2d(1), Flatten(), Linear(q, 64, classes),
        )
    raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODELS)}")


def parameter_count(model: Module) -> int:
    return sum(math.prod(p.shape) for p in model.parameters())
