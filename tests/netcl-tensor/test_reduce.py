"""Reductions against float64 numpy: axes, keepdims, dtypes, views, NaN, empties, records."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import torch
from conftest import LaunchLog, RecordLog

from netcl.core.device import Device
from netcl.core.tensor import from_numpy, ops, tensor
from netcl.core.tensor.launch import observing
from netcl.core.tensor.ops import reduce

Array = np.ndarray[Any, Any]
AxisArg = int | tuple[int, ...] | None


def logsumexp_ref(x: Array, axis: AxisArg, keepdims: bool = False) -> Array:
    x = x.astype(np.float64)
    m = np.max(x, axis=axis, keepdims=True)
    out: Array = m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))
    return out if keepdims else np.squeeze(out, axis=axis)


REFERENCES: dict[str, Callable[..., Array]] = {
    "sum": np.sum,
    "mean": np.mean,
    "max": np.max,
    "min": np.min,
    "logsumexp": logsumexp_ref,
}
CASES: list[AxisArg] = [None, 0, -1, 1, (0, 2), (2, 0, 1)]


@pytest.mark.parametrize("name", list(REFERENCES))
@pytest.mark.parametrize("keepdims", [False, True])
def test_float32_over_every_axis_choice(
    name: str, keepdims: bool, rng: np.random.Generator
) -> None:
    x = rng.standard_normal((5, 7, 3)).astype(np.float32)
    t = from_numpy(x)
    for axis in CASES:
        got = getattr(ops, name)(t, axis, keepdims)
        want = REFERENCES[name](x.astype(np.float64), axis=axis, keepdims=keepdims)
        assert got.shape == np.shape(want) and got.dtype == np.float32, (axis, got.shape)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6, err_msg=str(axis))


@pytest.mark.parametrize("name", ["argmax", "argmin"])
def test_arg_reductions_give_int64_first_occurrence(name: str, rng: np.random.Generator) -> None:
    # Few distinct values, so ties are everywhere and the first index must win.
    x = rng.integers(0, 3, (6, 40)).astype(np.float32)
    t = from_numpy(x)
    for axis in (None, 0, 1, -1):
        got = getattr(ops, name)(t, axis)
        assert got.dtype == np.int64
        assert np.array_equal(got.numpy(), getattr(np, name)(x, axis=axis)), axis
    kept = getattr(ops, name)(t, 1, keepdims=True)
    assert np.array_equal(kept.numpy(), getattr(np, name)(x, axis=1, keepdims=True))


def test_non_contiguous_input(rng: np.random.Generator) -> None:
    x = rng.standard_normal((6, 9)).astype(np.float32)
    view = from_numpy(x).T[::2]
    ref = x.T[::2].astype(np.float64)
    np.testing.assert_allclose(ops.sum(view, 0).numpy(), ref.sum(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ops.max(view, 1).numpy(), ref.max(1))
    assert np.array_equal(ops.argmax(view, 1).numpy(), ref.argmax(1))


def test_long_rows_and_many_rows(rng: np.random.Generator) -> None:
    # Rows past the long-row threshold use wide work-groups; more rows than
    # groups make each group walk several rows.
    long_rows = rng.standard_normal((3, 5000)).astype(np.float32)
    got = ops.logsumexp(from_numpy(long_rows), 1)
    np.testing.assert_allclose(got.numpy(), logsumexp_ref(long_rows, 1), rtol=1e-5)
    many_rows = rng.standard_normal((20000, 3)).astype(np.float32)
    np.testing.assert_allclose(
        ops.sum(from_numpy(many_rows), 1).numpy(), many_rows.astype(np.float64).sum(1),
        rtol=1e-5, atol=1e-6,
    )


def launched_kernels(work: Callable[[], Any]) -> list[str]:
    """The kernel names ``work`` enqueues, in order."""
    log = LaunchLog()
    with observing(log):
        work()
    return log.names


# (shape, leading axes summed): wide enough for reduce_cols (32 kept elements or
# more), with odd sizes, a partial last work-group and one column group's worth.
COLUMN_CASES = [((37, 1000), 0), ((5, 7, 300), (0, 1)), ((3000, 40), 0), ((64, 33), 0),
                ((2, 32), 0)]


def kahan_tree_bound(x: Array, axis: AxisArg, passes: int = 1) -> Array:
    """What reduce_cols's rounding admits per output: each work-item's compensated sum is
    within 2u of exact (u = 2^-24), the 32-leaf tree that adds them up adds at most 5u,
    and the result's own rounding 1u; so 8u * sum(|x|) (Higham, Accuracy and Stability
    of Numerical Algorithms, 4.2 and 4.3). A tall input's segments' partial sums (stored
    unrounded as float32 after their 7u) summed the same way again: 15u; 16u bounds it."""
    bound: Array = 8 * passes * 2.0**-24 * np.abs(x.astype(np.float64)).sum(axis=axis)
    return bound


def half_sum_bound(halves: Array, axis: AxisArg, float_bound: Array) -> Array:
    """What a float16 sum accumulated in float32 admits: the float32 sum s' within
    ``float_bound`` of the exact s, then rounded to float16 (2^-11 of |s'|, so at most
    2^-11 |s| + 2^-11 float_bound)."""
    exact = np.abs(halves.astype(np.float64).sum(axis=axis))
    bound: Array = 2.0**-11 * exact + (1 + 2.0**-11) * float_bound
    return bound


@pytest.mark.parametrize(("shape", "axis"), COLUMN_CASES)
def test_sums_over_leading_axes_read_the_input_in_place(
    shape: tuple[int, ...], axis: AxisArg, rng: np.random.Generator, device: Device
) -> None:
    x = rng.standard_normal(shape).astype(np.float32)
    # A slice starts the input past element 0 of its buffer.
    padded = np.concatenate([rng.standard_normal((1, *shape[1:])).astype(np.float32), x])
    t = from_numpy(padded)[1:]
    # A CPU sums 8 columns a work-item (its kernel's rounding is within the one-pass
    # bound); a GPU sums segments of a tall input, then their partial sums.
    cpu = device.type == "cpu"
    passes = 1 if cpu or x.size // x.shape[-1] <= reduce.COLS_SEGMENT else 2
    kernels = ["reduce_cols8"] if cpu else ["reduce_cols"] * passes
    assert launched_kernels(lambda: ops.sum(t, axis)) == kernels
    want = x.astype(np.float64).sum(axis=axis)
    bound = kahan_tree_bound(x, axis, passes)
    assert np.all(np.abs(ops.sum(t, axis).numpy() - want) <= bound)
    kept = ops.mean(t, axis, keepdims=True)
    count = x.size // want.size
    assert kept.shape == np.shape(x.mean(axis=axis, keepdims=True))
    assert np.all(np.abs(kept.numpy().reshape(want.shape) - want / count) <= bound / count)


@pytest.fixture
def gpu_kernels(monkeypatch: pytest.MonkeyPatch, device: Device) -> Iterator[None]:
    """reduce.py plans for a GPU (reduce_rows, reduce_cols) on whatever device runs the
    tests, so PoCL checks the kernels a GPU launches; plans made either way are dropped.
    MAX_GROUPS is cut to 2 so small inputs already need reduce_rows's grid-stride loop
    (each group walking several stacks of rows); at the real cap they would need
    millions of rows."""
    device.kernels.plans.clear()
    monkeypatch.setattr(reduce, "_for_cpu", lambda _device: False)
    monkeypatch.setattr(reduce, "MAX_GROUPS", 2)
    yield
    device.kernels.plans.clear()


# Row lengths from one element to past a full work-group's reach (256 x ROW_SERIAL), row
# counts that leave a group's last rows empty, and (with gpu_kernels's MAX_GROUPS of 2)
# more than two groups' worth: (3, 5000) is 3 groups of one row, (20001, 3) 79 groups of
# 256 rows, so groups walk rows past the first stack and meet stacks with rows past the end.
ROW_CASES = [(7, 1), (5, 3), (9, 65), (3, 512), (2, 1000), (3, 5000), (20001, 3)]


@pytest.mark.usefixtures("gpu_kernels")
@pytest.mark.parametrize("shape", ROW_CASES)
def test_gpu_rows_stack_several_rows_in_a_group(
    shape: tuple[int, int], rng: np.random.Generator
) -> None:
    x = rng.standard_normal(shape).astype(np.float32)
    x[0, shape[1] // 2] = np.nan if shape[0] > 1 else x[0, 0]
    t = from_numpy(x)
    assert launched_kernels(lambda: ops.sum(t, 1)) == ["reduce_rows"]
    wide = x.astype(np.float64)
    for name in ("sum", "mean", "max", "logsumexp"):
        np.testing.assert_allclose(getattr(ops, name)(t, 1).numpy(),
                                   REFERENCES[name](wide, axis=1), rtol=1e-5, atol=1e-6,
                                   err_msg=name)
    ties = np.floor(x * 2)  # few distinct values: the first of each row's ties must win
    assert np.array_equal(ops.argmax(from_numpy(ties), 1).numpy(), np.argmax(ties, axis=1))


@pytest.mark.usefixtures("gpu_kernels")
@pytest.mark.parametrize(("shape", "axis"), [((5000,), None), ((64, 77), None), ((2, 3000), 1)])
def test_gpu_long_rows_are_summed_in_parts(
    shape: tuple[int, ...], axis: AxisArg, rng: np.random.Generator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rows too few to fill the device's compute units (64 here; a full sum is one row)
    and longer than ROW_SEGMENT (cut to 256 so small inputs take the path, with a
    partial last part) are summed in parts, then the parts added by a second launch.
    Each pass: a work-item's compensated sum (2u), a 256-leaf tree (8u), the store (1u),
    so 22u * sum(|x|) for both (u = 2^-24). Max is not cut: only sums are."""
    monkeypatch.setattr(reduce, "ROW_SEGMENT", 256)
    monkeypatch.setattr(Device, "compute_units", property(lambda _: 64))
    x = rng.standard_normal(shape).astype(np.float32)
    t = from_numpy(x)
    assert launched_kernels(lambda: ops.sum(t, axis)) == ["reduce_rows"] * 2
    assert launched_kernels(lambda: ops.max(t, axis)) == ["reduce_rows"]
    want = x.astype(np.float64).sum(axis=axis)
    bound = 22 * 2.0**-24 * np.abs(x.astype(np.float64)).sum(axis=axis)
    assert np.all(np.abs(ops.sum(t, axis).numpy() - want) <= bound)
    count = x.size // np.size(want)
    assert np.all(np.abs(ops.mean(t, axis).numpy() - want / count) <= bound / count)
    ints = rng.integers(-1000, 1000, shape).astype(np.int32)
    assert np.array_equal(ops.sum(from_numpy(ints), axis).numpy(),
                          ints.sum(axis=axis, dtype=np.int64))
    halves = rng.uniform(0, 1, shape).astype(np.float16)
    float_bound = 22 * 2.0**-24 * np.abs(halves.astype(np.float64)).sum(axis=axis)
    assert np.all(np.abs(ops.sum(from_numpy(halves), axis).numpy()
                         - halves.astype(np.float64).sum(axis=axis))
                  <= half_sum_bound(halves, axis, float_bound))
    x[-1, ...] = np.nan  # in the last part
    assert np.all(np.isnan(ops.sum(from_numpy(x), axis).numpy().reshape(-1)[-1:]))


