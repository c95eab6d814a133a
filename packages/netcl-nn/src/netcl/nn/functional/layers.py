"""Functional forms of the layers: the modules in netcl.nn hold parameters and call these."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from netcl.core.tensor import Tensor, dtypes, from_numpy, ops, philox
from netcl.core.tensor.autocast import to_low_precision
from netcl.core.tensor.ops.conv import IntPair
from netcl.nn.functional.normalization import float32_norm_operands, in_float32

IndexLike = Tensor | np.ndarray[Any, Any] | Sequence[int]


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x @ weight.T + bias: x (..., in), weight (out, in), bias (out,); all three in the
    low dtype under autocast, as PyTorch's linear."""
    if x.shape[-1:] != weight.shape[1:]:
        raise ValueError(
            f"linear: input of shape {x.shape} does not fit weight of shape {weight.shape} "
            f"(its last dimension must be {weight.shape[1]})"
        )
    # The weight itself, not its transposed view, is cast: a leaf's cast is cached.
    (weight,) = to_low_precision(weight)
    out = ops.matmul(x, ops.transpose(weight, 0, 1))
    if bias is None:
        return out
    (bias,) = to_low_precision(bias)
    return ops.add(out, bias)


def dropout(x: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p) (inverted dropout).

    The mask is drawn on the device (``netcl.core.tensor.philox``, seeded by
    ``netcl.core.tensor.manual_seed``), fresh on every call, also in every
    replay of a captured step (netcl.jit). Identity when not ``training`` or
    ``p == 0``. ``inplace`` (PyTorch's) computes out of place, leaving ``x``
    unchanged, as ``relu``'s does.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return ops.mul(x, 0.0)
    keep = ops.ge(philox.uniform(x.shape, x.device), p)
    scale = ops.where(keep, 1.0 / (1.0 - p), 0.0)
    return ops.mul(x, scale if scale.dtype == x.dtype else ops.cast(scale, x.dtype))


def layer_norm(
    x: Tensor,
    normalized_shape: Sequence[int],
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """(x - mean) / sqrt(var + eps) * weight + bias over the last ``len(normalized_shape)`` axes.

    The variance is the biased one (divided by the count), as in PyTorch. A 16-bit
    input is normalised in float32, the result in its dtype; under autocast the
    result is float32 (PyTorch's float32 list).
    """
    x, weight, bias = float32_norm_operands(x, weight, bias)
    if x.dtype in dtypes.LOW_PRECISION:
        return in_float32(functools.partial(
            layer_norm, normalized_shape=normalized_shape, weight=weight, bias=bias, eps=eps), x)
    shape = tuple(normalized_shape)
    if x.shape[x.ndim - len(shape) :] != shape:
        raise ValueError(
            f"layer_norm: input of shape {x.shape} does not end in normalized_shape {shape}"
        )
    axes = tuple(range(x.ndim - len(shape), x.ndim))
    centered = ops.sub(x, ops.mean(x, axes, keepdims=True))
    variance = ops.mean(ops.mul(centered, centered), axes, keepdims=True)
    out = ops.div(centered, ops.sqrt(ops.add(variance, eps)))
    if weight is not None:
        out = ops.mul(out, weight)
    if bias is not None:
        out = ops.add(out, bias)
    return out


def embedding(indices: IndexLike, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """Rows of ``weight`` (num_embeddings, dim) at integer ``indices``: shape (*indices.shape, dim).

    The gradient of a row used several times is the sum of its uses; the row
    ``padding_idx`` (negative: counted from the end) gets no gradient, though
    its value is returned, as in torch. An index outside ``[0, num_embeddings)``
    is an error, found on the device and raised as ValueError at the next read
    from it (no wait for the queue here); until then its row reads as row 0.
    """
    rows = weight.shape[0]
    if padding_idx is not None:
        if not -rows <= padding_idx < rows:
            raise ValueError(
                f"embedding: padding_idx {padding_idx} is out of range for {rows} embeddings"
            )
        padding_idx %= rows
    if not isinstance(indices, Tensor):
        indices = from_numpy(np.asarray(indices, dtype=np.int64), weight.device)
    flat = ops.reshape(indices, (-1,))

    def describe(index: int) -> str:
        return (f"embedding: index {index} is out of range for {rows} embeddings "
                f"(valid: 0 to {rows - 1})")

    picked = ops.index_select(weight, 0, ops.checked_indices("embedding", flat, rows, describe))
    if padding_idx is not None:
        # The padding row's value, held constant: no gradient flows back into it.
        padded = ops.reshape(ops.eq(flat, padding_idx), (-1, 1))
        picked = ops.where(padded, picked.detach(), picked)
    return ops.reshape(picked, (*indices.shape, weight.shape[1]))


def conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
) -> Tensor:
    """2-D cross-correlation, as PyTorch's conv2d: x (N, C, H, W), weight (O, C, KH, KW).

    An implicit GEMM per image on matmul's tiled kernel (``ops.conv2d``): the
    input is read in place, no unfolded copy of it is made. On a CPU the bias
    goes into ``ops.conv2d``, which adds it while reordering its product (a
    separate broadcast add of the bias cost more than the convolution there);
    elsewhere it stays a broadcast add (the GPU keeps its kernels).
    """
    if bias is not None and x.device.type == "cpu":
        return ops.conv2d(x, weight, stride, padding, dilation, bias=bias)
    out = ops.conv2d(x, weight, stride, padding, dilation)
    if bias is not None:
        out = ops.add(out, ops.reshape(bias, (1, weight.shape[0], 1, 1)))
    return out


def max_pool2d(
    x: Tensor,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    dilation: IntPair = 1,
) -> Tensor:
    """The max over each window of x (N, C, H, W); ``stride`` defaults to ``kernel_size``."""
    out, _ = ops.max_pool2d(x, kernel_size, stride, padding, dilation)
    return out


def flatten(x: Tensor, start_dim: int = 1, end_dim: int = -1) -> Tensor:
    """Axes ``start_dim`` to ``end_dim`` merged into one (by default all but the batch axis)."""
    return ops.flatten(x, start_dim, end_dim)


