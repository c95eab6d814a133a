"""Property tests: broadcasting, reductions and views over random shapes, against numpy."""

from __future__ import annotations

import os
from typing import Any

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from conftest import RecordLog
from hypothesis import example, given, settings
from hypothesis import strategies as st

from netcl.core.tensor import from_numpy, ops, recorder

Array = np.ndarray[Any, Any]
SETTINGS = settings(max_examples=30, deadline=None)


def values(shape: tuple[int, ...], seed: int) -> Array:
    return np.random.default_rng(seed).uniform(-2, 2, shape).astype(np.float32)


@SETTINGS
@given(
    shapes=hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=4, max_side=4),
    seed=st.integers(0, 2**16),
)
def test_broadcasting_add_mul_where(shapes: Any, seed: int) -> None:
    a_shape, b_shape, c_shape = shapes.input_shapes
    a, b = values(a_shape, seed), values(b_shape, seed + 1)
    condition = values(c_shape, seed + 2) > 0
    ta, tb, tc = from_numpy(a), from_numpy(b), from_numpy(condition)
    ab = np.broadcast_shapes(a_shape, b_shape)
    assert ops.add(ta, tb).shape == ab
    np.testing.assert_allclose(ops.add(ta, tb).numpy(), a.astype(np.float64) + b, rtol=1e-6)
    np.testing.assert_allclose(ops.mul(ta, tb).numpy(), a.astype(np.float64) * b, rtol=1e-6)
    selected = ops.where(tc, ta, tb)
    assert selected.shape == shapes.result_shape
    assert np.array_equal(selected.numpy(), np.where(condition, a, b))


@st.composite
def reductions(draw: Any) -> tuple[Array, int | tuple[int, ...] | None, bool]:
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=6))
    axes = draw(st.none() | st.sets(st.integers(-len(shape), len(shape) - 1), min_size=1))
    axis: int | tuple[int, ...] | None = None
    if axes is not None:
        # Both spellings of an axis may be drawn; keep one of each.
        unique = {a % len(shape): a for a in axes}
        axis = tuple(unique.values()) if len(unique) > 1 else next(iter(unique.values()))
    return values(shape, draw(st.integers(0, 2**16))), axis, draw(st.booleans())


@SETTINGS
@given(case=reductions())
def test_reductions_over_random_axes(case: tuple[Array, Any, bool]) -> None:
    x, axis, keepdims = case
    t = from_numpy(x)
    ref = x.astype(np.float64)
    for name in ("sum", "mean", "max"):
        got = getattr(ops, name)(t, axis, keepdims)
        want = getattr(np, name)(ref, axis=axis, keepdims=keepdims)
        assert got.shape == np.shape(want)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)


@st.composite
def sliced(draw: Any) -> tuple[Array, tuple[slice, ...]]:
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=6))
    index = tuple(
        slice(
            draw(st.none() | st.integers(-size - 1, size + 1)),
            draw(st.none() | st.integers(-size - 1, size + 1)),
            draw(st.none() | st.sampled_from([-3, -1, 1, 2])),
        )
        for size in shape
    )
    return values(shape, draw(st.integers(0, 2**16))), index


@SETTINGS
@given(case=sliced(), perm_seed=st.integers(0, 100))
# A backward slice that selects nothing: its stop of -1 must not come back as "the end".
@example(case=(np.zeros((0, 4), np.float32), (slice(None), slice(-5, None, -3))), perm_seed=0)
def test_slicing_then_permuting_then_reshaping_views(case: Any, perm_seed: int) -> None:
    x, index = case
    base = from_numpy(x).requires_grad_()
    log = RecordLog()
    with recorder.recording(log):
        view = base[index]
    want = x[index]
    assert np.array_equal(view.numpy(), want)
    # The index autograd is told of selects the same elements again.
    assert np.array_equal(base.detach()[log.calls[-1].saved["index"]].numpy(), want)
    order = tuple(np.random.default_rng(perm_seed).permutation(x.ndim).tolist())
    permuted = view.permute(order)
    assert np.array_equal(permuted.numpy(), want.transpose(order))
    assert np.array_equal(permuted.reshape(-1).numpy(), want.transpose(order).reshape(-1))


def test_hypothesis_replays_fixed_examples_in_ci() -> None:
    """CI runs (the CI variable set) are derandomized: a random example cannot turn CI red."""
    if os.environ.get("HYPOTHESIS_PROFILE"):
        pytest.skip("a profile was picked by name")
    assert settings.default.derandomize == bool(os.environ.get("CI"))
    assert settings.default.database is None or not os.environ.get("CI")
