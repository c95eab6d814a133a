"""The models ``netcl train`` builds: the seed's MLP and a small CNN, for any image size."""

from __future__ import annotations

import math

from netcl.core.device import Device
from netcl.nn import Conv2d, Flatten, Linear, MaxPool2d, Module, ReLU, Sequential

MODELS = ("mlp", "cnn")


def build_model(name: str, device: Device, image_shape: tuple[int, ...], classes: int,
                hidden: int) -> Module:
    """``mlp``: Flatten, Linear(pixels, hidden), ReLU, Linear(hidden, classes) (the seed's
    model: 784-256-10 on MNIST). ``cnn``: two 3x3 convolutions (16 and 32 channels, each
    ReLU then 2x2 max-pooling), then Linear(features, hidden), ReLU, Linear(hidden, classes)."""
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
    raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODELS)}")


def parameter_count(model: Module) -> int:
    return sum(math.prod(p.shape) for p in model.parameters())
