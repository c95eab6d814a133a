"""Tensor-core matmul (matmul_mma.cl) and the TF32 switch.

The switch, the capability check and which kernel a product gets are plain
Python and run everywhere. The kernel itself needs an NVIDIA device of compute
capability 8.0 or more (inline PTX mma.sync): the full matrix of problems and
tiles runs there and skips elsewhere. A smaller set runs everywhere: on other
devices through ``gemm.emulated_tensor_cores`` (mma.sync, ldmatrix and cp.async
in plain OpenCL C), so CI's PoCL checks the kernel's tiling, fragment and edge
logic. Results are checked against float64 within a bound derived from the
rounding the kernel admits, and against torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import pytest
from test_matmul import place

from netcl.core.device import Device
from netcl.core.device.device import compute_capability
from netcl.core.device.kernels import KernelCache
from netcl.core.tensor import backends, dtypes, from_numpy
from netcl.core.tensor.ops.matmul import MmaTile, matmul_with
from netcl.core.tensor.ops.matmul_tiles import MMA_SMALL_TILES, choose_mma_tile

Array = np.ndarray[Any, Any]
gemm = importlib.import_module("netcl.core.tensor.ops.gemm")


@pytest.fixture
def precision() -> Iterator[None]:
    """Restores the process-wide float32 precision after the test."""
    before = backends.get_float32_matmul_precision()
    yield
    backends.set_float32_matmul_precision(before)


def test_tf32_is_off_by_default_and_both_names_are_one_setting(precision: None) -> None:
    assert backends.get_float32_matmul_precision() == "highest"
    assert backends.matmul.allow_tf32 is False
    backends.matmul.allow_tf32 = True
    assert backends.get_float32_matmul_precision() == "high"
    backends.set_float32_matmul_precision("medium")
    assert backends.matmul.allow_tf32 is True
    backends.set_float32_matmul_precision("highest")
    assert backends.matmul.allow_tf32 is False


def test_bad_settings_are_refused_and_change_nothing(precision: None) -> None:
    backends.set_float32_matmul_precision("high")
    with pytest.raises(ValueError, match=r"'highest', 'high', 'medium'.*'fast'"):
        backends.set_float32_matmul_precision("fast")
    with pytest.raises(TypeError, match="must be a bool, got int"):
        backends.matmul.allow_tf32 = 1  # type: ignore[assignment]
    assert backends.get_float32_matmul_precision() == "high"


def fake_cl_device(extensions: str, major: int = 0, minor: int = 0) -> Any:
    return SimpleNamespace(extensions=extensions, compute_capability_major_nv=major,
                           compute_capability_minor_nv=minor)


NV = "cl_khr_fp64 cl_nv_device_attribute_query cl_khr_fp16"


def test_compute_capability_is_read_only_where_the_device_reports_it() -> None:
    assert compute_capability(fake_cl_device(NV, 9, 0)) == (9, 0)
    assert compute_capability(fake_cl_device("cl_khr_fp64 cl_amd_fp64")) is None
    assert gemm.tensor_cores(fake_cl_device(NV, 8, 0))
    assert gemm.tensor_cores(fake_cl_device(NV, 8, 9))
    assert not gemm.tensor_cores(fake_cl_device(NV, 7, 5))  # Turing: no tf32 mma
    assert not gemm.tensor_cores(fake_cl_device("cl_khr_fp16"))


# (device type, extensions, capability, dtype, TF32 allowed, the kernel it gets)
FAMILIES = [
    ("gpu", NV, (9, 0), dtypes.float16, False, "mma"),
    ("gpu", NV, (9, 0), dtypes.bfloat16, False, "mma"),
    ("gpu", NV, (9, 0), dtypes.float32, False, "tiled"),
    ("gpu", NV, (9, 0), dtypes.float32, True, "mma"),
    ("gpu", NV, (8, 0), dtypes.float16, False, "mma"),
    ("gpu", NV, (7, 5), dtypes.float16, False, "tiled"),
    ("gpu", NV, (7, 5), dtypes.float32, True, "tiled"),
    ("gpu", "cl_khr_fp16", (0, 0), dtypes.float16, True, "tiled"),  # another vendor
    ("gpu", "cl_khr_fp16", (0, 0), dtypes.bfloat16, True, "tiled"),
    ("cpu", "cl_khr_fp16", (0, 0), dtypes.float16, True, "panel"),  # PoCL
    ("cpu", "cl_khr_fp16", (0, 0), dtypes.float32, True, "panel"),
]


@pytest.mark.parametrize(("kind", "extensions", "capability", "dtype", "tf32", "family"),
                         FAMILIES)
def test_each_device_and_dtype_gets_its_kernel(
        precision: None, kind: str, extensions: str, capability: tuple[int, int],
        dtype: np.dtype[Any], tf32: bool, family: str) -> None:
    backends.matmul.allow_tf32 = tf32
    device = SimpleNamespace(type=kind, cl_device=fake_cl_device(extensions, *capability))
    assert gemm.default_family(cast(Device, device), dtype) == family


def test_emulation_moves_only_what_tensor_cores_would_run(device: Device,
                                                          precision: None) -> None:
    outside = {dtype: gemm.default_family(device, dtype)
               for dtype in (dtypes.float32, dtypes.bfloat16, dtypes.float16)}
    with gemm.emulated_tensor_cores():
        assert gemm.default_family(device, dtypes.bfloat16) == "mma"
        assert gemm.default_family(device, dtypes.float16) == "mma"
        assert gemm.default_family(device, dtypes.float32) == outside[dtypes.float32]
        backends.matmul.allow_tf32 = True
        assert gemm.default_family(device, dtypes.float32) == "mma"
    backends.matmul.allow_tf32 = False
    assert {dtype: gemm.default_family(device, dtype) for dtype in outside} == outside


def test_each_device_is_told_its_matmul_kernels() -> None:
    assert "tensor cores" in gemm.kernels_for("gpu", (9, 0))
    assert "tiled" in gemm.kernels_for("gpu", (7, 5))
    assert "tiled" in gemm.kernels_for("gpu", None)
    assert "panel" in gemm.kernels_for("cpu", None)


def test_tf32_changes_no_bit_without_tensor_cores(
        device: Device, rng: np.random.Generator, precision: None) -> None:
    if gemm.tensor_cores(device.cl_device):
        pytest.skip("this device has tensor cores: TF32 does change results here")
    a = from_numpy(rng.standard_normal((37, 70)).astype(np.float32), device)
    b = from_numpy(rng.standard_normal((70, 19)).astype(np.float32), device)
    full = (a @ b).numpy()
    backends.matmul.allow_tf32 = True
    assert np.array_equal((a @ b).numpy(), full)


def test_the_mma_kernel_is_refused_by_name_without_tensor_cores(device: Device) -> None:
    if gemm.tensor_cores(device.cl_device):
        pytest.skip("this device has tensor cores")
    a = from_numpy(np.ones((4, 4), np.float16), device)
    with pytest.raises(ValueError, match=r"needs tensor cores.*compute capability 8\.0"):
        matmul_with(a, a, kernel="mma")


def test_tiles_the_mma_kernel_cannot_run_are_refused() -> None:
    with pytest.raises(ValueError, match="multiples of 16"):
        MmaTile(96, 128, 32, warps_m=4)  # 24 rows a warp
    with pytest.raises(ValueError, match="stages 2 to 4"):
        MmaTile(128, 128, 32, stages=5)
    assert not MmaTile(128, 128, 8).fits(2)  # 16-bit mma steps are 16 deep
    assert MmaTile(128, 128, 8).fits(4)
    assert not MmaTile(32, 32, 16, 2, 2).fits(2)  # 32 x 16 halves: half a vector each
    with pytest.raises(ValueError, match="raster 0 or more"):
        MmaTile(128, 128, 32, raster=-1)
    # The swizzle XORs a vector's index with up to 7: rows along M or N of whole
    # 8-vector blocks, rows along K of 2, 4 or 8k vectors.
    assert MmaTile(128, 128, 32, swizzle=True).fits(2)
    assert MmaTile(128, 128, 16, swizzle=True).fits(4)
    assert not MmaTile(32, 64, 16, 2, 2, swizzle=True).fits(2)  # 32 halves: 4 vectors
    assert MmaTile(32, 64, 16, 2, 2, swizzle=True).fits(4)  # 32 floats: 8 vectors
    assert not MmaTile(128, 128, 48, swizzle=True).fits(2)  # 6 vectors along K


def test_mma_tiles_by_problem_size() -> None:
    assert choose_mma_tile(132, "nt", 4096, 4096, 1, 2) == MmaTile(128, 128, 32)
    assert choose_mma_tile(132, "tt", 4096, 4096, 1, 2) == MmaTile(128, 128, 16, 2, 2, stages=4)
    assert choose_mma_tile(132, "nn", 256, 256, 1, 2).bm == 64
    assert choose_mma_tile(132, "tn", 1024, 1024, 1, 2) == MmaTile(64, 128, 32, 2, 2, stages=4,
                                                                   swizzle=True)
    assert choose_mma_tile(132, "tn", 4096, 4096, 1, 4).swizzle
    # A batch of 64 fills the compute units.
    assert choose_mma_tile(132, "nn", 256, 256, 64, 4) == MmaTile(128, 128, 16, 2, 2)
    # 128 rows of 32 + 8 halves, twice, for A and B: what matmul_mma.cl declares.
    assert MmaTile(128, 128, 32).local_bytes(2, True, True, 2) == 2 * 2 * 128 * 40 * 2
    assert MmaTile(128, 128, 16).local_bytes(4, False, True, 3) == 3 * (16 * 136 + 128 * 20) * 4
    # Swizzled tiles are unpadded: three stages of 128 x 128 x 32 halves in 48 KiB.
    assert MmaTile(128, 128, 32, stages=3, swizzle=True).local_bytes(2, True, False, 3) == 49152
    assert MmaTile(128, 128, 32, swizzle=True, raster=8).name == "mma 128x128x32/2x4w/s2/swz/r8"
    assert MmaTile(128, 128, 16, pipelined=True, even_tiles=True, round_staged=True).name == (
        "mma 128x128x16/2x4w/s2/pipe/even/rs")


# --- the kernel, on tensor cores only -------------------------------------------------

@pytest.fixture
def tc_device(device: Device) -> Device:
    if not gemm.tensor_cores(device.cl_device):
        pytest.skip(f"{device.name} has no tensor cores the mma kernel reaches "
                    "(NVIDIA compute capability 8.0 or more)")
    return device


def bound(a: Array, b: Array, out_dtype: np.dtype[Any]) -> Array:
    """What the kernel may miss the exact product of the stored inputs by."""
    magnitude = np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64))
    exact = a.astype(np.float64) @ b.astype(np.float64)
    return rounding_bound(magnitude, exact, a.shape[-1], a.dtype, out_dtype)


def rounding_bound(magnitude: Array, exact: Array, k: int, in_dtype: np.dtype[Any],
                   out_dtype: np.dtype[Any]) -> Array:
    """What a sum of ``k`` products of ``in_dtype`` inputs may miss its exact value by,
    given ``magnitude``, the sum of the products' magnitudes.

    TF32 rounds each float32 input to nearest with 10 mantissa bits (unit
    roundoff 2**-11), so a product is off by at most 2u + u^2 relative; 16-bit
    inputs multiply exactly in float32. The K-term sum is float32, which the
    tensor cores may truncate rather than round: at most one ulp (2**-23
    relative) per addition, gamma_K = K u / (1 - K u) of sum |a||b|. A 16-bit
    output is rounded once more (2**-11 of the value for float16, 2**-8 for
    bfloat16).
    """
    u_in = 2.0**-11 if in_dtype == np.float32 else 0.0
    u_sum = 2.0**-23
    error: Array = magnitude * (2 * u_in + u_in**2 + k * u_sum / (1 - k * u_sum))
    if out_dtype in (dtypes.float16, dtypes.bfloat16):
        unit = 2.0**-11 if out_dtype == dtypes.float16 else 2.0**-8  # 10 or 7 mantissa bits
        error = error * (1 + unit) + np.abs(exact) * unit
    return error


def float32_sum_error(a: Array, b: Array) -> Array:
    """torch's own error on the CPU: a float32 sum, rounded (gamma_K, u = 2**-24)."""
    k = a.shape[-1]
    magnitude: Array = np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64))
    return magnitude * (k * 2.0**-24 / (1 - k * 2.0**-24))


