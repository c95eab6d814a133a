"""Undoing broadcasting: a gradient is summed back to the shape its input had."""

from __future__ import annotations

from netcl.core.tensor import Tensor, ops
from netcl.core.tensor.tensor import Shape


def sum_to_shape(g: Tensor, shape: Shape) -> Tensor:
    """Sum ``g`` over the axes that broadcasting added or stretched to reach ``g.shape``.

    ``shape`` must broadcast to ``g.shape``: leading axes ``g`` has in excess
    are summed away, and so is every axis where ``shape`` has 1 and ``g`` more.
    """
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    if lead < 0:
        raise ValueError(f"sum_to_shape: gradient shape {g.shape} has fewer axes than {shape}")
    stretched = [lead + d for d, size in enumerate(shape) if size == 1 and g.shape[lead + d] != 1]
    axes = tuple(range(lead)) + tuple(stretched)
    summed = ops.sum(g, axes, keepdims=True) if axes else g
    # Dropping the leading size-1 axes is a view of the (fresh) sum.
    return Tensor(summed.buffer, shape, summed.dtype, summed.device, summed.strides[lead:],
                  summed.offset)


def fit(g: Tensor, x: Tensor) -> Tensor:
    """``g`` summed back to ``x``'s shape and in ``x``'s dtype (mixed-dtype ops promote)."""
    g = sum_to_shape(g, x.shape)
    return g if g.dtype == x.dtype else ops.cast(g, x.dtype)


def unsqueeze_axes(g: Tensor, axes: tuple[int, ...], ndim: int) -> Tensor:
    """``g`` with size-1 axes put back at ``axes`` (of an ``ndim``-axis result): a view.

    A reduction without keepdims dropped ``axes``; inserting a size-1 axis
    never needs a copy (any stride serves an axis of size 1), so this builds
    the view directly instead of going through an op.
    """
    if g.ndim == ndim:
        return g
    shape, strides = list(g.shape), list(g.strides)
    for axis in axes:
        shape.insert(axis, 1)
        strides.insert(axis, 0)
    return Tensor(g.buffer, shape, g.dtype, g.device, strides, g.offset)


def expand_view(g: Tensor, shape: Shape) -> Tensor:
    """``g`` (same number of axes, 1 where it is broadcast) seen as ``shape``: stride 0, no copy."""
    strides = [
        0 if have == 1 and want != 1 else stride
        for have, want, stride in zip(g.shape, shape, g.strides, strict=True)
    ]
    return Tensor(g.buffer, shape, g.dtype, g.device, strides, g.offset)
