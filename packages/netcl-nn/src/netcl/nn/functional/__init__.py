"""netcl.nn.functional: losses, activations and the layers as functions."""

from netcl.nn.functional.activations import (
    gelu,
    leaky_relu,
    log_softmax,
    relu,
    sigmoid,
    silu,
    softmax,
    tanh,
)
from netcl.nn.functional.attention import scaled_dot_product_attention
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
from netcl.nn.functional.normalization import batch_norm, group_norm, rms_norm
from netcl.nn.functional.pooling import adaptive_avg_pool2d, avg_pool2d

__all__ = [
    "adaptive_avg_pool2d",
    "avg_pool2d",
    "batch_norm",
    "binary_cross_entropy_with_logits",
    "conv2d",
    "cross_entropy",
    "dropout",
    "embedding",
    "flatten",
    "gelu",
    "group_norm",
    "layer_norm",
    "leaky_relu",
    "linear",
    "log_softmax",
    "max_pool2d",
    "mse_loss",
    "nll_loss",
    "relu",
    "rms_norm",
    "scaled_dot_product_attention",
    "sigmoid",
    "silu",
    "softmax",
    "tanh",
]