# (A shape, B shape): ragged edges of 128 x 128 and 64 x 64 tiles, a batch, a
# batch broadcast against one B, a K shorter than one step.
PROBLEMS = [((131, 45), (45, 77)), ((2, 200, 72), (2, 72, 136)), ((3, 40, 130), (130, 24)),
            ((256, 512), (512, 256)), ((17, 5), (5, 9))]


DTYPES = pytest.mark.parametrize("dtype", [dtypes.float16, dtypes.bfloat16, dtypes.float32],
                                 ids=["fp16", "bf16", "tf32"])
LAYOUTS = pytest.mark.parametrize("layout", ["nn", "nt", "tn", "strided"])


@DTYPES
@LAYOUTS
@pytest.mark.parametrize(("a_shape", "b_shape"), PROBLEMS)
def test_tensor_cores_match_float64_and_torch(
        tc_device: Device, rng: np.random.Generator, precision: None, dtype: Any,
        layout: str, a_shape: tuple[int, ...], b_shape: tuple[int, ...]) -> None:
    check_product(tc_device, rng, dtype, layout, a_shape, b_shape)


@pytest.fixture
def emulated_device(device: Device, monkeypatch: pytest.MonkeyPatch) -> Iterator[Device]:
    """The device, running the tensor-core kernel: on its tensor cores, or emulated.
    Emulated, the kernel takes its small tiles: PoCL compiles a 128 x 128 tile's 32
    unrolled products a step for minutes, a 64 x 64 tile in seconds."""
    if gemm.tensor_cores(device.cl_device):
        yield device
        return
    monkeypatch.setattr(gemm, "choose_mma_tile", small_mma_tile)
    with gemm.emulated_tensor_cores():
        yield device


