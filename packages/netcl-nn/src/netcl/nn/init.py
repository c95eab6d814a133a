"""Initializers: fill a parameter in place, drawing from the tensor layer's seeded generator.

Random draws come from ``netcl.core.tensor.rand``/``randn``, so
``netcl.core.tensor.manual_seed`` makes a model's initial weights repeatable.
Each runs under ``no_grad``: initializing is not part of any graph.
"""

from __future__ import annotations

import math

from netcl.autograd import no_grad
from netcl.core.tensor import Tensor, ops, rand, randn


def fans(tensor: Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) as PyTorch computes them: dims 1 and 0 times the receptive field.

    A Linear weight (out, in) has fan_in = in; a Conv2d weight (out, in, kh, kw)
    has fan_in = in * kh * kw.
    """
    if tensor.ndim < 2:
        raise ValueError(f"fan in and fan out need at least 2 dimensions, got shape {tensor.shape}")
    receptive = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


# Nonlinearities whose gain is 1 (torch's table: the linear maps and sigmoid).
_UNIT_GAIN = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
              "conv_transpose3d", "sigmoid")


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The standard deviation gain of ``nonlinearity`` (PyTorch's table): 1 for the linear
    and convolution maps and sigmoid, 5/3 tanh, sqrt(2) relu, sqrt(2 / (1 + slope^2))
    leaky_relu (slope ``param``, 0.01 by default), 3/4 selu."""
    if nonlinearity in _UNIT_GAIN:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    """Fill ``tensor`` with U(a, b) (PyTorch's names)."""
    with no_grad():
        draw = rand(tensor.shape, tensor.dtype, tensor.device)
        return tensor.copy_(ops.add(ops.mul(draw, b - a), a))


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    """Fill ``tensor`` with N(mean, std^2)."""
    with no_grad():
        draw = randn(tensor.shape, tensor.dtype, tensor.device)
        return tensor.copy_(ops.add(ops.mul(draw, std), mean))


def _kaiming_std(who: str, tensor: Tensor, a: float, mode: str, nonlinearity: str) -> float:
    """He et al.'s std, gain / sqrt(fan), the fan by ``mode`` (0 for an empty tensor)."""
    fan_in, fan_out = fans(tensor)
    fan = {"fan_in": fan_in, "fan_out": fan_out}.get(mode)
    if fan is None:
        raise ValueError(f"{who}: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    return calculate_gain(nonlinearity, a) / math.sqrt(fan) if fan else 0.0


def kaiming_uniform_(
    tensor: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"
) -> Tensor:
    """He init: U(-b, b) with b = gain * sqrt(3 / fan), gain for ``nonlinearity`` (slope ``a``).

    ``a=sqrt(5)`` with the leaky-ReLU gain gives b = 1/sqrt(fan_in), the
    default of PyTorch's Linear and Conv2d weights.
    """
    bound = math.sqrt(3.0) * _kaiming_std("kaiming_uniform_", tensor, a, mode, nonlinearity)
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(
    tensor: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"
) -> Tensor:
    """He init: N(0, std^2) with std = gain / sqrt(fan), gain for ``nonlinearity`` (slope
    ``a``); torchvision's ResNets use ``mode="fan_out", nonlinearity="relu"``."""
    return normal_(tensor, 0.0, _kaiming_std("kaiming_normal_", tensor, a, mode, nonlinearity))


def xavier_uniform_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """Glorot init: U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = fans(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out)) if fan_in + fan_out else 0.0
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """Glorot init: N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = fans(tensor)
    std = gain * math.sqrt(2.0 / (fan_in + fan_out)) if fan_in + fan_out else 0.0
    return normal_(tensor, 0.0, std)


def zeros_(tensor: Tensor) -> Tensor:
    """Fill ``tensor`` with 0."""
    with no_grad():
        return tensor.fill_(0)


def ones_(tensor: Tensor) -> Tensor:
    """Fill ``tensor`` with 1."""
    with no_grad():
        return tensor.fill_(1)


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill ``tensor`` with ``val`` (PyTorch's name)."""
    with no_grad():
        return tensor.fill_(val)
