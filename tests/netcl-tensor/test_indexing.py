"""Gathers and scatter-adds along one axis, against numpy and torch; range checks; records."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from conftest import RecordLog

from netcl.core.device import Device
from netcl.core.tensor import Tensor, from_numpy, ops, tensor

Array = np.ndarray[Any, Any]


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int64, np.bool_])
def test_index_select_every_element_size(dtype: type, rng: np.random.Generator) -> None:
    x: Array = (rng.standard_normal((4, 5, 3)) * 10).astype(dtype)
    t = from_numpy(x)
    for axis, idx in [(0, [3, 0, 3]), (1, [-1, 2]), (2, [0, 0, 1, 2]), (-1, [])]:
        got = ops.index_select(t, axis, idx)
        assert got.dtype == dtype
        assert np.array_equal(got.numpy(), np.take(x, idx, axis=axis)), axis


def test_index_select_takes_tensor_indices_and_strided_input(rng: np.random.Generator) -> None:
    x = rng.standard_normal((6, 7)).astype(np.float32)
    view = from_numpy(x).T[::2]  # (4, 6), not contiguous
    for indices in (tensor([5, 0, -2], dtype="int32"), tensor([1, 1], dtype="int64"),
                    np.array([3, 2])):
        host = indices.numpy() if isinstance(indices, Tensor) else indices
        got = ops.index_select(view, 1, indices)
        assert np.array_equal(got.numpy(), np.take(x.T[::2], host, axis=1))
    strided_indices = tensor([0, 9, 1, 9, 2], dtype="int64")[::2]
    got = ops.index_select(view, 1, strided_indices)
    assert np.array_equal(got.numpy(), x.T[::2][:, [0, 1, 2]])


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("view", [(), (slice(None, None, 2),), (slice(None), slice(None, None, 2))],
                         ids=["contiguous", "step-along-0", "step-along-1"])
def test_index_select_and_index_add_whether_or_not_the_other_axes_merge(
        axis: int, view: tuple[slice, ...], rng: np.random.Generator) -> None:
    """A CPU gathers and scatters whole slices (outer, axis, inner) where the axes before
    ``axis`` walk one stride and those after it another, else element by element: views
    and sources whose axes do and do not merge, around every axis."""
    x = rng.standard_normal((4, 5, 6)).astype(np.float32)
    idx = [1, 0, 1]
    got = ops.index_select(from_numpy(x)[view], axis, idx)
    assert np.array_equal(got.numpy(), np.take(x[view], idx, axis=axis))
    source = rng.standard_normal(got.shape).astype(np.float32)
    # The source with its strides reversed: its axes around ``axis`` merge or not in
    # another way than the view's.
    reversed_strides = from_numpy(np.ascontiguousarray(source.transpose(2, 1, 0))).transpose(0, 2)
    summed = ops.index_add(x[view].shape, axis, idx, reversed_strides)
    want = np.zeros(x[view].shape, np.float64)
    for j, k in enumerate(idx):
        np.moveaxis(want, axis, 0)[k] += np.moveaxis(source, axis, 0)[j]
    # At most two terms a sum: one float32 rounding, within 2^-24 of it.
    np.testing.assert_allclose(summed.numpy(), want, rtol=2.0**-24, atol=0)


def test_take_along_axis_matches_torch_gather(rng: np.random.Generator) -> None:
    x = rng.standard_normal((3, 5, 4)).astype(np.float32)
    idx = rng.integers(0, 5, (2, 6, 4))  # smaller off the axis, larger along it
    got = ops.take_along_axis(from_numpy(x), idx, 1)
    want = torch.gather(torch.from_numpy(x), 1, torch.from_numpy(idx))
    assert np.array_equal(got.numpy(), want.numpy())
    labels = np.array([[2], [0], [1]])
    assert np.array_equal(
        ops.take_along_axis(from_numpy(x[:, :, 0]), labels, -1).numpy(),
        np.take_along_axis(x[:, :, 0], labels, -1),
    )


def test_index_add_accumulates_duplicates(rng: np.random.Generator) -> None:
    source = rng.standard_normal((2, 4, 3)).astype(np.float32)
    idx = [4, 0, 4, 4]
    got = ops.index_add((2, 5, 3), 1, idx, from_numpy(source))
    want = np.zeros((2, 5, 3), np.float64)
    for j, k in enumerate(idx):
        want[:, k] += source[:, j]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-6, atol=1e-6)


def test_index_add_under_heavy_contention() -> None:
    # 20000 work-items adding into 2 addresses: a lost update would show.
    count = 20000
    idx = np.arange(count) % 2
    got = ops.index_add((2,), 0, idx, from_numpy(np.ones(count, np.float32)))
    assert got.tolist() == [count / 2, count / 2]


@pytest.mark.parametrize("dtype", [np.float16, np.int32])
def test_index_add_fp16_and_int32(dtype: type) -> None:
    source = from_numpy(np.ones((3000, 2), dtype))
    got = ops.index_add((3, 2), 0, np.zeros(3000, np.int64), source)
    assert got.dtype == dtype
    # Summed in fp16, the count would stall at 2048 (2048 + 1 rounds back to
    # 2048); fp16 accumulates in float32 and rounds once, and 3000 is exact in fp16.
    assert got.numpy().tolist() == [[3000, 3000], [0, 0], [0, 0]]


def test_scatter_add_matches_torch(rng: np.random.Generator) -> None:
    source = rng.standard_normal((3, 6)).astype(np.float32)
    idx = rng.integers(-4, 4, (3, 6))
    got = ops.scatter_add((4, 4), 1, idx, from_numpy(source))
    want = torch.zeros(4, 4).scatter_add_(1, torch.from_numpy(idx % 4), torch.from_numpy(source))
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-6)


def test_scatter_add_is_the_adjoint_of_take_along_axis(rng: np.random.Generator) -> None:
    x = rng.standard_normal((4, 5)).astype(np.float32)
    idx = rng.integers(0, 5, (4, 3))
    y = rng.standard_normal((4, 3)).astype(np.float32)
    # <take(x), y> == <x, scatter(y)> for every x and y.
    lhs = float((ops.take_along_axis(from_numpy(x), idx, 1).numpy() * y).sum())
    rhs = float((x * ops.scatter_add((4, 5), 1, idx, from_numpy(y)).numpy()).sum())
    assert lhs == pytest.approx(rhs, rel=1e-5)


@pytest.mark.parametrize(
    "call",
    [
        lambda t: ops.index_select(t, 1, [0, 3]),
        lambda t: ops.take_along_axis(t, np.array([[0], [3]]), 1),
        lambda t: ops.index_add((2, 3), 1, [7], from_numpy(np.ones((2, 1), np.float32))),
    ],
    ids=["select-list", "take", "index_add"],
)
def test_out_of_range_host_indices_fail_before_anything_runs(call: Any, device: Device) -> None:
    t = from_numpy(np.zeros((2, 3), np.float32))
    before = device.pool.stats().bytes_in_use
    with pytest.raises(IndexError, match=r"indices range from -?\d+ to \d+, but axis 1 has size 3"):
        call(t)
    assert device.pool.stats().bytes_in_use == before


@pytest.mark.parametrize(
    "call, bad",
    [
        (lambda t: ops.index_select(t, 1, tensor([-4, 1])), -4),
        (lambda t: ops.take_along_axis(t, tensor([[0], [3]]), 1), 3),
        (lambda t: ops.scatter_add((2, 3), 1, tensor([[3]]), from_numpy(np.ones((1, 1), "f4"))),
         3),
    ],
    ids=["select-tensor", "take-tensor", "scatter_add"],
)
def test_out_of_range_tensor_indices_raise_at_the_next_read(call: Any, bad: int) -> None:
    # Checked on the device, as class targets are: no wait for the queue at the call,
    # and a captured call (netcl.jit) checks at every replay.
    t = from_numpy(np.arange(6, dtype=np.float32).reshape(2, 3))
    out = call(t)
    with pytest.raises(ValueError, match=rf"index {bad} is out of range for axis 1 of size 3 "
                       r"\(valid indices are -3 to 2\)"):
        out.numpy()
    assert np.isfinite(out.numpy()).all()  # meanwhile the bad index read element 0


def test_bad_index_arguments() -> None:
    t = from_numpy(np.zeros((2, 3), np.float32))
    with pytest.raises(TypeError, match="indices must be integers, got an array of float64"):
        ops.index_select(t, 0, [0.5])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="int32 or int64, got float32"):
        ops.index_select(t, 0, tensor([0.0]))
    with pytest.raises(ValueError, match=r"must be 1-D, got shape \(1, 1\)"):
        ops.index_select(t, 0, np.array([[0]]))
    with pytest.raises(IndexError, match=r"axis 2 is out of range for shape \(2, 3\)"):
        ops.index_select(t, 2, [0])
    with pytest.raises(ValueError, match=r"indices of shape \(3, 1\) do not fit the input"):
        ops.take_along_axis(t, np.zeros((3, 1), np.int64), 1)
    with pytest.raises(ValueError, match=r"source has shape \(2, 2\).*need \(2, 1\)"):
        ops.index_add((2, 3), 1, [0], from_numpy(np.zeros((2, 2), np.float32)))
    with pytest.raises(TypeError, match="source must be float32, float16, bfloat16 or int32"):
        ops.index_add((2,), 0, [0], tensor([1], dtype="int64"))


def test_gathers_record_int64_non_negative_indices(tape: RecordLog) -> None:
    t = tensor(np.ones((3, 4)), requires_grad=True)
    out = ops.index_select(t, -1, [-1, 0])
    call = tape.calls[-1]
    assert (call.op, call.output, call.saved["axis"]) == ("index_select", out, 1)
    recorded = call.saved["indices"]
    assert isinstance(recorded, Tensor) and recorded.dtype == np.int64
    assert recorded.tolist() == [3, 0]
    out = ops.take_along_axis(t, tensor([[2], [0], [1]], dtype="int32"), 1)
    call = tape.calls[-1]
    assert (call.op, call.output, call.saved["axis"]) == ("take_along_axis", out, 1)
    assert call.saved["indices"].dtype == np.int64
    assert call.saved["indices"].tolist() == [[2], [0], [1]]
    source = tensor(np.ones((1, 4)), requires_grad=True)
    count = len(tape.calls)
    ops.index_add((3, 4), 0, [0], source)
    ops.scatter_add((3, 4), 0, np.array([[0, 1, 2, 0]]), source)
    assert len(tape.calls) == count