def small_mma_tile(compute_units: int, layout: str, m: int, n: int, count: int,
                   element_bytes: int) -> MmaTile:
    return MMA_SMALL_TILES[element_bytes, "tn" if layout == "tt" else layout]


# Each case compiles its own kernel, seconds each on PoCL: every layout with
# every vector read aligned (cp.async tiles), ragged against 64-row tiles, and
# unaligned strided operands (element loads, registers between the stages).
ALIGNED, RAGGED = ((72, 96), (96, 136)), ((131, 45), (45, 77))
EMULATED_CASES = [(dtype, layout, ALIGNED) for dtype in (dtypes.float16, dtypes.bfloat16,
                                                         dtypes.float32)
                  for layout in ("nn", "nt", "tn")]
EMULATED_CASES += [(dtypes.bfloat16, "strided", RAGGED), (dtypes.float32, "strided", RAGGED)]


@pytest.mark.parametrize(("dtype", "layout", "shapes"), EMULATED_CASES,
                         ids=[f"{np.dtype(d)}-{layout}-{shapes[0][0]}"
                              for d, layout, shapes in EMULATED_CASES])
def test_tensor_core_kernel_logic_everywhere(
        emulated_device: Device, rng: np.random.Generator, precision: None, dtype: Any,
        layout: str, shapes: tuple[tuple[int, ...], tuple[int, ...]]) -> None:
    check_product(emulated_device, rng, dtype, layout, *shapes)


