"""Property: the gradient of a broadcasting op is summed back to each operand's shape."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import netcl.autograd as ag
import netcl.core.tensor as nt
from netcl.core.tensor import ops


@st.composite
def broadcast_pair(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Two shapes that broadcast: each axis of the result is stretched from 1 or matched."""
    out = draw(st.lists(st.integers(1, 3), min_size=0, max_size=3))
    shapes = []
    for _ in range(2):
        lead = draw(st.integers(0, len(out)))
        shapes.append(tuple(1 if draw(st.booleans()) else size for size in out[lead:]))
    return shapes[0], shapes[1]


@settings(max_examples=15, deadline=None)
@given(broadcast_pair(), st.sampled_from(["add", "sub", "mul"]))
def test_gradients_are_summed_over_broadcast_axes(
    shapes: tuple[tuple[int, ...], tuple[int, ...]], op: str
) -> None:
    rng = np.random.default_rng(0)
    a_np = rng.standard_normal(shapes[0]).astype(np.float32)
    b_np = rng.standard_normal(shapes[1]).astype(np.float32)
    a, b = nt.tensor(a_np, requires_grad=True), nt.tensor(b_np, requires_grad=True)
    out_shape = np.broadcast_shapes(a_np.shape, b_np.shape)
    seed_np = rng.standard_normal(out_shape).astype(np.float32)
    with ag.Tape() as tape:
        out = getattr(ops, op)(a, b)
    tape.backward(out, nt.tensor(seed_np))

    # float64 reference: d/da and d/db as full broadcast arrays, then summed down.
    a64, b64, g64 = (x.astype(np.float64) for x in (a_np, b_np, seed_np))
    da_full = {"add": g64, "sub": g64, "mul": g64 * b64}[op] * np.ones(out_shape)
    db_full = {"add": g64, "sub": -g64, "mul": g64 * a64}[op] * np.ones(out_shape)

    def summed(full: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        lead = full.ndim - len(shape)
        axes = tuple(range(lead)) + tuple(
            lead + d for d, s in enumerate(shape) if s == 1 and full.shape[lead + d] != 1
        )
        return full.sum(axis=axes).reshape(shape)

    assert a.grad is not None and b.grad is not None
    assert a.grad.shape == a_np.shape and b.grad.shape == b_np.shape
    np.testing.assert_allclose(a.grad.numpy(), summed(da_full, a_np.shape), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b.grad.numpy(), summed(db_full, b_np.shape), rtol=1e-5, atol=1e-6)
