"""Every elementwise op against numpy: broadcasting, scalars, views, dtypes, in-place, errors."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from conftest import LaunchLog

from netcl.core.device import Device, manager
from netcl.core.tensor import Tensor, from_numpy, ops, tensor, zeros
from netcl.core.tensor.launch import launch_size, observing
from netcl.core.tensor.ops import elementwise as elementwise_module

Array = np.ndarray[Any, Any]

BINARY: list[tuple[str, Callable[..., Array]]] = [
    ("add", np.add),
    ("sub", np.subtract),
    ("mul", np.multiply),
    ("div", np.true_divide),
    ("pow", np.power),
    ("maximum", np.maximum),
    ("minimum", np.minimum),
]
COMPARE: list[tuple[str, Callable[..., Array]]] = [
    ("lt", np.less),
    ("le", np.less_equal),
    ("gt", np.greater),
    ("ge", np.greater_equal),
    ("eq", np.equal),
    ("ne", np.not_equal),
]
UNARY: list[tuple[str, Callable[[Array], Array]]] = [
    ("neg", np.negative),
    ("abs", np.abs),
    ("exp", np.exp),
    ("log", np.log),
    ("sqrt", np.sqrt),
    ("relu", lambda x: np.maximum(x, 0)),
    ("sigmoid", lambda x: 1 / (1 + np.exp(-x))),
    ("tanh", np.tanh),
    ("erf", np.vectorize(math.erf)),
]
POSITIVE_ONLY = {"log", "sqrt", "pow"}


def operand(rng: np.random.Generator, shape: tuple[int, ...], positive: bool) -> Array:
    values = rng.uniform(0.5, 2.0, shape) if positive else rng.uniform(-2.0, 2.0, shape)
    return values.astype(np.float32)


def check(got: Tensor, want: Array, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    assert got.shape == want.shape
    np.testing.assert_allclose(got.numpy().astype(np.float64), want, rtol=rtol, atol=atol)


@pytest.mark.parametrize(("name", "ref"), BINARY, ids=[b[0] for b in BINARY])
def test_binary_broadcasts_like_numpy(
    name: str, ref: Callable[..., Array], rng: np.random.Generator
) -> None:
    positive = name in POSITIVE_ONLY or name == "div"
    a = operand(rng, (4, 1, 5), positive)
    b = operand(rng, (3, 1), positive)
    got = getattr(ops, name)(from_numpy(a), from_numpy(b))
    assert got.dtype == np.float32
    check(got, ref(a.astype(np.float64), b.astype(np.float64)))


@pytest.mark.parametrize("name", ["sub", "div", "pow"])
def test_scalar_operands_on_either_side(name: str, rng: np.random.Generator) -> None:
    a = operand(rng, (7,), positive=True)
    ref = dict(BINARY)[name]
    op = getattr(ops, name)
    check(op(from_numpy(a), 1.5), ref(a.astype(np.float64), 1.5))
    check(op(1.5, from_numpy(a)), ref(1.5, a.astype(np.float64)))


@pytest.mark.smoke
def test_python_operators_reach_the_ops(rng: np.random.Generator) -> None:
    a = operand(rng, (2, 3), positive=True)
    t = from_numpy(a)
    x = a.astype(np.float64)
    check(2 - t / 4 + t * t - (-t) ** 2, 2 - x / 4 + x * x - (-x) ** 2)
    check(3 / t, 3 / x)
    check(2**t, 2**x)
    assert np.array_equal((t < 1).numpy(), a < 1)
    # A scalar on the left reaches Tensor.__le__ through Python's reflection.
    assert np.array_equal((1 >= t).numpy(), a <= 1)  # noqa: SIM300


@pytest.mark.parametrize(("name", "ref"), COMPARE, ids=[c[0] for c in COMPARE])
def test_comparisons_give_bool(name: str, ref: Callable[..., Array]) -> None:
    a = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]], np.float32)
    b = np.array([2.0, 2.0, 2.0], np.float32)
    got = getattr(ops, name)(from_numpy(a), from_numpy(b))
    assert got.dtype == np.bool_
    assert np.array_equal(got.numpy(), ref(a, b))


@pytest.mark.parametrize(("name", "ref"), UNARY, ids=[u[0] for u in UNARY])
def test_unary_matches_numpy(
    name: str, ref: Callable[[Array], Array], rng: np.random.Generator
) -> None:
    a = operand(rng, (3, 5), positive=name in POSITIVE_ONLY)
    check(getattr(ops, name)(from_numpy(a)), ref(a.astype(np.float64)))


@pytest.mark.parametrize(
    ("shape_a", "shape_b"),
    [((0, 3), (1, 3)), ((1, 1, 4), (4, 1, 1)), ((), (2, 2)), ((5, 0), (5, 1))],
)
def test_size_one_empty_and_0d_shapes(
    shape_a: tuple[int, ...], shape_b: tuple[int, ...], rng: np.random.Generator
) -> None:
    a, b = operand(rng, shape_a, False), operand(rng, shape_b, False)
    check(ops.add(from_numpy(a), from_numpy(b)), a.astype(np.float64) + b)


@pytest.mark.parametrize("size", [64, 65, 192, 4097], ids=lambda n: f"n{n}")
def test_launches_with_and_without_a_rounded_tail(size: int, rng: np.random.Generator) -> None:
    # A multiple of the launch alignment (64) runs the CPU build without a bound
    # test, any other size the one with it; flat and broadcast plans alike.
    a, b = operand(rng, (size,), False), operand(rng, (size,), False)
    check(ops.add(from_numpy(a), from_numpy(b)), a.astype(np.float64) + b)
    rows, row = operand(rng, (2, size), False), operand(rng, (size,), False)
    check(ops.mul(from_numpy(rows), from_numpy(row)), rows.astype(np.float64) * row)


@pytest.fixture
def vector_lanes(device: Device, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Flat launches take four elements a work-item, as on a GPU (the CPU does not),
    with plans made from here on and dropped after."""
    monkeypatch.setattr(elementwise_module, "vector_lanes", lambda device: True)
    device.kernels.plans.clear()
    yield
    device.kernels.plans.clear()