def test_tensor_core_batches_everywhere(
        emulated_device: Device, rng: np.random.Generator, precision: None) -> None:
    check_product(emulated_device, rng, dtypes.bfloat16, "nn", (3, 40, 130), (130, 24))
    check_product(emulated_device, rng, dtypes.bfloat16, "nn", (2, 24, 72), (2, 72, 40))


@pytest.mark.parametrize(("layout", "a_shape", "b_shape"),
                         [("nt", (72, 96), (96, 136)), ("nn", (2, 24, 72), (2, 72, 40))])
def test_a_float32_out_dtype_is_the_sum_the_16_bit_output_rounds(
        emulated_device: Device, rng: np.random.Generator, layout: str,
        a_shape: tuple[int, ...], b_shape: tuple[int, ...]) -> None:
    """bf16 operands into float32 (Muon's products): within the float32 sum's bound of
    the exact product, and the bf16 result is that sum rounded once."""
    a = rng.standard_normal(a_shape).astype(dtypes.bfloat16)
    b = rng.standard_normal(b_shape).astype(dtypes.bfloat16)
    left, right = place(a, layout, 0, emulated_device), place(b, layout, 1, emulated_device)
    assert gemm.default_family(emulated_device, left.dtype) == "mma"
    wide = matmul_with(left, right, out_dtype=np.float32).numpy()
    assert wide.dtype == np.float32
    exact = a.astype(np.float64) @ b.astype(np.float64)
    assert np.all(np.abs(wide - exact) <= bound(a, b, np.dtype(np.float32)))
    assert np.array_equal(wide.astype(dtypes.bfloat16), (left @ right).numpy())


