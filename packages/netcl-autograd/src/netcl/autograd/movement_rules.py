"""Backward rules of the ops that move elements: movement (ops/movement.py) and gathers
(ops/indexing.py). Each gradient goes back to where its element came from."""

from __future__ import annotations

from netcl.autograd.broadcasting import sum_to_shape
from netcl.autograd.node import Node
from netcl.core.tensor import Tensor, ops, zeros
from netcl.core.tensor.ops import indexing

Grad = Tensor | None


def reshape(g: Tensor, node: Node) -> list[Grad]:
    # reshape, view, flatten, squeeze and unsqueeze all record "reshape".
    return [ops.reshape(g, node.saved["input_shape"])]


def permute(g: Tensor, node: Node) -> list[Grad]:
    dims = node.saved["dims"]
    inverse = [0] * len(dims)
    for position, dim in enumerate(dims):
        inverse[dim] = position
    return [ops.permute(g, inverse)]


def expand(g: Tensor, node: Node) -> list[Grad]:
    return [sum_to_shape(g, tuple(node.saved["input_shape"]))]


def getitem(g: Tensor, node: Node) -> list[Grad]:
    """A basic index picks each input element at most once: write g into zeros at the index."""
    grad = zeros(node.saved["input_shape"], g.dtype, g.device)
    ops.copy_(ops.getitem(grad, node.saved["index"]), g)
    return [grad]


def cat(g: Tensor, node: Node) -> list[Grad]:
    axis = node.saved["axis"]
    grads: list[Grad] = []
    start = 0
    for x, size in zip(node.inputs, node.saved["sizes"], strict=True):
        part = (slice(None),) * axis + (slice(start, start + size),)
        grads.append(ops.getitem(g, part) if x.requires_grad else None)
        start += size
    return grads


def index_select(g: Tensor, node: Node) -> list[Grad]:
    # Adjoint of the gather: slices selected twice receive both gradients.
    (a,) = node.inputs
    return [indexing.index_add(a.shape, node.saved["axis"], node.saved["indices"], g)]


def take_along_axis(g: Tensor, node: Node) -> list[Grad]:
    (a,) = node.inputs
    return [indexing.scatter_add(a.shape, node.saved["axis"], node.saved["indices"], g)]
