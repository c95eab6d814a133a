"""Masks and what takes them: tril, triu and masked_fill, as PyTorch names them.

The triangle is a bool mask made by a kernel on the device (masks.cl), so a
causal mask costs a launch and no host upload, and a jitted step replays it;
the values then go through ``where``, whose rule is the gradient.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from netcl.core.device import Device
from netcl.core.tensor import dtypes
from netcl.core.tensor.dispatch import empty
from netcl.core.tensor.launch import launch
from netcl.core.tensor.ops.elementwise import broadcasts_to, cast, where
from netcl.core.tensor.tensor import Scalar, Tensor, type_name

KERNEL_FILE = Path(__file__).with_name("masks.cl")


def triangle(rows: int, cols: int, diagonal: int, lower: bool, device: Device) -> Tensor:
    """A bool (rows, cols) tensor, True on and below (``lower``) or on and above the
    ``diagonal``-th diagonal (0 the main one, positive above it)."""
    out = empty((rows, cols), dtypes.bool_, device)
    kernel = device.kernels.kernel(KERNEL_FILE, "triangle", {"LOWER": int(lower)})
    launch(device, kernel, out.size, out.buffer, np.int32(rows), np.int32(cols),
           np.int32(diagonal))
    return out


def _triangular(op: str, x: Tensor, diagonal: int, lower: bool) -> Tensor:
    if x.ndim < 2:
        raise ValueError(f"{op}: input must have at least 2 dimensions, got shape {x.shape}")
    if not isinstance(diagonal, int | np.integer) or isinstance(diagonal, bool):
        raise TypeError(f"{op}: diagonal must be an int, got {type_name(diagonal)}")
    keep = triangle(x.shape[-2], x.shape[-1], int(diagonal), lower, x.device)
    return where(keep, x, False if x.dtype == dtypes.bool_ else 0)


def tril(x: Tensor, diagonal: int = 0) -> Tensor:
    """``x`` with every element above the ``diagonal``-th diagonal of its last two axes
    zeroed (``torch.tril``): element (i, j) is kept where j - i <= diagonal."""
    return _triangular("tril", x, diagonal, lower=True)


def triu(x: Tensor, diagonal: int = 0) -> Tensor:
    """``x`` with every element below the ``diagonal``-th diagonal of its last two axes
    zeroed (``torch.triu``): element (i, j) is kept where j - i >= diagonal."""
    return _triangular("triu", x, diagonal, lower=False)


def masked_fill(x: Tensor, mask: Tensor, value: Scalar) -> Tensor:
    """``x`` with ``value`` where the bool ``mask`` (broadcast to ``x``'s shape) is True,
    as ``torch.Tensor.masked_fill``; the result keeps ``x``'s dtype."""
    if not isinstance(mask, Tensor) or mask.dtype != dtypes.bool_:
        what = mask.dtype if isinstance(mask, Tensor) else type_name(mask)
        raise TypeError(f"masked_fill: mask must be a bool Tensor, got {what}")
    if isinstance(value, Tensor) or not isinstance(value, int | float | bool):
        raise TypeError(f"masked_fill: value must be a Python number, got {type_name(value)}")
    if not broadcasts_to(mask.shape, x.shape):
        raise ValueError(
            f"masked_fill: mask of shape {mask.shape} does not broadcast to the input's "
            f"shape {x.shape}"
        )
    out = where(mask, value, x)
    return out if out.dtype == x.dtype else cast(out, x.dtype)