def check_product(device: Device, rng: np.random.Generator, dtype: Any, layout: str,
                  a_shape: tuple[int, ...], b_shape: tuple[int, ...]) -> None:
    """"strided": an offset and a column stride of 2, so no 16-byte vector of
    either operand is aligned and every load takes the element path."""
    if layout == "strided" and len(a_shape) + len(b_shape) > 4:
        pytest.skip("the strided layout is built for 2-D operands")
    torch = pytest.importorskip("torch")
    backends.matmul.allow_tf32 = True
    a = rng.standard_normal(a_shape).astype(dtype)
    b = rng.standard_normal(b_shape).astype(dtype)
    left, right = place(a, layout, 0, device), place(b, layout, 1, device)
    assert gemm.default_family(device, left.dtype) == "mma"
    result = (left @ right).numpy()
    assert result.dtype == dtype
    got = result.astype(np.float64)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    allowed = bound(a, b, np.dtype(dtype))
    assert np.all(np.abs(got - exact) <= allowed)
    # torch on the CPU sums in float32 (and rounds a 16-bit result once): within
    # both bounds. It takes bf16 from float32, which holds every bf16 exactly.
    as_torch = {dtypes.float16: torch.float16, dtypes.bfloat16: torch.bfloat16,
                dtypes.float32: torch.float32}[np.dtype(dtype)]
    want = (torch.from_numpy(a.astype(np.float32)).to(as_torch)
            @ torch.from_numpy(b.astype(np.float32)).to(as_torch)).double().numpy()
    torch_error = (float32_sum_error(a, b) if dtype == dtypes.float32
                   else bound(a, b, np.dtype(dtype)))
    assert np.all(np.abs(got - want) <= allowed + torch_error)
    # A fixed summation order: the same bits every time.
    assert np.array_equal((left @ right).numpy(), result)


def test_float32_is_unchanged_with_tf32_off(
        tc_device: Device, rng: np.random.Generator, precision: None) -> None:
    a = from_numpy(rng.standard_normal((300, 200)).astype(np.float32), tc_device)
    b = from_numpy(rng.standard_normal((200, 100)).astype(np.float32), tc_device)
    full = (a @ b).numpy()
    assert np.array_equal(full, matmul_with(a, b, kernel="tiled").numpy())
    backends.matmul.allow_tf32 = True
    tf32 = (a @ b).numpy()
    # TF32's 10-bit inputs leave errors far past float32's on random data.
    assert not np.array_equal(tf32, full)
    assert np.array_equal(tf32, matmul_with(a, b, kernel="mma").numpy())


# Tiles that differ in every option the kernel has; each sums K in the same
# mma-step order, so all give the default tile's bits.
TILES = [(dtypes.bfloat16, MmaTile(128, 128, 32, stages=3, swizzle=True, raster=2)),
         (dtypes.bfloat16, MmaTile(128, 128, 16, 2, 2, stages=4, swizzle=True)),
         (dtypes.bfloat16, MmaTile(128, 256, 32, 2, 4, swizzle=True)),
         (dtypes.bfloat16, MmaTile(64, 64, 32, 2, 2, stages=4, swizzle=True)),
         (dtypes.bfloat16, MmaTile(64, 128, 32, 2, 2, stages=4, swizzle=True)),
         (dtypes.bfloat16, MmaTile(64, 64, 64, 2, 2, swizzle=True)),
         (dtypes.float32, MmaTile(128, 64, 16, 2, 2, stages=3, swizzle=True)),
         (dtypes.float32, MmaTile(64, 64, 16, 2, 2, stages=4, swizzle=True)),
         (dtypes.float32, MmaTile(128, 128, 16, stages=3, ldmatrix=False, swizzle=True,
                                  raster=3)),
         (dtypes.float32, MmaTile(128, 128, 16, 2, 2, stages=3, swizzle=True)),
         (dtypes.float32, MmaTile(128, 128, 8, 2, 2, stages=4, swizzle=True))]


