"""matmul against a float64 numpy reference: both kernels, edges, views, batches, fp16, errors.

Both kernels of matmul.cl run here on whatever device the session has: the
"panel" (CPU) kernel and the "tiled" (GPU) kernel are plain OpenCL, so PoCL
checks the GPU kernel's tiling, edges and layouts too.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

import ml_dtypes
import numpy as np
import pytest
from conftest import RecordLog
from hypothesis import given, settings
from hypothesis import strategies as st

from netcl.core.device import Device
from netcl.core.tensor import Tensor, from_numpy, ops
from netcl.core.tensor.ops.matmul import TILE_CONFIGS, TileConfig, matmul_with
from netcl.core.tensor.ops.matmul_tiles import choose_tile

Array = np.ndarray[Any, Any]
# The module itself: ops.matmul, the attribute, is the function.
matmul_module = importlib.import_module("netcl.core.tensor.ops.matmul")
gemm = importlib.import_module("netcl.core.tensor.ops.gemm")

# The tiled kernel's smallest shape builds fastest on PoCL, plain and with
# pipelined fragment reads (its own loop); the big one is checked separately below.
SMALL_TILE = TILE_CONFIGS[-1]
KERNELS: list[tuple[str, TileConfig | None]] = [
    ("panel", None), ("tiled", SMALL_TILE),
    ("tiled", dataclasses.replace(SMALL_TILE, pipelined=True))]
KERNEL_IDS = ["panel", "tiled", "tiled-pipelined"]
# Each test compiles its own kernel variants (the big tiles take a minute on PoCL): under
# xdist they spread over the workers (tests/conftest.py) instead of holding one to the end.
SPREAD_OVER_WORKERS = True

# (M, K, N): 1, 3, 17, 65 and 130 straddle the panel (6 x 16) and tile (64, 128) edges.
SHAPES = [
    (1, 1, 1),
    (3, 17, 5),
    (17, 3, 65),
    (65, 130, 17),
    (130, 65, 3),
    (1, 130, 65),
    (66, 8, 130),
]


def reference(a: Array, b: Array) -> Array:
    product: Array = np.matmul(a.astype(np.float64), b.astype(np.float64))
    return product


def check(got: Tensor, a: Array, b: Array) -> None:
    """fp32: rounding grows with K; fp16: one fp16 rounding of the float32 sum."""
    want = reference(a, b)
    assert got.shape == want.shape
    assert got.dtype == a.dtype
    scale = max(1.0, float(np.abs(want).max(initial=0.0)))
    k = a.shape[-1]
    tol = 1e-3 if a.dtype == np.float16 else 1e-6 * max(1.0, np.sqrt(k))
    np.testing.assert_allclose(got.numpy().astype(np.float64), want, rtol=tol, atol=tol * scale)


def normal(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any = np.float32) -> Array:
    return rng.standard_normal(shape).astype(dtype)


def transposed_view(host: Array, device: Device) -> Tensor:
    """``host`` on the device as a transposed view over its transpose's memory.

    Built from strides directly so this file tests matmul, not ops.transpose.
    """
    t = from_numpy(np.ascontiguousarray(np.swapaxes(host, -1, -2)), device)
    shape = (*t.shape[:-2], t.shape[-1], t.shape[-2])
    strides = (*t.strides[:-2], t.strides[-1], t.strides[-2])
    return Tensor(t.buffer, shape, t.dtype, device, strides, t.offset)


def strided_view(host: Array, device: Device) -> Tensor:
    """``host`` as a view with an offset and every other column of a wider buffer."""
    rows, cols = host.shape
    wide = np.zeros((rows + 1, 2 * cols + 1), host.dtype)
    wide[1:, 1::2] = host
    t = from_numpy(wide, device)
    return Tensor(t.buffer, (rows, cols), t.dtype, device, (2 * cols + 1, 2), 2 * cols + 2)


LAYOUTS = ["nn", "tn", "nt", "tt", "strided"]


def place(host: Array, layout: str, which: int, device: Device) -> Tensor:
    """Operand ``which`` (0: a, 1: b) stored as ``layout`` says."""
    if layout == "strided":
        return strided_view(host, device)
    if layout[which] == "t":
        return transposed_view(host, device)
    return from_numpy(host, device)


@pytest.mark.parametrize(("kernel", "tile"), KERNELS, ids=KERNEL_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_2d_matches_numpy_at_every_edge(
    kernel: str, tile: TileConfig | None, shape: tuple[int, int, int],
    device: Device, rng: np.random.Generator,
) -> None:
    m, k, n = shape
    a, b = normal(rng, (m, k)), normal(rng, (k, n))
    check(matmul_with(from_numpy(a, device), from_numpy(b, device), kernel, tile), a, b)


@pytest.mark.parametrize(("kernel", "tile"), KERNELS, ids=KERNEL_IDS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_views_are_read_through_their_strides(
    kernel: str, tile: TileConfig | None, layout: str, device: Device, rng: np.random.Generator
) -> None:
    a, b = normal(rng, (65, 130)), normal(rng, (130, 17))
    ta, tb = place(a, layout, 0, device), place(b, layout, 1, device)
    assert layout == "nn" or not (ta.is_contiguous and tb.is_contiguous)
    check(matmul_with(ta, tb, kernel, tile), a, b)


def test_the_large_gpu_tile_with_edges(device: Device, rng: np.random.Generator) -> None:
    a, b = normal(rng, (130, 70)), normal(rng, (70, 129))
    ta, tb = from_numpy(a, device), transposed_view(b, device)
    check(matmul_with(ta, tb, "tiled", TILE_CONFIGS[0]), a, b)


@pytest.mark.smoke
def test_the_public_op_and_the_operator(device: Device, rng: np.random.Generator) -> None:
    a, b = normal(rng, (33, 20)), normal(rng, (20, 18))
    ta, tb = from_numpy(a, device), from_numpy(b, device)
    check(ops.matmul(ta, tb), a, b)
    check(ta @ tb, a, b)


@pytest.mark.parametrize(("kernel", "tile"), KERNELS, ids=KERNEL_IDS)
@pytest.mark.parametrize(
    ("a_shape", "b_shape"),
    [
        ((4, 17, 9), (4, 9, 13)),  # plain batch
        ((2, 3, 17, 9), (9, 13)),  # 2-D B: folded into more rows of A
        ((17, 9), (3, 9, 13)),  # 2-D A against a batch of B
        ((2, 1, 17, 9), (3, 9, 13)),  # both broadcast
        ((2, 1, 2, 1, 5, 9), (1, 2, 1, 2, 9, 7)),  # four batch dims that do not collapse
    ],
    ids=["batch", "fold", "a-2d", "broadcast", "materialise"],
)
def test_batches_broadcast_like_numpy(
    kernel: str, tile: TileConfig | None, a_shape: tuple[int, ...], b_shape: tuple[int, ...],
    device: Device, rng: np.random.Generator,
) -> None:
    a, b = normal(rng, a_shape), normal(rng, b_shape)
    check(matmul_with(from_numpy(a, device), from_numpy(b, device), kernel, tile), a, b)


@pytest.mark.parametrize(("kernel", "tile"), KERNELS, ids=KERNEL_IDS)
def test_a_batch_of_transposed_views(
    kernel: str, tile: TileConfig | None, device: Device, rng: np.random.Generator
) -> None:
    a, b = normal(rng, (3, 20, 17)), normal(rng, (3, 20, 13))
    # a.T @ b, as a backward pass computes a weight gradient.
    got = matmul_with(transposed_view(np.swapaxes(a, -1, -2), device), from_numpy(b, device),
                      kernel, tile)
    check(got, np.swapaxes(a, -1, -2), b)


@pytest.mark.parametrize(("kernel", "tile"), KERNELS, ids=KERNEL_IDS)
def test_long_batches_run_in_slices(
    kernel: str, tile: TileConfig | None, device: Device, rng: np.random.Generator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The real slice is 65535 entries (NVIDIA's grid limit); 2 exercises the
    # same path on five entries.
    monkeypatch.setattr(gemm, "MAX_BATCH_SLICE", 2)
    device.kernels.plans.clear()  # plans made with the real slice would be reused
    a, b = normal(rng, (5, 7, 9)), normal(rng, (5, 9, 3))
    ta, tb = transposed_view(a, device), from_numpy(b, device)
    check(matmul_with(ta, tb, kernel, tile), a, b)


@pytest.mark.parametrize(
    ("a_shape", "b_shape"),
    [((9,), (9, 5)), ((7, 9), (9,)), ((9,), (9,)), ((2, 7, 9), (9,)), ((9,), (3, 9, 4))],
    ids=["vec-mat", "mat-vec", "dot", "batch-vec", "vec-batch"],
)
def test_1d_operands_as_numpy(
    a_shape: tuple[int, ...], b_shape: tuple[int, ...], device: Device, rng: np.random.Generator
) -> None:
    a, b = normal(rng, a_shape), normal(rng, b_shape)
    check(ops.matmul(from_numpy(a, device), from_numpy(b, device)), a, b)


@pytest.mark.parametrize(("kernel", "tile"), KERNELS, ids=KERNEL_IDS)
@pytest.mark.parametrize(
    ("a_shape", "b_shape"),
    [((5, 0), (0, 7)), ((0, 4), (4, 7)), ((5, 4), (4, 0)), ((0, 5, 4), (4, 3))],
    ids=["k0-zeros", "m0", "n0", "batch0"],
)
def test_empty_dimensions(
    kernel: str, tile: TileConfig | None, a_shape: tuple[int, ...], b_shape: tuple[int, ...],
    device: Device, rng: np.random.Generator,
) -> None:
    a, b = normal(rng, a_shape), normal(rng, b_shape)
    check(matmul_with(from_numpy(a, device), from_numpy(b, device), kernel, tile), a, b)


@pytest.mark.parametrize(("kernel", "tile"), KERNELS, ids=KERNEL_IDS)
@pytest.mark.parametrize("layout", ["nn", "tn", "nt"])
def test_fp16_accumulates_in_float(
    kernel: str, tile: TileConfig | None, layout: str, device: Device, rng: np.random.Generator
) -> None:
    # K = 300 of products around 1: an fp16 accumulator would be off by ~0.1.
    a, b = normal(rng, (19, 300), np.float16), normal(rng, (300, 21), np.float16)
    got = matmul_with(place(a, layout, 0, device), place(b, layout, 1, device), kernel, tile)
    check(got, a, b)


@pytest.mark.parametrize(("kernel", "tile"), KERNELS, ids=KERNEL_IDS)
@pytest.mark.parametrize("dtype", [ml_dtypes.bfloat16, np.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("layout", ["nn", "nt"])
def test_a_float32_out_dtype_keeps_the_16_bit_products_float32_sum(
    kernel: str, tile: TileConfig | None, dtype: Any, layout: str, device: Device,
    rng: np.random.Generator,
) -> None:
    """16-bit operands widen exactly and sum in float32: with out_dtype float32 the
    sum is returned unrounded, bit for bit the float32 product of the widened operands,
    batched as well; the default out_dtype rounds that sum once."""
    a, b = normal(rng, (2, 19, 300), dtype), normal(rng, (2, 300, 21), dtype)
    left, right = place(a, layout, 0, device), place(b, layout, 1, device)
    wide = matmul_with(left.astype(np.float32), right.astype(np.float32), kernel, tile)
    got = matmul_with(left, right, kernel, tile, out_dtype=np.float32)
    assert got.dtype == np.float32
    assert np.array_equal(got.numpy(), wide.numpy())
    rounded = matmul_with(left, right, kernel, tile)
    assert np.array_equal(rounded.numpy(), wide.numpy().astype(dtype))


def test_an_out_dtype_other_than_the_operands_or_float32_is_refused(device: Device) -> None:
    a = from_numpy(np.ones((2, 3), np.float32), device)
    with pytest.raises(TypeError, match=r"must be float32 or None .*float32.*, got float16"):
        matmul_with(a, a.T, out_dtype=np.float16)


@settings(max_examples=15, deadline=None)
@given(
    batch=st.lists(st.integers(1, 3), max_size=3),
    a_ones=st.lists(st.booleans(), min_size=3, max_size=3),
    b_ones=st.lists(st.booleans(), min_size=3, max_size=3),
    b_rank=st.integers(0, 3),
    mkn=st.tuples(st.integers(1, 9), st.integers(1, 9), st.integers(1, 20)),
)
def test_random_broadcast_batches(
    batch: list[int], a_ones: list[bool], b_ones: list[bool], b_rank: int,
    mkn: tuple[int, int, int], device: Device,
) -> None:
    m, k, n = mkn
    # Each operand keeps a suffix of the batch, with some dimensions set to 1.
    a_batch = [1 if one else size for size, one in zip(batch, a_ones, strict=False)]
    b_batch = [1 if one else size for size, one in zip(batch, b_ones, strict=False)]
    b_batch = b_batch[len(b_batch) - min(b_rank, len(b_batch)):]
    rng = np.random.default_rng(len(batch) * 1000 + m * 100 + k * 10 + n)
    a, b = normal(rng, (*a_batch, m, k)), normal(rng, (*b_batch, k, n))
    check(ops.matmul(from_numpy(a, device), from_numpy(b, device)), a, b)


def test_records_one_matmul_with_its_operands(device: Device, tape: RecordLog) -> None:
    a = from_numpy(np.ones((2, 3), np.float32), device).requires_grad_()
    b = from_numpy(np.ones((3, 4), np.float32), device)
    out = ops.matmul(a, b)
    assert tape.ops == ["matmul"]
    assert tape.calls[0].inputs == [a, b] and tape.calls[0].output is out
    assert out.requires_grad and not out.is_leaf


def test_inner_dimension_mismatch_names_both_shapes(device: Device) -> None:
    a = from_numpy(np.ones((2, 3), np.float32), device)
    b = from_numpy(np.ones((4, 5), np.float32), device)
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 5\)"):
        ops.matmul(a, b)


def test_batch_mismatch_names_both_shapes(device: Device) -> None:
    a = from_numpy(np.ones((2, 2, 3), np.float32), device)
    b = from_numpy(np.ones((3, 3, 5), np.float32), device)
    with pytest.raises(ValueError, match=r"\(2, 2, 3\).*\(3, 3, 5\)"):
        ops.matmul(a, b)


def test_dtype_mismatch_names_both_dtypes(device: Device) -> None:
    a = from_numpy(np.ones((2, 3), np.float32), device)
    b = from_numpy(np.ones((3, 5), np.float16), device)
    with pytest.raises(TypeError, match=r"float32.*float16"):
        ops.matmul(a, b)


def test_integers_and_scalars_are_refused(device: Device) -> None:
    ints = from_numpy(np.ones((2, 2), np.int32), device)
    with pytest.raises(TypeError, match="int32"):
        ops.matmul(ints, ints)
    scalar = from_numpy(np.ones((), np.float32), device)
    with pytest.raises(ValueError, match="at least one dimension"):
        ops.matmul(scalar, scalar)


def kernels_seen(monkeypatch: pytest.MonkeyPatch, device: Device, name: str) -> list[Any]:
    """The variants of kernel ``name`` that plans made from now on ask for."""
    built = gemm.kernel
    variants: list[Any] = []

    def kernel(device: Device, wanted: str, variant: Any) -> Any:
        if wanted == name:
            variants.append(variant)
        return built(device, wanted, variant)

    monkeypatch.setattr(gemm, "kernel", kernel)
    device.kernels.plans.clear()
    return variants


# Every tiled-kernel variant: sizes that are multiples of 4 give aligned float4
# loads (A_VEC, B_VEC, C_VEC), with whole tiles inside and partial ones at the
# M, N and K edges; split K, alone and with fp16 output; the H200 table's
# wide and tall work-item blocks and its one 32-deep tile; swizzled local
# tiles 8, 16 and 32 deep (each depth has its own XOR step), one split; K
# sliced across work-items, alone, swizzled and with split K (its slabs
# summed in the launch by slice 0 alone); pipelined fragment reads, split,
# swizzled, the H200 table's, sliced, and sliced with split K.
TILED = [TILE_CONFIGS[0], TileConfig(64, 32, 16, 4, 4, 3), TileConfig(128, 256, 8, 8, 16),
         TileConfig(128, 256, 8, 16, 8), TileConfig(128, 128, 16, 16, 8),
         TileConfig(64, 64, 32, 8, 4),
         *(dataclasses.replace(tile, swizzle=True) for tile in (
             TileConfig(64, 64, 32, 8, 4), TileConfig(128, 64, 16, 8, 4, 2),
             TileConfig(128, 256, 8, 16, 8), TileConfig(256, 128, 16, 16, 8),
             TileConfig(32, 32, 32, 4, 4, 4))),
         TileConfig(64, 64, 32, 8, 8, k_slices=2), TileConfig(128, 64, 16, 8, 8, k_slices=2),
         TileConfig(128, 64, 32, 8, 8, swizzle=True, k_slices=2),
         TileConfig(64, 64, 16, 8, 4, 2, k_slices=2),
         *(dataclasses.replace(tile, pipelined=True) for tile in (
             TileConfig(64, 32, 16, 4, 4, 3), TileConfig(64, 64, 32, 8, 4, swizzle=True),
             TileConfig(128, 256, 16, 16, 8, swizzle=True),
             TileConfig(256, 128, 16, 16, 8, swizzle=True),
             TileConfig(256, 128, 16, 8, 16, swizzle=True),
             TileConfig(128, 64, 16, 8, 8, k_slices=2),
             TileConfig(64, 64, 16, 8, 4, 2, k_slices=2)))]


@pytest.mark.parametrize("tile", TILED, ids=lambda t: t.name)
@pytest.mark.parametrize("layout", ["nn", "nt", "tn", "tt"])
def test_tiled_float4_path_in_every_layout(
    tile: TileConfig, layout: str, device: Device, rng: np.random.Generator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = normal(rng, (132, 68)), normal(rng, (68, 136))
    variants = kernels_seen(monkeypatch, device, "matmul_tiled")
    check(matmul_with(place(a, layout, 0, device), place(b, layout, 1, device), "tiled", tile),
          a, b)
    assert [(v.a_vec, v.b_vec, v.c_vec, v.split) for v in variants] == [
        (True, True, True, tile.split_k > 1)
    ]


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
# N = 40: the in-launch sum reads and stores whole float4s (C_VEC), the others
# one float at a time.
@pytest.mark.parametrize("shape", [(5, 301, 7), (33, 97, 65), (1, 1000, 1), (36, 301, 40)],
                         ids=lambda s: "x".join(map(str, s)))
def test_split_k_sums_every_chunk_once(
    shape: tuple[int, int, int], dtype: Any, device: Device, rng: np.random.Generator
) -> None:
    m, k, n = shape
    a, b = normal(rng, (m, k), dtype), normal(rng, (k, n), dtype)
    for splits in (2, 5, 64):  # 64 chunks of 16 outnumber K's steps at K = 301
        tile = TileConfig(32, 32, 16, 4, 4, splits)
        check(matmul_with(from_numpy(a, device), transposed_view(b, device), "tiled", tile),
              a, b)


@pytest.mark.parametrize("n", [40, 17], ids=["float4", "scalar"])
def test_split_k_sum_in_the_launch_equals_the_second_launch_bit_for_bit(
    n: int, device: Device, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The work-group that finishes a tile last adds the slabs in slab order
    # (a float4 at a time where N allows): the same additions sum_splits
    # makes, whichever work-group came last.
    a, b = normal(rng, (36, 301)), normal(rng, (301, n))
    tile = TileConfig(32, 32, 16, 4, 4, 5)
    in_launch = matmul_with(from_numpy(a, device), from_numpy(b, device), "tiled", tile).numpy()
    device.kernels.plans.clear()
    monkeypatch.setattr(gemm, "_sums_in_launch", lambda device: False)
    second = matmul_with(from_numpy(a, device), from_numpy(b, device), "tiled", tile).numpy()
    device.kernels.plans.clear()  # no later test may reuse these plans
    np.testing.assert_array_equal(in_launch, second)
    check(from_numpy(second, device), a, b)


@pytest.mark.parametrize("layout", ["nn", "nt", "tn", "tt"])
@pytest.mark.parametrize("tile", [TileConfig(64, 64, 32, 8, 4), TileConfig(128, 64, 16, 8, 8),
                                  TileConfig(64, 128, 8, 8, 8)], ids=lambda t: t.name)
def test_swizzled_local_tiles_change_no_bit_of_the_product(
    tile: TileConfig, layout: str, device: Device, rng: np.random.Generator
) -> None:
    # The swizzle moves where a K-major tile sits in local memory, not which
    # products are summed in which order: the result is bit-for-bit the
    # padded kernel's, in every layout, interior and edge tiles alike.
    a, b = normal(rng, (200, 72)), normal(rng, (72, 136))
    args = place(a, layout, 0, device), place(b, layout, 1, device)
    padded = matmul_with(*args, "tiled", tile).numpy()
    swizzled = matmul_with(*args, "tiled", dataclasses.replace(tile, swizzle=True)).numpy()
    np.testing.assert_array_equal(swizzled, padded)
    check(from_numpy(swizzled, device), a, b)


@pytest.mark.parametrize("layout", ["nn", "nt", "tn", "tt"])
@pytest.mark.parametrize("tile", [TileConfig(64, 64, 32, 8, 4, swizzle=True),
                                  TileConfig(64, 32, 16, 4, 4, 3),
                                  TileConfig(128, 64, 16, 8, 8, k_slices=2)],
                         ids=lambda t: t.name)
def test_pipelined_fragment_reads_change_no_bit_of_the_product(
    tile: TileConfig, layout: str, device: Device, rng: np.random.Generator
) -> None:
    # Pipelining moves when a fragment is read from local memory, not which
    # products are summed in which order: bit-for-bit the plain kernel's,
    # with K one tile (8), whole tiles (64) and neither (77).
    for k in (8, 64, 77):
        a, b = normal(rng, (200, k)), normal(rng, (k, 136))
        args = place(a, layout, 0, device), place(b, layout, 1, device)
        plain = matmul_with(*args, "tiled", tile).numpy()
        pipelined = matmul_with(*args, "tiled", dataclasses.replace(tile, pipelined=True))
        np.testing.assert_array_equal(pipelined.numpy(), plain)
        check(pipelined, a, b)


def test_a_batch_ignores_split_k(device: Device, rng: np.random.Generator) -> None:
    a, b = normal(rng, (3, 9, 40)), normal(rng, (3, 40, 11))
    tile = TileConfig(32, 32, 16, 4, 4, 4)
    check(matmul_with(from_numpy(a, device), from_numpy(b, device), "tiled", tile), a, b)


def test_tiles_the_kernel_cannot_run_are_refused() -> None:
    for bad in ((64, 64, 16, 6, 4), (64, 64, 8, 4, 4), (64, 64, 10, 8, 8), (64, 64, 16, 8, 8, 0)):
        with pytest.raises(ValueError, match="does not fit the tiled kernel"):
            TileConfig(*bad)
    # Slicing: the slices' sums past A's local tiles.
    with pytest.raises(ValueError, match="slices' sums do not fit"):
        TileConfig(64, 64, 32, 8, 4, k_slices=4)
    # Swizzling: 4 work-items along M, 4 along N, 64 deep.
    for bad in ((64, 64, 16, 16, 4), (32, 64, 16, 4, 16), (64, 64, 64, 8, 8)):
        with pytest.raises(ValueError, match="cannot swizzle"):
            TileConfig(*bad, swizzle=True)
    # Pipelining: three steps a slice, so the two fragment sets cannot alternate.
    with pytest.raises(ValueError, match="cannot be pipelined"):
        TileConfig(16, 16, 12, 8, 8, k_slices=4, pipelined=True)
    assert TileConfig(16, 16, 12, 8, 8, k_slices=4).k_slices == 4


def test_a_tile_past_the_local_memory_is_refused_by_name(
    device: Device, rng: np.random.Generator
) -> None:
    # Depth enough that the two double-buffered 32-wide tiles outgrow local memory.
    depth = 8 * (device.cl_device.local_mem_size // (576 * 8) + 1)
    tile = TileConfig(32, 32, depth, 4, 4)
    a, b = from_numpy(normal(rng, (4, 4)), device), from_numpy(normal(rng, (4, 4)), device)
    with pytest.raises(ValueError, match=rf"tile {tile.name} needs {tile.local_bytes} bytes"):
        matmul_with(a, b, "tiled", tile)


def test_measured_devices_take_their_table_others_the_rule() -> None:
    # An H200 takes the winner of the nearest measured problem in its layout.
    assert choose_tile("NVIDIA H200", 132, "nn", 4000, 4100, 4096, 1) == TileConfig(
        128, 256, 16, 16, 8, swizzle=True, pipelined=True)
    assert choose_tile("NVIDIA H200", 132, "nt", 4000, 4100, 4096, 1) == TileConfig(
        256, 128, 16, 16, 8, swizzle=True, pipelined=True)
    assert choose_tile("NVIDIA H200", 132, "tn", 2048, 2048, 2100, 1) == TileConfig(
        128, 256, 16, 16, 8, swizzle=True, pipelined=True)
    # Batched: the batch counts as rows, and K is never split.
    assert choose_tile("NVIDIA H200", 132, "nt", 1024, 10, 8192, 4).split_k == 1
    assert choose_tile("NVIDIA H200", 132, "tn", 512, 512, 512, 8) == TileConfig(
        128, 64, 16, 8, 8)
    assert choose_tile("NVIDIA H200", 132, "tn", 512, 512, 512, 1) == TileConfig(
        32, 32, 16, 4, 4, 4, swizzle=True)
    # Elsewhere: the largest tile that fills the compute units...
    assert choose_tile("Some GPU", 100, "nn", 2048, 2048, 2048, 1) == TILE_CONFIGS[0]
    assert choose_tile("Some GPU", 100, "nn", 512, 512, 512, 1) == TILE_CONFIGS[-1]
    # ...and K split when even the smallest leaves most of them idle.
    skinny = choose_tile("Some GPU", 100, "nn", 64, 64, 4096, 1)
    assert skinny.split_k == 32 and skinny.bm == TILE_CONFIGS[-1].bm
    assert choose_tile("Some GPU", 100, "nn", 64, 64, 200, 1).split_k == 1


def test_slabs_summed_by_a_second_launch_where_the_fence_is_unknown(
    device: Device, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A GPU that is neither NVIDIA's nor a CPU sums split-K slabs with
    # sum_splits instead of in the multiply's own launch.
    monkeypatch.setattr(gemm, "_sums_in_launch", lambda device: False)
    summing = kernels_seen(monkeypatch, device, "sum_splits")
    a, b = normal(rng, (33, 301), np.float16), normal(rng, (301, 17), np.float16)
    tile = TileConfig(32, 32, 16, 4, 4, 4)
    check(matmul_with(from_numpy(a, device), from_numpy(b, device), "tiled", tile), a, b)
    assert len(summing) == 1 and not summing[0].sum_z
    device.kernels.plans.clear()  # no later test may reuse these plans