# (shape, leading axes summed): one segment, a partial last segment, many segments.
SEGMENT_CASES = [((512, 40), 0), ((1100, 40), 0), ((4, 300, 33), (0, 1)), ((8192, 64), 0)]


@pytest.mark.usefixtures("gpu_kernels")
@pytest.mark.parametrize(("shape", "axis"), SEGMENT_CASES)
def test_gpu_tall_column_sums_add_segments_partial_sums(
    shape: tuple[int, ...], axis: AxisArg, rng: np.random.Generator
) -> None:
    x = rng.standard_normal(shape).astype(np.float32)
    t = from_numpy(x)
    tall = x.size // x.shape[-1] > reduce.COLS_SEGMENT
    assert launched_kernels(lambda: ops.sum(t, axis)) == ["reduce_cols"] * (1 + tall)
    want = x.astype(np.float64).sum(axis=axis)
    bound = kahan_tree_bound(x, axis, passes=2)
    assert np.all(np.abs(ops.sum(t, axis).numpy() - want) <= bound)
    count = x.size // want.size
    assert np.all(np.abs(ops.mean(t, axis).numpy() - want / count) <= bound / count)
    ints = rng.integers(-1000, 1000, shape).astype(np.int32)
    total = ops.sum(from_numpy(ints), axis)
    assert total.dtype == np.int64
    assert np.array_equal(total.numpy(), ints.sum(axis=axis, dtype=np.int64))
    halves = rng.uniform(0, 1, shape).astype(np.float16)
    got = ops.sum(from_numpy(halves), axis)
    assert got.dtype == np.float16
    assert np.all(np.abs(got.numpy() - halves.astype(np.float64).sum(axis=axis))
                  <= half_sum_bound(halves, axis, kahan_tree_bound(halves, axis, passes=2)))