@pytest.mark.parametrize("layout", ["nn", "nt", "tn", "strided"])
@pytest.mark.parametrize(("dtype", "tile"), TILES,
                         ids=[f"{dtype}-{tile.name}" for dtype, tile in TILES])
def test_every_tile_gives_the_same_bits(
        tc_device: Device, rng: np.random.Generator, precision: None, dtype: Any,
        layout: str, tile: MmaTile) -> None:
    """Swizzled local tiles, rastered work-groups (bands of 2 and 3 tile rows over
    five, the last band short), stages and warp shapes change where data waits, not
    the sums: the result is the default tile's bit for bit, and within the float64
    bound (which holds the default tile to its float64 check)."""
    check_tile(tc_device, rng, dtype, layout, tile)


# Small tiles with the options above (swizzle, four stages, a band of 3 rows over
# 9 tile rows, fragments by plain loads), for the emulated kernel.
SMALL_TILES = [(dtypes.bfloat16, MmaTile(64, 64, 32, 2, 2, stages=4, swizzle=True, raster=3)),
               (dtypes.float32, MmaTile(64, 64, 16, 2, 2, stages=3, ldmatrix=False,
                                        swizzle=True))]


@pytest.mark.parametrize("layout", ["nn", "tn"])
@pytest.mark.parametrize(("dtype", "tile"), SMALL_TILES,
                         ids=[f"{dtype}-{tile.name}" for dtype, tile in SMALL_TILES])
def test_small_tiles_give_the_same_bits_everywhere(
        emulated_device: Device, rng: np.random.Generator, precision: None, dtype: Any,
        layout: str, tile: MmaTile) -> None:
    check_tile(emulated_device, rng, dtype, layout, tile)


def check_tile(device: Device, rng: np.random.Generator, dtype: Any, layout: str,
               tile: MmaTile) -> None:
    backends.matmul.allow_tf32 = True
    a = rng.standard_normal((520, 72)).astype(dtype)
    b = rng.standard_normal((72, 300)).astype(dtype)
    left, right = place(a, layout, 0, device), place(b, layout, 1, device)
    got = matmul_with(left, right, kernel="mma", tile=tile).numpy()
    assert np.array_equal(got, (left @ right).numpy())
    exact = a.astype(np.float64) @ b.astype(np.float64)
    assert np.all(np.abs(got.astype(np.float64) - exact) <= bound(a, b, np.dtype(dtype)))


# The cp.async path's options (pipelined fragment reads; the edge-free build of
# whole tiles; TF32 rounded once a stage lands, a no-op asked of bfloat16), on small
# tiles: two, three and four stages, swizzled and padded, fragments by ldmatrix and
# by plain loads.
PIPELINED_TILES = [
    (dtypes.bfloat16, MmaTile(64, 64, 32, 2, 2, stages=3, pipelined=True, round_staged=True)),
    (dtypes.bfloat16, MmaTile(64, 64, 32, 2, 2, swizzle=True, pipelined=True, even_tiles=True)),
    (dtypes.float32, MmaTile(64, 64, 16, 2, 2, stages=4, pipelined=True, even_tiles=True)),
    (dtypes.float16, MmaTile(64, 64, 32, 2, 2, stages=3, even_tiles=True)),
    (dtypes.float32, MmaTile(64, 64, 16, 2, 2, stages=3, round_staged=True)),
    (dtypes.float32, MmaTile(64, 64, 16, 2, 2, ldmatrix=False, pipelined=True, even_tiles=True,
                             round_staged=True)),
]

# Emulated, each tile runs in one layout, the three layouts taken in turn (each twice).
_EMULATED_LAYOUT = {tile: ("nn", "nt", "tn")[i % 3] for i, (_, tile) in enumerate(PIPELINED_TILES)}


