"""bfloat16: host round trip through ml_dtypes, casts, promotion, elementwise ops,
reductions, matmul and conv, against ml_dtypes, float64 and torch CPU.

A bf16 has 8 significand bits: one rounding to bf16 is off by at most half a
unit in the last place, 2**-8 relative (``HALF_ULP``). A kernel that computes in
float32 and rounds once on store lands exactly where torch's CPU bf16 op lands
whenever float32's own rounding does not cross a bf16 tie; ops whose float32
result is not correctly rounded in OpenCL (division, sqrt, exp, ...) may
therefore sit one bf16 unit away, never more.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import ml_dtypes
import numpy as np
import pytest
import torch

from netcl.core.device import Device
from netcl.core.tensor import bfloat16, float16, float32, from_numpy, int32, int64, ops
from netcl.core.tensor import dtypes as dtypes_module
from netcl.core.tensor.ops.matmul import TILE_CONFIGS, matmul_with

Array = np.ndarray[Any, Any]
BF16 = np.dtype(ml_dtypes.bfloat16)
HALF_ULP = 2.0**-8
ULP = 2.0**-7  # bf16's spacing relative to a value's power of two
F32_EPS = 2.0**-24


def bits(a: Array) -> Array:
    return np.ascontiguousarray(a).view(np.uint16)


def special_floats(rng: np.random.Generator) -> Array:
    """Random floats plus the cases rounding gets wrong: exact ties both ways,
    values just off a tie, the overflow edge, subnormals, infinities and NaN."""
    base = rng.standard_normal(2000).astype(np.float32) * np.float32(100)
    ones = np.float32(1) + np.arange(-64, 64, dtype=np.float32) * np.float32(2**-9)
    tie_up = np.float32(1 + 2**-7 + 2**-8)  # halfway, odd below: rounds up
    tie_down = np.float32(1 + 2**-8)  # halfway, even below: rounds down
    near = np.nextafter(np.float32([tie_down, tie_up]), np.float32(2))
    edges = np.array([3.3895e38, 3.4e38, -3.4e38, 1e-40, -1e-40, 1e-45, 0.0, -0.0,
                      np.inf, -np.inf, np.nan], np.float32)
    return np.concatenate([base, ones, [tie_up, tie_down, -tie_up], near, edges]).astype(
        np.float32)


def test_bfloat16_is_ml_dtypes_and_netcl_knows_it() -> None:
    assert bfloat16 == BF16
    assert dtypes_module.as_dtype("bfloat16") == bfloat16
    assert dtypes_module.is_floating(bfloat16)
    assert bfloat16.itemsize == 2


def test_numpy_round_trip_keeps_every_bit(device: Device, rng: np.random.Generator) -> None:
    host = special_floats(rng).astype(BF16).reshape(-1, 1)
    t = from_numpy(host, device)
    assert t.dtype == bfloat16
    np.testing.assert_array_equal(bits(t.numpy()), bits(host))
    assert isinstance(t[3, 0].item(), float)


def test_cast_to_bfloat16_rounds_to_nearest_even_like_ml_dtypes(
    device: Device, rng: np.random.Generator
) -> None:
    values = special_floats(rng)
    got = ops.cast(from_numpy(values, device), bfloat16).numpy()
    want = values.astype(BF16)
    finite = ~np.isnan(values)
    np.testing.assert_array_equal(bits(got)[finite], bits(want)[finite])
    assert np.isnan(got.astype(np.float32)[~finite]).all()


def test_cast_from_bfloat16_is_exact_and_reaches_every_dtype(
    device: Device, rng: np.random.Generator
) -> None:
    values = special_floats(rng)
    values = values[np.isfinite(values)].astype(BF16)
    t = from_numpy(values, device)
    np.testing.assert_array_equal(ops.cast(t, float32).numpy(), values.astype(np.float32))
    with np.errstate(over="ignore"):  # past fp16's range is inf on both sides
        as_half = values.astype(np.float32).astype(np.float16)
    np.testing.assert_array_equal(ops.cast(t, float16).numpy(), as_half)
    small = values[np.abs(values.astype(np.float32)) < 1e9]
    np.testing.assert_array_equal(ops.cast(from_numpy(small, device), int64).numpy(),
                                  small.astype(np.float32).astype(np.int64))
    # fp16 -> bf16 goes through float32 exactly, then rounds once.
    halves = rng.standard_normal(500).astype(np.float16)
    np.testing.assert_array_equal(
        bits(ops.cast(from_numpy(halves, device), bfloat16).numpy()),
        bits(halves.astype(np.float32).astype(BF16)))


_TORCH = {float32: torch.float32, float16: torch.float16, bfloat16: torch.bfloat16,
          int32: torch.int32, int64: torch.int64, np.dtype(np.bool_): torch.bool}
_FROM_TORCH = {v: k for k, v in _TORCH.items()}


@pytest.mark.parametrize("a", list(_TORCH), ids=str)
@pytest.mark.parametrize("b", list(_TORCH), ids=str)
def test_promotion_is_torchs(a: np.dtype[Any], b: np.dtype[Any]) -> None:
    want = torch.promote_types(_TORCH[a], _TORCH[b])
    assert dtypes_module.promote(a, b) == _FROM_TORCH[want]


@pytest.mark.parametrize("dtype", list(_TORCH), ids=str)
@pytest.mark.parametrize("scalar", [0.5, 2, True])
def test_scalar_promotion_is_torchs(dtype: np.dtype[Any], scalar: float | int | bool) -> None:
    want = torch.result_type(torch.zeros(1, dtype=_TORCH[dtype]), scalar)
    assert dtypes_module.promote_with_scalar(dtype, scalar) == _FROM_TORCH[want]


def test_mixed_tensors_run_in_the_promoted_dtype(device: Device) -> None:
    x = from_numpy(np.array([1.5, 2.25], np.float32).astype(BF16), device)
    h = from_numpy(np.array([0.25, 1e-3], np.float16), device)
    assert (x + h).dtype == float32  # neither 16-bit float holds the other
    np.testing.assert_array_equal((x + h).numpy(),
                                  np.float32([1.5, 2.25]) + np.float16([0.25, 1e-3]))
    assert (x * 0.1).dtype == bfloat16
    assert (x + from_numpy(np.array([1, 2], np.int32), device)).dtype == bfloat16


# name, netcl op, torch op, exact: whether float32's result is correctly rounded in
# OpenCL (then the bf16 result equals torch's bit for bit).
UNARY = [
    ("neg", ops.neg, torch.neg, True),
    ("abs", ops.abs, torch.abs, True),
    ("relu", ops.relu, torch.relu, True),
    ("exp", ops.exp, torch.exp, False),
    ("log", ops.log, torch.log, False),
    ("sqrt", ops.sqrt, torch.sqrt, False),
    ("tanh", ops.tanh, torch.tanh, False),
    ("sigmoid", ops.sigmoid, torch.sigmoid, False),
]
BINARY = [
    ("add", ops.add, torch.add, True),
    ("sub", ops.sub, torch.sub, True),
    ("mul", ops.mul, torch.mul, True),
    ("div", ops.div, torch.div, False),
    ("maximum", ops.maximum, torch.maximum, True),
]


def _check_against_torch(got: Array, want: torch.Tensor, exact: bool) -> None:
    want_f = want.float().numpy()
    got_f = got.astype(np.float32)
    if exact:
        np.testing.assert_array_equal(got_f, want_f)
        return
    # One bf16 unit of the larger of the two, and at least one at bf16's smallest normal.
    unit = np.maximum(np.abs(want_f), np.float32(2.0**-126)) * np.float32(ULP)
    assert (np.abs(got_f - want_f) <= unit).all(), np.abs(got_f - want_f).max()


@pytest.mark.parametrize(("name", "op", "torch_op", "exact"), UNARY, ids=[u[0] for u in UNARY])
def test_unary_ops_match_torch_cpu(device: Device, rng: np.random.Generator, name: str,
                                   op: Any, torch_op: Any, exact: bool) -> None:
    values = rng.standard_normal((37, 29)).astype(np.float32) * 3
    if name in ("log", "sqrt"):
        values = np.abs(values) + np.float32(0.01)
    host = values.astype(BF16)
    got = op(from_numpy(host, device))
    assert got.dtype == bfloat16
    _check_against_torch(got.numpy(), torch_op(torch.from_numpy(values).bfloat16()), exact)


@pytest.mark.parametrize(("name", "op", "torch_op", "exact"), BINARY, ids=[b[0] for b in BINARY])
def test_binary_ops_match_torch_cpu(device: Device, rng: np.random.Generator, name: str,
                                    op: Any, torch_op: Any, exact: bool) -> None:
    a = rng.standard_normal((37, 29)).astype(np.float32)
    b = rng.standard_normal((29,)).astype(np.float32) + np.float32(0.1)  # broadcast
    got = op(from_numpy(a.astype(BF16), device), from_numpy(b.astype(BF16), device))
    want = torch_op(torch.from_numpy(a).bfloat16(), torch.from_numpy(b).bfloat16())
    _check_against_torch(got.numpy(), want, exact)
    # A Python float keeps bf16 but is not rounded to bf16 first: the op runs in
    # float32 with the scalar as float32, in every op (torch's CPU add rounds the
    # scalar to bf16 first, its CPU mul does not), so the reference is that form.
    got_scalar = op(from_numpy(a.astype(BF16), device), 0.3)
    want_scalar = torch_op(torch.from_numpy(a).bfloat16().float(), torch.tensor(0.3)).bfloat16()
    assert got_scalar.dtype == bfloat16
    _check_against_torch(got_scalar.numpy(), want_scalar, exact)


@pytest.mark.parametrize("axis", [None, 0, 1])
def test_sum_and_mean_accumulate_in_float32(device: Device, rng: np.random.Generator,
                                            axis: int | None) -> None:
    """An fp16-style bf16 accumulator would lose everything past 256 equal terms; in
    float32 the only errors are float32's per add and one bf16 rounding at the end."""
    host = (rng.random((300, 70)).astype(np.float32) + np.float32(0.5)).astype(BF16)
    exact = host.astype(np.float64)
    t = from_numpy(host, device)
    for op, ref in ((ops.sum, np.sum), (ops.mean, np.mean)):
        got = op(t, axis=axis)
        assert got.dtype == bfloat16
        want = ref(exact, axis=axis)
        n = exact.size if axis is None else exact.shape[axis]
        bound = np.abs(want) * (HALF_ULP + n * F32_EPS)
        assert (np.abs(got.numpy().astype(np.float64) - want) <= bound).all()
    maxed = ops.max(t, axis=axis).numpy()
    np.testing.assert_array_equal(bits(maxed), bits(np.max(host, axis=axis)))