def test_sums_over_leading_axes_of_other_dtypes(rng: np.random.Generator) -> None:
    ints = rng.integers(-1000, 1000, (300, 64)).astype(np.int32)
    total = ops.sum(from_numpy(ints), 0)
    assert total.dtype == np.int64 and np.array_equal(total.numpy(), ints.sum(0, dtype=np.int64))
    halves = rng.uniform(0, 1, (512, 48)).astype(np.float16)
    got = ops.sum(from_numpy(halves), 0)
    assert got.dtype == np.float16
    # Accumulated in float (reduce_cols8 or one pass of reduce_cols: 512 rows), then
    # rounded to fp16.
    assert np.all(np.abs(got.numpy() - halves.astype(np.float64).sum(0))
                  <= half_sum_bound(halves, 0, kahan_tree_bound(halves, 0)))


def test_tall_narrow_and_strided_inputs_are_summed_as_rows(
    rng: np.random.Generator, device: Device
) -> None:
    cpu = device.type == "cpu"
    tall = rng.standard_normal((20000, 40)).astype(np.float32)
    t = from_numpy(tall)
    # Read in place: 40 segments' partial sums, then their sum (a CPU: 8 columns a work-item).
    tall_kernels = ["reduce_cols8"] if cpu else ["reduce_cols", "reduce_cols"]
    assert launched_kernels(lambda: ops.sum(t, 0)) == tall_kernels
    np.testing.assert_allclose(ops.sum(t, 0).numpy(),
                               tall.astype(np.float64).sum(0), rtol=1e-5, atol=1e-4)
    x = rng.standard_normal((40, 64)).astype(np.float32)
    view = from_numpy(x)[:, ::2]  # not contiguous: copied into rows first
    rows = "reduce_strips" if cpu else "reduce_rows"
    assert launched_kernels(lambda: ops.sum(view, 0)) == ["elementwise", rows]
    np.testing.assert_allclose(ops.sum(view, 0).numpy(), x[:, ::2].astype(np.float64).sum(0),
                               rtol=1e-5, atol=1e-5)


