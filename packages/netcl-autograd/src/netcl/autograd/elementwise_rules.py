"""Backward rules of the elementwise ops (netcl.core.tensor.ops.elementwise).

Each elementwise op records ``operands``: its operand tuple in order, Python
scalars inline. Its ``inputs`` are the operands that are tensors (for
``where``, the values only: the bool condition has no gradient). A rule works
out a gradient per operand, then ``_per_input`` sums each back over
broadcasting and keeps the ones for tensor operands, in order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from netcl.autograd.broadcasting import fit
from netcl.autograd.node import Node
from netcl.core.tensor import Tensor, ops
from netcl.core.tensor.tensor import Scalar

Operand = Tensor | Scalar
Grad = Tensor | None


def _wants(x: Operand) -> bool:
    return isinstance(x, Tensor) and x.requires_grad


def _per_input(operands: Sequence[Operand], grads: Sequence[Grad]) -> list[Grad]:
    return [
        None if g is None else fit(g, x)
        for x, g in zip(operands, grads, strict=True)
        if isinstance(x, Tensor)
    ]


def _binary(
    rule: Callable[[Tensor, Operand, Operand, Tensor, bool, bool], tuple[Grad, Grad]],
) -> Callable[[Tensor, Node], list[Grad]]:
    """Adapt ``rule(g, a, b, out, want_a, want_b)`` to the table's ``rule(g, node)``."""

    def apply(g: Tensor, node: Node) -> list[Grad]:
        a, b = node.saved["operands"]
        return _per_input((a, b), rule(g, a, b, node.output, _wants(a), _wants(b)))

    return apply


def _unary(
    rule: Callable[[Tensor, Tensor, Tensor], Tensor],
) -> Callable[[Tensor, Node], list[Grad]]:
    """Adapt ``rule(g, a, out)`` to the table's ``rule(g, node)``."""

    def apply(g: Tensor, node: Node) -> list[Grad]:
        (a,) = node.saved["operands"]
        return [fit(rule(g, a, node.output), a)]

    return apply


@_binary
def add(g: Tensor, a: Operand, b: Operand, out: Tensor, wa: bool, wb: bool) -> tuple[Grad, Grad]:
    return (g if wa else None, g if wb else None)


@_binary
def sub(g: Tensor, a: Operand, b: Operand, out: Tensor, wa: bool, wb: bool) -> tuple[Grad, Grad]:
    return (g if wa else None, ops.neg(g) if wb else None)


@_binary
def mul(g: Tensor, a: Operand, b: Operand, out: Tensor, wa: bool, wb: bool) -> tuple[Grad, Grad]:
    return (ops.mul(g, b) if wa else None, ops.mul(g, a) if wb else None)


@_binary
def div(g: Tensor, a: Operand, b: Operand, out: Tensor, wa: bool, wb: bool) -> tuple[Grad, Grad]:
    # d(a/b)/db = -a/b^2 = -out/b: reuses the forward result instead of squaring b.
    ga = ops.div(g, b) if wa else None
    gb = ops.neg(ops.div(ops.mul(g, out), b)) if wb else None
    return ga, gb


@_binary
def pow(g: Tensor, a: Operand, b: Operand, out: Tensor, wa: bool, wb: bool) -> tuple[Grad, Grad]:
    ga = gb = None
    if wa:
        # b * a^(b-1); where b == 0 the gradient is 0 (a^-1 would give 0 * inf at a == 0).
        if isinstance(b, Tensor):
            slope = ops.where(ops.eq(b, 0), 0.0, ops.mul(b, ops.pow(a, ops.sub(b, 1))))
        else:
            slope = ops.mul(ops.pow(a, b - 1), b) if b != 0 else ops.mul(out, 0.0)
        ga = ops.mul(g, slope)
    if wb:
        # out * log(a); taken as 0 where a == 0, as PyTorch does (0^b is flat in b for b > 0).
        if isinstance(a, Tensor):
            log_a = ops.log(ops.where(ops.eq(a, 0), 1.0, a))
            gb = ops.mul(ops.mul(g, out), log_a)
        else:
            gb = ops.mul(ops.mul(g, out), math.log(a) if a != 0 else 0.0)
    return ga, gb


