"""netcl.nn.functional: losses, activations and the layers as functions."""

from netcl.nn.functional.activations import gelu, log_softmax, relu, sigmoid, softmax, tanh
from netcl.nn.functional.layers import (
    conv2d,
    dropout,
    embedding,
    flatten,
    layer_norm,
    linear,
    max_pool2d,
)
from netcl.nn.functional.losses import (
    binary_cross_entropy_with_logits,
    cross_entropy,
    mse_loss,
    nll_loss,
)

__all__ = [
    "binary_cross_entropy_with_logits",
    "conv2d",
    "cross_entropy",
    "dropout",
    "embedding",
    "flatten",
    "gelu",
    "layer_norm",
    "linear",
    "log_softmax",
    "max_pool2d",
    "mse_loss",
    "nll_loss",
    "relu",
    "sigmoid",
    "softmax",
    "tanh",
]