def test_float32_sum_keeps_small_terms() -> None:
    # A plain float32 running sum drops every 1e-8 added to 1.0; the
    # compensated sum keeps them.
    x = np.full(1_000_000, 1e-8, np.float32)
    x[0] = 1.0
    got = ops.sum(from_numpy(x)).item()
    assert got == pytest.approx(x.astype(np.float64).sum(), rel=1e-6)
    # The same down 64 columns: 8192 rows, in 16 segments (reduce_cols) or 8 columns a
    # work-item (reduce_cols8).
    columns = np.full((8192, 64), 1e-8, np.float32)
    columns[0] = 1.0
    got_columns = ops.sum(from_numpy(columns), 0).numpy()
    assert np.all(np.abs(got_columns - columns.astype(np.float64).sum(0))
                  <= kahan_tree_bound(columns, 0, passes=2))


def test_fp16_accumulates_in_float(rng: np.random.Generator) -> None:
    x = rng.uniform(0, 1, 4096).astype(np.float16)
    t = from_numpy(x)
    total = ops.sum(t)
    assert total.dtype == np.float16
    # 4096 fp16 additions in fp16 would be off by far more than fp16 rounding of the result.
    assert total.item() == pytest.approx(x.astype(np.float64).sum(), rel=1e-3)
    assert ops.max(t).item() == x.max()
    assert ops.mean(t.reshape(64, 64), 1).numpy() == pytest.approx(
        x.astype(np.float64).reshape(64, 64).mean(1), rel=1e-3
    )
    assert ops.logsumexp(t).item() == pytest.approx(logsumexp_ref(x, None), rel=1e-3)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.bool_])
