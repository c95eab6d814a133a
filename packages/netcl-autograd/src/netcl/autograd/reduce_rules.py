"""Backward rules of the reductions (netcl.core.tensor.ops.reduce).

Each records ``axis`` (a sorted tuple of non-negative axes) and ``keepdims``.
The output's gradient gets its reduced axes back as size 1 and is broadcast
over them, as a stride-0 view where nothing else is needed.
"""

from __future__ import annotations

import math

from netcl.autograd.broadcasting import expand_view, unsqueeze_axes
from netcl.autograd.node import Node
from netcl.core.tensor import Tensor, ops

Grad = Tensor | None


def _kept(t: Tensor, node: Node) -> Tensor:
    """``t`` (shaped like the output) with the reduced axes back as size 1."""
    (a,) = node.inputs
    return unsqueeze_axes(t, tuple(node.saved["axis"]), a.ndim)


def sum(g: Tensor, node: Node) -> list[Grad]:
    (a,) = node.inputs
    return [expand_view(_kept(g, node), a.shape)]


def mean(g: Tensor, node: Node) -> list[Grad]:
    (a,) = node.inputs
    count = math.prod(a.shape[d] for d in node.saved["axis"])
    return [expand_view(_kept(ops.mul(g, 1.0 / count), node), a.shape)]


def extremum(g: Tensor, node: Node) -> list[Grad]:
    """max and min: g goes to the elements equal to the result, split evenly among ties.

    That is PyTorch's rule for ``amax``/``amin`` and the full ``max()``, and
    the subgradient that keeps the result's gradient sum unchanged.
    """
    (a,) = node.inputs
    hit = ops.cast(ops.eq(a, _kept(node.output, node)), a.dtype)
    count = ops.sum(hit, node.saved["axis"], keepdims=True)
    return [ops.mul(hit, ops.div(_kept(g, node), count))]


def logsumexp(g: Tensor, node: Node) -> list[Grad]:
    # d lse(a)/da = softmax(a) = exp(a - lse(a))
    (a,) = node.inputs
    return [ops.mul(_kept(g, node), ops.exp(ops.sub(a, _kept(node.output, node))))]
