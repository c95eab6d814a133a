"""Backward through a float32 product of 16-bit operands (``matmul_with(out_dtype=)``)."""

from __future__ import annotations

from typing import Any

import numpy as np

import netcl.autograd as ag
import netcl.core.tensor as nt
from netcl.core.tensor import dtypes, ops
from netcl.core.tensor.ops.matmul import matmul_with

Array = np.ndarray[Any, Any]


def test_gradients_of_a_float32_product_of_bf16_operands_are_bf16() -> None:
    rng = np.random.default_rng(0)
    a_bits = rng.standard_normal((5, 7)).astype(dtypes.bfloat16)
    b_bits = rng.standard_normal((7, 3)).astype(dtypes.bfloat16)
    weights = rng.standard_normal((5, 3)).astype(np.float32)
    a = nt.tensor(a_bits, requires_grad=True)
    b = nt.tensor(b_bits, requires_grad=True)
    with ag.Tape() as tape:
        out = matmul_with(a, b, out_dtype=np.float32)
        loss = ops.sum(ops.mul(out, nt.tensor(weights)))
    tape.backward(loss)
    assert out.dtype == np.float32
    assert a.grad is not None and b.grad is not None
    assert a.grad.dtype == dtypes.bfloat16 and b.grad.dtype == dtypes.bfloat16
    # The incoming float32 gradient (the weights) is rounded to bf16 once, then each
    # product is summed in float32 and rounded to bf16: within one bf16 rounding
    # (2**-8 relative) plus gamma_K of the magnitudes.
    g = weights.astype(dtypes.bfloat16).astype(np.float64)
    a64, b64 = a_bits.astype(np.float64), b_bits.astype(np.float64)
    for got, exact, magnitude, k in (
            (a.grad, g @ b64.T, np.abs(g) @ np.abs(b64.T), 3),
            (b.grad, a64.T @ g, np.abs(a64.T) @ np.abs(g), 5)):
        allowed = np.abs(exact) * 2.0**-8 + magnitude * (k * 2.0**-24 / (1 - k * 2.0**-24))
        assert np.all(np.abs(got.numpy().astype(np.float64) - exact) <= allowed)