def test_integer_and_bool_dtypes(dtype: type, rng: np.random.Generator) -> None:
    x: Array = rng.integers(0, 2 if dtype is np.bool_ else 1000, (4, 50)).astype(dtype)
    t = from_numpy(x)
    total = ops.sum(t, 1)
    assert total.dtype == np.int64 and np.array_equal(total.numpy(), x.sum(1))
    average = ops.mean(t, 0)
    assert average.dtype == np.float32
    np.testing.assert_allclose(average.numpy(), x.mean(0), rtol=1e-6)
    assert ops.max(t, 1).dtype == dtype and np.array_equal(ops.max(t, 1).numpy(), x.max(1))
    assert np.array_equal(ops.min(t, 0).numpy(), x.min(0))
    assert np.array_equal(ops.argmin(t, 1).numpy(), x.argmin(1))


def test_int32_sum_does_not_wrap() -> None:
    x = np.full(8, 2**30, np.int32)
    assert ops.sum(from_numpy(x)).item() == 2**33


def test_nan_propagates_and_argmax_finds_it() -> None:
    x = np.array([[1.0, np.nan, 3.0, np.nan], [1.0, 2.0, 3.0, 0.0]], np.float32)
    t = from_numpy(x)
    assert np.array_equal(ops.max(t, 1).numpy(), np.max(x, 1), equal_nan=True)
    assert np.array_equal(ops.min(t, 1).numpy(), np.min(x, 1), equal_nan=True)
    assert ops.argmax(t, 1).tolist() == [1, 2]
    assert ops.argmin(t, 1).tolist() == [1, 3]


def test_logsumexp_is_stable() -> None:
    big = tensor([1000.0, 1000.0, -1000.0])
    assert ops.logsumexp(big).item() == pytest.approx(1000.0 + np.log(2.0))
    assert ops.logsumexp(tensor([-np.inf, -np.inf])).item() == -np.inf
    assert ops.logsumexp(tensor([np.inf, 1.0])).item() == np.inf


def test_empty_reductions() -> None:
    empty = from_numpy(np.zeros((3, 0), np.float32))
    assert ops.sum(empty, 1).tolist() == [0.0, 0.0, 0.0]
    assert ops.sum(empty).item() == 0.0
    assert np.isnan(ops.mean(empty, 1).numpy()).all()
    assert ops.logsumexp(empty, 1).tolist() == [-np.inf] * 3
    assert ops.max(empty, 0).shape == (0,)  # nothing is reduced over an empty axis here
    for name in ("max", "min", "argmax", "argmin"):
        with pytest.raises(ValueError, match=r"no elements"):
            getattr(ops, name)(empty, 1)


def test_bad_axes_are_refused_before_anything_is_allocated(device: Device) -> None:
    t = from_numpy(np.zeros((2, 3), np.float32))
    before = device.pool.stats().bytes_in_use
    with pytest.raises(IndexError, match=r"axis 2 is out of range for shape \(2, 3\)"):
        ops.sum(t, 2)
    with pytest.raises(ValueError, match="appears twice"):
        ops.max(t, (1, -1))
    with pytest.raises(TypeError, match="axis must be an int"):
        ops.argmax(t, (0, 1))  # type: ignore[arg-type]
    assert device.pool.stats().bytes_in_use == before


@pytest.mark.smoke
def test_tensor_methods_reach_the_ops() -> None:
    t = tensor([[1.0, 5.0], [3.0, 2.0]])
    assert t.sum().item() == 11.0 and t.mean(0).tolist() == [2.0, 3.5]
    assert t.max(1, keepdims=True).tolist() == [[5.0], [3.0]]
    assert t.argmax().item() == 1


def test_reductions_are_recorded_with_normalized_axes(tape: RecordLog) -> None:
    t = tensor(np.ones((2, 3, 4)), requires_grad=True)
    for name in ("sum", "mean", "max", "min", "logsumexp"):
        out = getattr(ops, name)(t, (-1, 0), True)
        call = tape.calls[-1]
        assert (call.op, call.inputs[0], call.output) == (name, t, out)
        assert call.saved == {"axis": (0, 2), "keepdims": True}
        assert out.requires_grad and not out.is_leaf
    ops.sum(t)
    assert tape.calls[-1].saved["axis"] == (0, 1, 2)
    count = len(tape.calls)
    index = ops.argmax(t, 1)
    assert len(tape.calls) == count and not index.requires_grad