def _select(first_wins: Tensor, tie: Tensor, g: Tensor) -> tuple[Tensor, Tensor]:
    """Route g to the selected operand; ties split it evenly, as PyTorch does."""
    half = ops.mul(g, 0.5)
    to_first = ops.where(tie, half, ops.where(first_wins, g, 0.0))
    to_second = ops.where(tie, half, ops.where(first_wins, 0.0, g))
    return to_first, to_second


@_binary
def maximum(
    g: Tensor, a: Operand, b: Operand, out: Tensor, wa: bool, wb: bool
) -> tuple[Grad, Grad]:
    ga, gb = _select(ops.gt(a, b), ops.eq(a, b), g)
    return (ga if wa else None, gb if wb else None)


@_binary
def minimum(
    g: Tensor, a: Operand, b: Operand, out: Tensor, wa: bool, wb: bool
) -> tuple[Grad, Grad]:
    ga, gb = _select(ops.lt(a, b), ops.eq(a, b), g)
    return (ga if wa else None, gb if wb else None)


@_unary
def neg(g: Tensor, a: Tensor, out: Tensor) -> Tensor:
    return ops.neg(g)


@_unary
def abs(g: Tensor, a: Tensor, out: Tensor) -> Tensor:
    # sign(a) * g, with sign(0) = 0 as in PyTorch.
    return ops.where(ops.gt(a, 0), g, ops.where(ops.lt(a, 0), ops.neg(g), 0.0))


@_unary
def exp(g: Tensor, a: Tensor, out: Tensor) -> Tensor:
    return ops.mul(g, out)


@_unary
def log(g: Tensor, a: Tensor, out: Tensor) -> Tensor:
    return ops.div(g, a)


@_unary
def sqrt(g: Tensor, a: Tensor, out: Tensor) -> Tensor:
    return ops.div(ops.mul(g, 0.5), out)


@_unary
def relu(g: Tensor, a: Tensor, out: Tensor) -> Tensor:
    # Zero where the output is zero, so relu'(0) = 0 as in PyTorch.
    return ops.relu_backward(g, out)


@_binary
def relu_backward(
    g: Tensor, a: Operand, b: Operand, out: Tensor, wa: bool, wb: bool
) -> tuple[Grad, Grad]:
    # Linear in the incoming gradient under the same mask; a step function of
    # the relu's output, whose derivative is zero almost everywhere.
    return (ops.relu_backward(g, b) if wa else None, None)


@_unary
def sigmoid(g: Tensor, a: Tensor, out: Tensor) -> Tensor:
    return ops.mul(g, ops.mul(out, ops.sub(1.0, out)))


@_unary
def tanh(g: Tensor, a: Tensor, out: Tensor) -> Tensor:
    return ops.mul(g, ops.sub(1.0, ops.mul(out, out)))


@_unary
def erf(g: Tensor, a: Tensor, out: Tensor) -> Tensor:
    # d erf(a)/da = 2/sqrt(pi) * exp(-a^2)
    return ops.mul(g, ops.mul(ops.exp(ops.neg(ops.mul(a, a))), 2.0 / math.sqrt(math.pi)))


@_unary
def identity(g: Tensor, a: Tensor, out: Tensor) -> Tensor:
    """copy and cast: the gradient passes unchanged (``fit`` casts it back to a's dtype)."""
    return g


def where(g: Tensor, node: Node) -> list[Grad]:
    condition, a, b = node.saved["operands"]
    ga = ops.where(condition, g, 0.0) if _wants(a) else None
    gb = ops.where(condition, 0.0, g) if _wants(b) else None
    return _per_input((a, b), (ga, gb))