@pytest.mark.parametrize("size", [1, 3, 4, 5, 7, 8, 9, 1003], ids=lambda n: f"n{n}")
def test_four_lanes_a_work_item_at_any_size_and_offset(
    size: int, vector_lanes: None, rng: np.random.Generator
) -> None:
    a, b = operand(rng, (size + 3,), True), operand(rng, (size,), False)
    view = from_numpy(a)[3:]  # element 3 of its buffer: no vector alignment
    log = LaunchLog()
    with observing(log):
        got = ops.mul(view, from_numpy(b))
    assert log.launches[-1][1] == (launch_size(-(-size // 4)),)  # a work-item per 4 elements
    check(got, a[3:].astype(np.float64) * b)
    check(ops.where(from_numpy(b > 0), view, 2.5), np.where(b > 0, a[3:], 2.5))
    check(ops.sqrt(view), np.sqrt(a[3:].astype(np.float64)))
    ints = np.arange(size, dtype=np.int32)
    assert np.array_equal((from_numpy(ints) * 3 - 1).numpy(), ints * 3 - 1)


def test_what_four_lanes_do_not_take_runs_one_element_a_work_item(
    vector_lanes: None, rng: np.random.Generator
) -> None:
    a = operand(rng, (6, 7), False)
    t = from_numpy(a)
    log = LaunchLog()
    with observing(log):
        # Broadcast, transposed, fp16, bool out: not flat, or not 4 bytes an element.
        cases = [(t + from_numpy(a[0]), a + a[0]), (t.T * 2, a.T * 2.0),
                 (ops.cast(t, np.float16), a.astype(np.float16)), (t > 0, a > 0)]
    assert [g for _, g, _ in log.launches] == [(launch_size(42),)] * 4
    for got, want in cases:
        np.testing.assert_allclose(got.numpy().astype(np.float64), want, rtol=1e-3)


def test_strided_operands_on_a_cpu_launch_rows(rng: np.random.Generator) -> None:
    # Where PoCL vectorizes across work-items (no vector lanes), strided launches are 2-D:
    # (innermost size, the rest), the outer index taken once a row (elementwise.cl's ROWS).
    a = operand(rng, (3, 5, 7), False)
    t = from_numpy(a)
    if elementwise_module.vector_lanes(t.device):
        pytest.skip("rows are the launch of devices without vector lanes (PoCL)")
    log = LaunchLog()
    with observing(log):
        cases = [(t + from_numpy(a[:, :1, :1]), a + a[:, :1, :1]),
                 (ops.permute(t, (2, 0, 1)) * 2, a.transpose(2, 0, 1) * 2.0),
                 (t[:, ::2, 1:] - 1, a[:, ::2, 1:] - 1.0)]
    assert [g for _, g, _ in log.launches] == [(35, 3), (15, 7), (6, 9)]  # dims collapsed
    for got, want in cases:
        np.testing.assert_array_equal(got.numpy(), want.astype(np.float32))


def test_non_contiguous_views(rng: np.random.Generator) -> None:
    a = operand(rng, (6, 8), False)
    t = from_numpy(a)
    transposed, stepped = t.T, t[1::2, ::3]
    assert not transposed.is_contiguous and not stepped.is_contiguous
    check(transposed * 2 + transposed, a.T * 3.0)
    check(stepped - t[:3, :3], a[1::2, ::3].astype(np.float64) - a[:3, :3])
    check(ops.exp(t[::-1, 2:]), np.exp(a[::-1, 2:].astype(np.float64)))


def test_fp16_in_fp16_tolerance(rng: np.random.Generator) -> None:
    a = operand(rng, (33,), False).astype(np.float16)
    b = operand(rng, (33,), False).astype(np.float16)
    ta, tb = from_numpy(a), from_numpy(b)
    x, y = a.astype(np.float64), b.astype(np.float64)
    for got, want in [(ta + tb, x + y), (ta * tb, x * y), (ops.exp(ta), np.exp(x))]:
        assert got.dtype == np.float16
        check(got, want, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_integer_arithmetic_stays_integer(dtype: type, rng: np.random.Generator) -> None:
    a: Array = rng.integers(-50, 50, (4, 6)).astype(dtype)
    b: Array = rng.integers(1, 9, (6,)).astype(dtype)
    ta, tb = from_numpy(a), from_numpy(b)
    cases = [(ta + tb, a + b), (ta * tb - 3, a * b - 3), (ops.maximum(ta, tb), np.maximum(a, b))]
    for got, want in cases:
        assert got.dtype == dtype
        assert np.array_equal(got.numpy(), want)
    quotient = ta / tb  # true division, as numpy's / is
    assert quotient.dtype == np.float32
    np.testing.assert_allclose(quotient.numpy(), a / b, rtol=1e-6)


@pytest.mark.parametrize(
    ("a", "b", "dtype"),
    [
        (np.ones(3, np.int32), np.ones(3, np.float32), np.float32),
        (np.ones(3, np.int32), np.ones(3, np.int64), np.int64),
        (np.ones(3, np.bool_), np.ones(3, np.int32), np.int32),
        (np.ones(3, np.float16), np.ones(3, np.float32), np.float32),
        (np.ones(3, np.int32), 2.5, np.float32),
        (np.ones(3, np.float16), 2.5, np.float16),
        (np.ones(3, np.bool_), 2, np.int64),
    ],
)
def test_dtype_promotion(a: Array, b: Array | float, dtype: type) -> None:
    other = from_numpy(b) if isinstance(b, np.ndarray) else b
    got = ops.add(from_numpy(a), other)
    assert got.dtype == dtype
    np.testing.assert_allclose(got.numpy().astype(np.float64), a.astype(np.float64) + b)


def test_pow_of_integers_is_float32() -> None:
    got = ops.pow(tensor([2, 3], dtype="int32"), 2)
    assert got.dtype == np.float32 and got.tolist() == [4.0, 9.0]


def test_where_selects_and_promotes(rng: np.random.Generator) -> None:
    a = operand(rng, (3, 4), False)
    cond = from_numpy(a > 0)
    got = ops.where(cond, from_numpy(a), 0.0)
    check(got, np.where(a > 0, a, 0.0))
    by_scalars = ops.where(cond[:, :1], 1, 0)
    assert by_scalars.dtype == np.int64
    assert np.array_equal(by_scalars.numpy(), np.where(a[:, :1] > 0, 1, 0))


def test_where_rejects_a_non_bool_condition() -> None:
    with pytest.raises(TypeError, match="condition must be bool, got float32"):
        ops.where(tensor([1.0, 0.0]), 1.0, 2.0)


def test_cast_and_copy() -> None:
    t = tensor([0.0, 1.5, -2.7])
    assert ops.cast(t, "bool").tolist() == [False, True, True]
    assert ops.cast(t, "int32").tolist() == [0, 1, -2]
    half = ops.cast(t, "float16")
    assert half.dtype == np.float16 and half.tolist() == [0.0, 1.5, np.float16(-2.7)]
    view = from_numpy(np.arange(6, dtype=np.float32).reshape(2, 3)).T
    copied = ops.copy(view)
    assert copied.is_contiguous and copied.buffer is not view.buffer
    assert np.array_equal(copied.numpy(), np.arange(6).reshape(2, 3).T)


def test_in_place_ops_write_through_views() -> None:
    base = zeros((3, 4))
    base[:, ::2].fill_(5)
    base.T.add_(tensor([1.0, 2.0, 3.0]))  # broadcast along the view's last axis
    base[1].mul_(2)
    base[2, 1:3].add_(tensor([1.0, 1.0]), alpha=-4)
    base[0, 3:].copy_(tensor([7], dtype="int32"))  # cast on the way in
    want = np.zeros((3, 4))
    want[:, ::2] = 5
    want += np.array([1.0, 2.0, 3.0])[:, None]
    want[1] *= 2
    want[2, 1:3] -= 4
    want[0, 3] = 7
    assert np.array_equal(base.numpy(), want)


def test_incompatible_shapes_name_both_and_allocate_nothing(device: Device) -> None:
    a, b = zeros((2, 3)), zeros((4,))
    before = device.pool.stats()
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(4,\)"):
        ops.add(a, b)
    assert device.pool.stats().bytes_in_use == before.bytes_in_use


def test_in_place_result_must_fit_the_target() -> None:
    target = tensor([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"\(2, 3\) does not fit output \(3,\)"):
        target.add_(zeros((2, 3)))
    assert target.tolist() == [1.0, 2.0, 3.0]


def test_tensors_on_two_devices_are_refused(device: Device) -> None:
    other = Device(device.cl_device, "other")
    here = tensor([1.0, 2.0], device=device)
    there = tensor([1.0, 2.0], device=other)
    assert other.context != device.context and manager.default("auto") is device
    with pytest.raises(ValueError, match="different devices"):
        ops.add(here, there)
    with pytest.raises(ValueError, match="different devices"):
        here.copy_(there)
