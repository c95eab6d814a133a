"""gradcheck of every differentiable op of the tensor layer, one table row per case."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch

import netcl.autograd as ag
import netcl.core.tensor as nt
from netcl.core.tensor import Tensor, ops


@dataclass(frozen=True)
class Spec:
    """How to draw one input: its shape and the range its values keep to."""

    shape: tuple[int, ...]
    kind: str = "normal"  # normal | positive | away (|x| >= 0.3, away from kinks at 0)
    requires_grad: bool = True


# Short names keep the table readable: Normal, Positive, Away from 0, Constant.
def N(*shape: int) -> Spec:
    return Spec(shape)


def P(*shape: int) -> Spec:
    return Spec(shape, "positive")


def A(*shape: int) -> Spec:
    return Spec(shape, "away")


def C(*shape: int) -> Spec:
    return Spec(shape, requires_grad=False)


def draw(spec: Spec, rng: np.random.Generator) -> Tensor:
    if spec.kind == "positive":
        values = rng.uniform(0.5, 2.0, spec.shape)
    elif spec.kind == "away":
        values = rng.uniform(0.3, 1.5, spec.shape) * rng.choice([-1.0, 1.0], spec.shape)
    else:
        values = rng.standard_normal(spec.shape)
    return nt.tensor(values.astype(np.float32), requires_grad=spec.requires_grad)


def distinct(*shape: int) -> Callable[[np.random.Generator], np.ndarray[Any, Any]]:
    """Values 0.1 apart, shuffled: no ties within eps for max/min/maximum."""

    def make(rng: np.random.Generator) -> np.ndarray[Any, Any]:
        n = int(np.prod(shape))
        return (rng.permutation(n).reshape(shape) * 0.1 - n * 0.05).astype(np.float32)

    return make


cond = nt.tensor(np.array([[True, False, True, True]] * 3))
pairs = nt.tensor(np.array([[[0, 3], [1, 1], [2, 0]], [[3, 3], [0, 2], [1, 0]]], dtype=np.int64))

CASES: list[tuple[str, Callable[..., Tensor], list[Spec]]] = [
    # elementwise, with broadcasting and scalar operands
    ("add_broadcast", lambda a, b: a + b, [N(2, 3), N(3)]),
    ("add_both_stretched", lambda a, b: a + b, [N(2, 1, 3), N(4, 1)]),
    ("add_scalar", lambda a: 2.0 + a + 1.0, [N(3)]),
    ("sub", lambda a, b: a - b, [N(3, 1), N(1, 4)]),
    ("rsub", lambda a: 1.0 - a, [N(4)]),
    ("mul_broadcast", lambda a, b: a * b, [N(2, 3), N(2, 1)]),
    ("mul_constant", lambda a, b: a * b, [N(2, 3), C(3)]),
    ("mul_same_tensor", lambda a: a * a, [N(5)]),
    ("div", lambda a, b: a / b, [N(2, 3), A(3)]),
    ("rdiv", lambda a: 1.0 / a, [A(4)]),
    ("pow_scalar_exponent", lambda a: a**2.5, [P(4)]),
    ("pow_integer_exponent_negative_base", lambda a: a**3, [A(4)]),
    ("pow_tensor_tensor", lambda a, b: a**b, [P(2, 3), N(3)]),
    ("pow_scalar_base", lambda b: 2.0**b, [N(4)]),
    ("neg", lambda a: -a, [N(3)]),
    ("abs", lambda a: ops.abs(a), [A(6)]),
    ("exp", lambda a: ops.exp(a), [N(2, 3)]),
    ("log", lambda a: ops.log(a), [P(2, 3)]),
    ("sqrt", lambda a: ops.sqrt(a), [P(5)]),
    ("relu", lambda a: ops.relu(a), [A(2, 4)]),
    ("sigmoid", lambda a: ops.sigmoid(a), [N(2, 3)]),
    ("tanh", lambda a: ops.tanh(a), [N(2, 3)]),
    ("erf", lambda a: ops.erf(a), [N(2, 3)]),
    ("where_broadcast", lambda a, b: ops.where(cond, a, b), [N(3, 1), N(4)]),
    ("where_scalar", lambda a: ops.where(cond, 0.5, a), [N(3, 4)]),
    ("copy_of_a_view", lambda a: ops.copy(ops.transpose(a, 0, 1)), [N(2, 3)]),
    # reductions
    ("sum_all", lambda a: ops.sum(a), [N(2, 3)]),
    ("sum_axis", lambda a: ops.sum(a, 1), [N(2, 3, 2)]),
    ("sum_axes_keepdims", lambda a: ops.sum(a, (0, 2), keepdims=True), [N(2, 3, 2)]),
    ("mean_last", lambda a: ops.mean(a, -1), [N(3, 4)]),
    ("mean_all", lambda a: ops.mean(a), [N(3, 4)]),
    ("logsumexp", lambda a: ops.logsumexp(a, 1, keepdims=True), [N(3, 4)]),
    ("logsumexp_all", lambda a: ops.logsumexp(a), [N(2, 3)]),
    # movement
    ("reshape", lambda a: ops.reshape(a, (3, 2)), [N(2, 3)]),
    ("reshape_copy", lambda a: ops.reshape(ops.transpose(a, 0, 1), (-1,)), [N(2, 3)]),
    ("flatten", lambda a: ops.flatten(a, 1), [N(2, 2, 3)]),
    ("squeeze_unsqueeze", lambda a: ops.unsqueeze(ops.squeeze(a, 1), 0), [N(2, 1, 3)]),
    ("permute", lambda a: ops.permute(a, (2, 0, 1)), [N(2, 3, 4)]),
    ("transpose", lambda a: a.T, [N(2, 3)]),
    ("expand", lambda a: ops.expand(a, (2, 3, 4)), [N(3, 1)]),
    ("getitem_int_slice", lambda a: a[1, ::2], [N(3, 5)]),
    ("getitem_negative_step", lambda a: a[::-1, 1:3, None], [N(3, 4)]),
    ("getitem_ellipsis", lambda a: a[..., 0], [N(2, 3, 2)]),
    ("getitem_array", lambda a: a[:, [2, 0, 2]], [N(2, 3)]),
    ("cat", lambda a, b, c: ops.cat([a, b, c], 1), [N(2, 1), C(2, 2), N(2, 3)]),
    ("stack", lambda a, b: ops.stack([a, b], 0), [N(2, 3), N(2, 3)]),
    # gathers, with repeated indices
    ("index_select", lambda a: ops.index_select(a, 0, [2, 0, 2, 1]), [N(3, 2)]),
    ("take_along_axis", lambda a: ops.take_along_axis(a, pairs, 2), [N(2, 3, 4)]),
    # matmul
    ("matmul_2d", lambda a, b: a @ b, [N(3, 4), N(4, 2)]),
    ("matmul_batched_broadcast", lambda a, b: a @ b, [N(2, 3, 4), N(4, 5)]),
    ("matmul_batch_both", lambda a, b: a @ b, [N(3, 4), N(2, 4, 2)]),
    ("matmul_vector_right", lambda a, b: a @ b, [N(2, 3, 4), N(4)]),
    ("matmul_vector_left", lambda a, b: a @ b, [N(4), N(4, 3)]),
    ("matmul_dot", lambda a, b: a @ b, [N(4), N(4)]),
    ("matmul_transposed_view", lambda a, b: a @ b.T, [N(3, 4), N(2, 4)]),
    # Operands stored transposed get their gradient computed transposed.
    ("matmul_transposed_left", lambda a, b: a.T @ b, [N(4, 3), N(4, 2)]),
    ("matmul_both_transposed", lambda a, b: a.T @ b.T, [N(4, 3), N(2, 4)]),
    ("matmul_broadcast_transposed", lambda a, b: a @ b.T, [N(2, 3, 4), N(5, 4)]),
    # Batch axes of a strided view folded into rows for the matrix's gradient.
    ("matmul_batched_view", lambda a, b: ops.transpose(a, 0, 1) @ b, [N(3, 2, 2, 4), N(4, 5)]),
    # convolution building blocks
    ("unfold", lambda x: ops.unfold(x, 3, 2, 1), [N(2, 2, 5, 5)]),
    ("unfold_dilated", lambda x: ops.unfold(x, (2, 3), 1, (1, 0), 2), [N(1, 2, 5, 6)]),
    ("fold", lambda c: ops.fold(c, (5, 5), 3, 2, 1), [N(2, 18, 9)]),
    # masks and attention
    ("tril", lambda a: ops.tril(a, -1), [N(2, 3, 4)]),
    ("triu", lambda a: ops.triu(a, 1), [N(3, 4)]),
    ("masked_fill", lambda a: ops.masked_fill(a, cond, -2.0), [N(2, 3, 4)]),
    ("chunk", lambda a: ops.chunk(a, 2, 1)[1], [N(2, 5)]),
    ("sdpa", lambda q, k, v: ops.scaled_dot_product_attention(q, k, v), [N(2, 5, 4), N(2, 6, 4),
                                                                        N(2, 6, 3)]),
    ("sdpa_bool_mask_transposed_query", lambda q, k, v: ops.scaled_dot_product_attention(
        ops.transpose(q, 0, 1), k, v, cond, scale=0.7), [N(3, 1, 2), N(1, 4, 2), N(1, 4, 2)]),
    ("sdpa_causal", lambda q, k, v: ops.scaled_dot_product_attention(q, k, v, is_causal=True),
     [N(1, 2, 5, 4), N(1, 2, 5, 4), N(1, 2, 5, 4)]),
]

# Reductions and pools whose inputs must have no ties within eps.
DISTINCT_CASES: list[tuple[str, Callable[..., Tensor], tuple[int, ...]]] = [
    ("max_axis", lambda a: ops.max(a, 1), (3, 4)),
    ("max_all", lambda a: ops.max(a), (3, 4)),
    ("min_axes_keepdims", lambda a: ops.min(a, (0, 2), keepdims=True), (2, 3, 2)),
    ("maximum", lambda a: ops.maximum(a, ops.getitem(a, (slice(None, None, -1),))), (6,)),
    ("minimum_scalar", lambda a: ops.minimum(a, 0.05), (6,)),
    ("max_pool2d", lambda x: ops.max_pool2d(x, 2)[0], (2, 2, 4, 4)),
    ("max_pool2d_overlapping_padded", lambda x: ops.max_pool2d(x, 3, 2, 1)[0], (1, 2, 5, 5)),
    ("max_pool2d_dilated", lambda x: ops.max_pool2d(x, 2, 1, 0, 2)[0], (1, 1, 5, 5)),
]


@pytest.mark.parametrize(("name", "fn", "specs"), CASES, ids=[c[0] for c in CASES])
def test_gradcheck(name: str, fn: Callable[..., Tensor], specs: list[Spec]) -> None:
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    assert ag.gradcheck(fn, [draw(s, rng) for s in specs])


@pytest.mark.parametrize(
    ("name", "fn", "shape"), DISTINCT_CASES, ids=[c[0] for c in DISTINCT_CASES]
)
def test_gradcheck_without_ties(
    name: str, fn: Callable[..., Tensor], shape: tuple[int, ...]
) -> None:
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    x = nt.tensor(distinct(*shape)(rng), requires_grad=True)
    assert ag.gradcheck(fn, [x])


def test_gradcheck_catches_a_wrong_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    exp_rule = ag.RULES["exp"]
    monkeypatch.setitem(ag.RULES, "exp", lambda g, node: [ops.mul(exp_rule(g, node)[0], 1.05)])
    x = nt.tensor(np.linspace(-1, 1, 4).astype(np.float32), requires_grad=True)
    with pytest.raises(ag.GradcheckError, match=r"input 0 \(shape \(4,\)\)"):
        ag.gradcheck(ops.exp, [x])
    assert not ag.gradcheck(ops.exp, [x], raise_exception=False)


def test_ties_split_the_gradient_evenly_as_in_pytorch() -> None:
    """ops.max over an axis is torch.amax; ops.maximum is torch.maximum: ties share."""
    x_np = np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 2.0]], np.float32)
    y_np = np.array([[1.0, 0.0, 3.0], [5.0, 0.0, 2.0]], np.float32)
    x, y = nt.tensor(x_np, requires_grad=True), nt.tensor(y_np, requires_grad=True)
    with ag.Tape() as tape:
        loss = ops.add(ops.sum(ops.max(x, 1)), ops.sum(ops.maximum(x, y)))
    tape.backward(loss)
    xt = torch.tensor(x_np, requires_grad=True)
    yt = torch.tensor(y_np, requires_grad=True)
    (torch.amax(xt, 1).sum() + torch.maximum(xt, yt).sum()).backward()
    assert x.grad is not None and y.grad is not None and xt.grad is not None
    np.testing.assert_array_equal(x.grad.numpy(), xt.grad.numpy())
    np.testing.assert_array_equal(y.grad.numpy(), yt.grad.numpy())
    np.testing.assert_array_equal(x.grad.numpy(), [[0.5, 1.5, 1.0], [0.5, 0.5, 1.0]])


def test_cast_passes_the_gradient_back_in_the_input_dtype() -> None:
    x = nt.tensor(np.array([0.5, -1.25, 2.0], np.float32), requires_grad=True)
    with ag.Tape() as tape:
        y = ops.mul(ops.cast(ops.cast(x, nt.float16), nt.float32), 3.0)
    seed = nt.tensor(np.array([1.0, 2.0, -1.0], np.float32))
    tape.backward(y, seed)
    assert x.grad is not None and x.grad.dtype == nt.float32
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 6.0, -3.0])