KERNELS = [("panel", None), ("tiled", TILE_CONFIGS[-1]),
           ("tiled", dataclasses.replace(TILE_CONFIGS[-1], pipelined=True))]


@pytest.mark.parametrize(("kernel", "tile"), KERNELS, ids=["panel", "tiled", "pipelined"])
@pytest.mark.parametrize("shape", [(3, 17, 5), (65, 130, 17), (2, 3, 9, 4)])
def test_matmul_accumulates_in_float32_and_rounds_once(
    device: Device, rng: np.random.Generator, kernel: str, tile: Any,
    shape: tuple[int, ...],
) -> None:
    *batch, m, k, n = shape if len(shape) == 4 else (*shape[:0], *shape)
    a = rng.standard_normal((*batch, m, k)).astype(np.float32).astype(BF16)
    b = rng.standard_normal((k, n)).astype(np.float32).astype(BF16)
    got = matmul_with(from_numpy(a, device), from_numpy(b, device), kernel, tile)
    assert got.dtype == bfloat16
    want = np.matmul(a.astype(np.float64), b.astype(np.float64))
    magnitude = np.matmul(np.abs(a.astype(np.float64)), np.abs(b.astype(np.float64)))
    bound = np.abs(want) * HALF_ULP + magnitude * k * F32_EPS
    assert (np.abs(got.numpy().astype(np.float64) - want) <= bound).all()