# (shape, axes) for a CPU's reduce_strips, read as [outer, kept, inner]: BatchNorm's
# channels (N, C, H, W) over (0, 2, 3) in place, a leading axis with a suffix kept
# (inner 1 goes to reduce_cols8 for sums), short rows of softmax's shape, odd lengths
# past and short of the 8 lanes and the 64-element strip, and an axis between kept
# ones (copied into rows first: the third item).
STRIP_CASES = [((6, 5, 7, 9), (0, 2, 3), False), ((3, 70, 131), (0, 2), False),
               ((9, 13, 3), (0,), False), ((300, 32), -1, False), ((11, 203), 1, False),
               ((4, 6, 5), 1, True), ((2, 3, 4, 5), (1, 3), True)]


def strips_bound(x: Array, axis: AxisArg) -> Array:
    """What reduce_strips's float sum admits per output: a lane's plain sum of up to 8
    terms within a strip, 7u * sum(|x|) (Higham 4.2, u = 2^-24), the strips'
    compensated sum 2u and the lanes' 2u (4.3), the result's rounding 1u: 12u."""
    bound: Array = 12 * 2.0**-24 * np.abs(x.astype(np.float64)).sum(axis=axis)
    return bound


@pytest.mark.parametrize(("shape", "axis", "copied"), STRIP_CASES)
def test_cpu_strips_read_in_place_and_match_float64(
    shape: tuple[int, ...], axis: AxisArg, copied: bool, rng: np.random.Generator,
    device: Device
) -> None:
    x = rng.standard_normal(shape).astype(np.float32)
    x.flat[::17] *= 30  # uneven magnitudes, so max and the lse shift are not all alike
    t = from_numpy(x)
    if device.type == "cpu":
        names = launched_kernels(lambda: ops.max(t, axis))
        assert names == (["elementwise"] if copied else []) + ["reduce_strips"]
    want = x.astype(np.float64).sum(axis=axis)
    assert np.all(np.abs(ops.sum(t, axis).numpy() - want) <= strips_bound(x, axis))
    count = x.size // want.size
    assert np.all(np.abs(ops.mean(t, axis).numpy() - want / count)
                  <= strips_bound(x, axis) / count + 2.0**-24 * np.abs(want / count))
    assert np.array_equal(ops.max(t, axis).numpy(), x.max(axis=axis))
    assert np.array_equal(ops.min(t, axis).numpy(), x.min(axis=axis))
    if isinstance(axis, int):
        assert np.array_equal(ops.argmax(t, axis).numpy(), x.argmax(axis=axis))
    # exp rounds each term within a few u; the sum of positive terms and the log add
    # a few more: 1e-6 relative is float32's reach with room for libm's exp.
    np.testing.assert_allclose(ops.logsumexp(t, axis).numpy(), logsumexp_ref(x, axis),
                               rtol=1e-6, atol=1e-6)


def test_cpu_strips_propagate_nan_and_infinities() -> None:
    x = np.zeros((3, 4, 19), np.float32)
    x[0, 1, 17] = np.nan  # in the scalar tail past the 8 lanes
    x[1, 2, 3] = np.nan
    x[2, 0, 5] = np.inf
    x[2, 3, 18] = -np.inf
    t = from_numpy(x)
    for axis in [(0, 2), 2]:
        with np.errstate(invalid="ignore"):
            np.testing.assert_array_equal(ops.max(t, axis).numpy(), x.max(axis=axis))
            np.testing.assert_array_equal(ops.min(t, axis).numpy(), x.min(axis=axis))
            # torch's: a row holding inf and no NaN is inf (no inf - inf shift).
            want = torch.logsumexp(torch.from_numpy(x), axis).numpy()
            np.testing.assert_allclose(ops.logsumexp(t, axis).numpy(), want, rtol=1e-6)
            np.testing.assert_array_equal(ops.sum(t, axis).numpy(), x.sum(axis=axis))