@pytest.fixture
def mma_builds(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The defines of each matmul_mma build the test asks the kernel cache for."""
    builds: list[dict[str, Any]] = []
    fetch = KernelCache.kernel

    def spy(cache: KernelCache, sources: Any, name: str, defines: Any = None,
            options: tuple[str, ...] = ()) -> Any:
        if name == "matmul_mma":
            builds.append(dict(defines.defines()))
        return fetch(cache, sources, name, defines, options)

    monkeypatch.setattr(KernelCache, "kernel", spy)
    return builds


@pytest.mark.parametrize("layout", ["nn", "nt", "tn"])
@pytest.mark.parametrize(("dtype", "tile"), PIPELINED_TILES,
                         ids=[f"{dtype}-{tile.name}" for dtype, tile in PIPELINED_TILES])
def test_pipelined_and_even_tiles_give_the_same_bits_everywhere(
        emulated_device: Device, rng: np.random.Generator, precision: None,
        mma_builds: list[dict[str, Any]], dtype: Any, layout: str, tile: MmaTile) -> None:
    """Ragged against the tile (edge checks kept; K short of a whole step) and whole
    tiles (the edge-free build where the tile asks for it: a batch of two with K of 96,
    three or six steps; K of one step and of eight): the plain tile's bits, within the
    float64 bound. Every size is a multiple of 8, so each row is whole 16-byte vectors:
    the cp.async path (each build asserts ASYNC)."""
    if gemm.emulates_tensor_cores(emulated_device.cl_device) and layout != _EMULATED_LAYOUT[tile]:
        pytest.skip("emulated: one layout a tile (PoCL compiles each build for seconds); "
                    "every layout on tensor cores")
    backends.matmul.allow_tf32 = True
    plain = tile.plain
    options = ("ASYNC", "EVEN_TILES", "FRAG_PIPELINE", "ROUND_STAGED")
    # K of 8 steps: every stage's buffer refilled with real data after it was read
    problems = [((136, 72), (72, 88)), ((2, 128, 96), (2, 96, 64)),
                ((64, tile.bk), (tile.bk, 128)), ((64, 8 * tile.bk), (8 * tile.bk, 64))]
    for a_shape, b_shape in problems:
        a = rng.standard_normal(a_shape).astype(dtype)
        b = rng.standard_normal(b_shape).astype(dtype)
        left, right = place(a, layout, 0, emulated_device), place(b, layout, 1, emulated_device)
        mma_builds.clear()
        got = matmul_with(left, right, kernel="mma", tile=tile).numpy()
        whole = a_shape[-2] % tile.bm == 0 and b_shape[-1] % tile.bn == 0 and (
            a_shape[-1] % tile.bk == 0)
        assert [tuple(build[name] for name in options) for build in mma_builds] == [
            (1, int(tile.even_tiles and whole), int(tile.pipelined),
             int(tile.round_staged and dtype == dtypes.float32))]
        assert np.array_equal(got, matmul_with(left, right, kernel="mma", tile=plain).numpy())
        exact = a.astype(np.float64) @ b.astype(np.float64)
        assert np.all(np.abs(got.astype(np.float64) - exact) <= bound(a, b, np.dtype(dtype)))


def test_a_pipelined_tile_needs_an_even_number_of_mma_steps(emulated_device: Device) -> None:
    a = from_numpy(np.ones((64, 64), dtypes.bfloat16), emulated_device)
    with pytest.raises(ValueError, match=r"64x64x16/2x2w/s2/pipe cannot run bfloat16.*"
                                         r"multiple of 16 \(32 pipelined\)"):
        matmul_with(a, a, kernel="mma", tile=MmaTile(64, 64, 16, 2, 2, pipelined=True))
    # rows of 20 bfloat16 are not whole 16-byte vectors: the register path, where the
    # cp.async options are ignored, so the odd step count is no error there
    ragged = from_numpy(np.ones((64, 20), dtypes.bfloat16), emulated_device)
    b = from_numpy(np.ones((20, 64), dtypes.bfloat16), emulated_device)
    pipelined = MmaTile(64, 64, 16, 2, 2, pipelined=True)
    assert np.array_equal(matmul_with(ragged, b, kernel="mma", tile=pipelined).numpy(),
                          np.full((64, 64), 20, np.float32))
    assert MmaTile(64, 64, 32, 2, 2, pipelined=True).fits(2)
    assert not MmaTile(64, 64, 16, 2, 2, pipelined=True).fits(2)  # one 16-deep step
    assert MmaTile(64, 64, 16, 2, 2, pipelined=True).fits(4)  # two 8-deep steps
    assert not MmaTile(64, 64, 48, 2, 2, pipelined=True).fits(2)