def test_matmul_refuses_mixed_float_dtypes(device: Device) -> None:
    a = from_numpy(np.ones((2, 2), BF16), device)
    with pytest.raises(TypeError, match="bfloat16"):
        ops.matmul(a, from_numpy(np.ones((2, 2), np.float32), device))


@pytest.mark.parametrize("tile", [None, TILE_CONFIGS[-1]], ids=["unfold", "implicit-gemm"])
def test_conv2d_matches_torch_within_one_rounding(device: Device, rng: np.random.Generator,
                                                  tile: Any) -> None:
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32).astype(BF16)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32).astype(BF16)
    got = ops.conv2d(from_numpy(x, device), from_numpy(w, device), padding=1, tile=tile)
    assert got.dtype == bfloat16
    x64 = torch.from_numpy(x.astype(np.float64))
    w64 = torch.from_numpy(w.astype(np.float64))
    want = torch.nn.functional.conv2d(x64, w64, padding=1).numpy()
    magnitude = torch.nn.functional.conv2d(x64.abs(), w64.abs(), padding=1).numpy()
    bound = np.abs(want) * HALF_ULP + magnitude * 27 * F32_EPS
    assert (np.abs(got.numpy().astype(np.float64) - want) <= bound).all()
    pooled, _ = ops.max_pool2d(from_numpy(x, device), 2)
    want_pool = torch.nn.functional.max_pool2d(torch.from_numpy(x.astype(np.float32)), 2)
    np.testing.assert_array_equal(pooled.numpy().astype(np.float32), want_pool.numpy())


def test_bfloat16_tensors_can_require_grad(device: Device) -> None:
    t = from_numpy(np.ones(3, BF16), device)
    t.requires_grad = True
    assert t.requires_grad
