"""Normalisations over batches, groups and features: batch_norm, group_norm, rms_norm."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np

from netcl.core.tensor import Tensor, dtypes, ops
from netcl.core.tensor.autocast import to_float32


def float32_norm_operands(x: Tensor, weight: Tensor | None, bias: Tensor | None
                          ) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """A norm's input and affine parameters as autocast's float32 list takes them (16-bit
    floats cast up inside autocast; unchanged outside it)."""
    x, *affine = to_float32(x, *(t for t in (weight, bias) if t is not None))
    return (x, affine.pop(0) if weight is not None else None,
            affine.pop(0) if bias is not None else None)


def in_float32(norm: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """``norm`` of a 16-bit ``x`` computed in float32 and rounded back to x's dtype, as
    PyTorch's norms compute in float32 and return their input's dtype."""
    return ops.cast(norm(ops.cast(x, dtypes.float32)), x.dtype)


def _per_channel(t: Tensor, ndim: int) -> Tensor:
    """A (C,) tensor shaped (1, C, 1, ...) to broadcast over an (N, C, ...) input."""
    return ops.reshape(t, (1, t.shape[0]) + (1,) * (ndim - 2))


def _normalized(x: Tensor, mean: Tensor, var: Tensor, eps: float) -> Tensor:
    return ops.div(ops.sub(x, mean), ops.sqrt(ops.add(var, eps)))


def _affine(out: Tensor, weight: Tensor | None, bias: Tensor | None) -> Tensor:
    if weight is not None:
        out = ops.mul(out, _per_channel(weight, out.ndim))
    if bias is not None:
        out = ops.add(out, _per_channel(bias, out.ndim))
    return out


def batch_norm(
    x: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float | Tensor = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """(x - mean) / sqrt(var + eps) * weight + bias per channel (axis 1), as PyTorch.

    Training (or without running statistics): the batch's mean and biased
    variance over every axis but 1; the running ones, when given, are updated
    in place to ``(1 - momentum) * running + momentum * batch`` with the
    batch's unbiased variance (``momentum`` a float, or a 0-d float32 tensor
    on the device for a cumulative average). Otherwise the running statistics.

    A 16-bit input is normalised in float32 and the result rounded back to its
    dtype, as PyTorch's (autocast leaves batch_norm alone, as PyTorch's does).
    """
    if x.dtype in dtypes.LOW_PRECISION:
        return in_float32(functools.partial(
            batch_norm, running_mean=running_mean, running_var=running_var, weight=weight,
            bias=bias, training=training, momentum=momentum, eps=eps), x)
    if x.ndim < 2:
        raise ValueError(f"batch_norm: expected an (N, C, ...) input, got shape {x.shape}")
    channels = x.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        if t is not None and t.shape != (channels,):
            raise ValueError(
                f"batch_norm: {name} of shape {t.shape} does not fit the {channels} channels "
                f"of input {x.shape}"
            )
    if not training and running_mean is not None and running_var is not None:
        mean = _per_channel(running_mean, x.ndim)
        var = _per_channel(running_var, x.ndim)
        return _affine(_normalized(x, mean, var, eps), weight, bias)
    count = x.size // max(channels, 1)
    if count <= 1:
        raise ValueError(
            f"batch_norm: expected more than 1 value per channel when training, got input "
            f"shape {x.shape}"
        )
    axes = (0, *range(2, x.ndim))
    mean = ops.mean(x, axes, keepdims=True)
    centered = ops.sub(x, mean)
    var = ops.mean(ops.mul(centered, centered), axes, keepdims=True)
    if training and running_mean is not None and running_var is not None:
        batch_mean = ops.reshape(mean.detach(), (channels,))
        unbiased = ops.mul(ops.reshape(var.detach(), (channels,)), count / (count - 1))
        for running, batch in ((running_mean, batch_mean), (running_var, unbiased)):
            # running += momentum * (batch - running), PyTorch's update rearranged
            ops.add_(running, ops.mul(ops.sub(batch, running), momentum))
    out = ops.div(centered, ops.sqrt(ops.add(var, eps)))
    return _affine(out, weight, bias)


def group_norm(
    x: Tensor, num_groups: int, weight: Tensor | None = None, bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise each of ``num_groups`` groups of channels of every sample over the group's
    channels and positions (biased variance), then scale and shift per channel. A 16-bit
    input is normalised in float32, the result in its dtype; under autocast the result
    is float32 (PyTorch's float32 list on CUDA)."""
    x, weight, bias = float32_norm_operands(x, weight, bias)
    if x.dtype in dtypes.LOW_PRECISION:
        return in_float32(functools.partial(
            group_norm, num_groups=num_groups, weight=weight, bias=bias, eps=eps), x)
    if x.ndim < 2 or x.shape[1] % num_groups:
        raise ValueError(
            f"group_norm: input of shape {x.shape} must be (N, C, ...) with C divisible by "
            f"num_groups={num_groups}"
        )
    grouped = ops.reshape(x, (x.shape[0], num_groups, -1))
    mean = ops.mean(grouped, 2, keepdims=True)
    centered = ops.sub(grouped, mean)
    var = ops.mean(ops.mul(centered, centered), 2, keepdims=True)
    out = ops.reshape(ops.div(centered, ops.sqrt(ops.add(var, eps))), x.shape)
    return _affine(out, weight, bias)


def rms_norm(
    x: Tensor, normalized_shape: Sequence[int], weight: Tensor | None = None,
    eps: float | None = None,
) -> Tensor:
    """x / sqrt(mean(x^2) + eps) * weight over the last ``len(normalized_shape)`` axes;
    ``eps`` defaults to the machine epsilon of the dtype it is computed in (float32 for a
    16-bit x), as ``torch.nn.functional.rms_norm``.
    A 16-bit input is normalised in float32, the result in its dtype, inside autocast
    too (PyTorch's CUDA autocast lists leave rms_norm out, unlike layer_norm).
    """
    shape = tuple(normalized_shape)
    if x.shape[x.ndim - len(shape):] != shape:
        raise ValueError(
            f"rms_norm: input of shape {x.shape} does not end in normalized_shape {shape}"
        )
    if x.dtype in dtypes.LOW_PRECISION:
        return in_float32(functools.partial(
            rms_norm, normalized_shape=shape, weight=weight, eps=eps), x)
    if eps is None:
        eps = float(np.finfo(x.dtype if x.dtype != dtypes.bool_ else np.float32).eps)
    axes = tuple(range(x.ndim - len(shape), x.ndim))
    mean_square = ops.mean(ops.mul(x, x), axes, keepdims=True)
    out = ops.div(x, ops.sqrt(ops.add(mean_square, eps)))
    return out if weight is None else ops.mul(out, weight)
