"""Backward rules of matmul (ops/matmul.py), the convolution ops (ops/conv.py) and
attention (ops/attention.py)."""

from __future__ import annotations

from typing import Any

from netcl.autograd.broadcasting import sum_to_shape
from netcl.autograd.node import Node
from netcl.core.tensor import Tensor, ops

Grad = Tensor | None


def _view(t: Tensor, shape: tuple[int, ...], strides: tuple[int, ...]) -> Tensor:
    return Tensor(t.buffer, shape, t.dtype, t.device, strides, t.offset)


def _swap_last(t: Tensor) -> Tensor:
    """The transpose of the last two axes, as a view (matmul reads any strides)."""
    shape = (*t.shape[:-2], t.shape[-1], t.shape[-2])
    return _view(t, shape, (*t.strides[:-2], t.strides[-1], t.strides[-2]))


def _insert_unit(t: Tensor, axis: int) -> Tensor:
    """``t`` with a size-1 axis inserted before position ``axis`` (negative: from the end)."""
    axis %= t.ndim + 1
    shape = (*t.shape[:axis], 1, *t.shape[axis:])
    return _view(t, shape, (*t.strides[:axis], 0, *t.strides[axis:]))


def _drop_unit(t: Tensor, axis: int) -> Tensor:
    """``t`` without its size-1 axis ``axis``."""
    axis %= t.ndim
    return _view(t, t.shape[:axis] + t.shape[axis + 1 :], t.strides[:axis] + t.strides[axis + 1 :])


def matmul(g: Tensor, node: Node) -> list[Grad]:
    """C = A @ B:  dA = dC @ B^T,  dB = A^T @ dC, each summed over broadcast batch axes.

    A 1-D operand is seen as the (1, K) row or (K, 1) column matmul made of
    it; ``g`` gets back the axis the forward removed for it, and the operand's
    gradient loses it again.
    """
    a, b = node.inputs
    if g.dtype != a.dtype:
        # A float32 product of 16-bit operands (matmul_with's out_dtype): each
        # gradient is its operand's dtype, as every rule's is.
        g = g.astype(a.dtype)
    a2 = _insert_unit(a, 0) if a.ndim == 1 else a
    b2 = _insert_unit(b, 1) if b.ndim == 1 else b
    g2 = _insert_unit(g, g.ndim - (b.ndim != 1)) if a.ndim == 1 else g
    g2 = _insert_unit(g2, g2.ndim) if b.ndim == 1 else g2
    ga = gb = None
    # An operand stored transposed (Linear's weight.T) gets its gradient computed
    # transposed too, (dC^T A)^T rather than A^T dC: the same products summed in
    # the same order, but the gradient then lands in the operand's own layout,
    # and copying it into a contiguous .grad is not a transposing copy (on a
    # CPU, 4.7 ms of a 35 ms 784-1024x2-10 step).
    if a.requires_grad:
        if _stored_transposed(a2):
            ga = _swap_last(ops.matmul(b2, _swap_last(g2)))
        else:
            ga = ops.matmul(g2, _swap_last(b2))
        ga = sum_to_shape(ga, a2.shape)
        ga = _drop_unit(ga, 0) if a.ndim == 1 else ga
    if b.requires_grad:
        rows, grad_rows = a2, g2
        if b.ndim == 2 and a2.ndim > 2:
            # A matrix applied over batch axes (Linear on (batch, L, features)): the
            # batch axes fold into rows, one (K, batch*M) @ (batch*M, N) product as
            # torch does, instead of a product per batch entry summed afterwards
            # (whose sum over the leading axis of a transposed view copied it first:
            # a tiny GPT's four feed-forward weight gradients, ~9 ms of a CPU step).
            rows = ops.reshape(a2, (-1, a2.shape[-1]))
            grad_rows = ops.reshape(g2, (-1, g2.shape[-1]))
        if _stored_transposed(b2):
            gb = _swap_last(ops.matmul(_swap_last(grad_rows), rows))
        else:
            gb = ops.matmul(_swap_last(rows), grad_rows)
        gb = sum_to_shape(gb, b2.shape)
        gb = _drop_unit(gb, 1) if b.ndim == 1 else gb
    return [ga, gb]


def _stored_transposed(t: Tensor) -> bool:
    """Whether the last two axes of ``t`` are a transposed view of a row-major matrix."""
    rows, cols = t.shape[-2:]
    return rows > 1 and cols > 1 and t.strides[-2] == 1 and t.strides[-1] != 1


def conv2d(g: Tensor, node: Node) -> list[Grad]:
    """out = conv2d(x, w[, bias]): the gradients from one call, which shares work between
    them where it can (on a CPU, one reordering of ``g``)."""
    x, w, *bias = node.inputs
    geometry = node.saved["stride"], node.saved["padding"], node.saved["dilation"]
    needs = (x.requires_grad, w.requires_grad, bool(bias) and bias[0].requires_grad)
    gx, gw, gb = ops.conv2d_grads(g, x, w, *geometry, needs=needs)
    return [gx, gw, gb] if bias else [gx, gw]


def _geometry(node: Node) -> tuple[Any, Any, Any, Any]:
    """kernel_size, stride, padding, dilation as the op recorded them."""
    saved = node.saved
    return saved["kernel_size"], saved["stride"], saved["padding"], saved["dilation"]


def unfold(g: Tensor, node: Node) -> list[Grad]:
    # fold is unfold's adjoint: every column entry goes back to the pixel it was read from.
    height, width = node.saved["input_shape"][2:]
    return [ops.fold(g, (height, width), *_geometry(node))]


def fold(g: Tensor, node: Node) -> list[Grad]:
    return [ops.unfold(g, *_geometry(node))]


def max_pool2d(g: Tensor, node: Node) -> list[Grad]:
    indices, shape = node.saved["indices"], node.saved["input_shape"]
    return [ops.max_pool2d_backward(g, indices, shape, *_geometry(node))]


def scaled_dot_product_attention(g: Tensor, node: Node) -> list[Grad]:
    """All three gradients from the fused backward, which recomputes the attention
    weights tile by tile from the saved log-sum-exp."""
    q, k, v = node.inputs
    saved = node.saved
    grads = ops.scaled_dot_product_attention_backward(
        g, q, k, v, node.output, saved["lse"], saved["attn_mask"], saved["is_causal"],
        saved["scale"])
    return [grad if t.requires_grad else None for grad, t in zip(grads, node.inputs, strict=True)]
