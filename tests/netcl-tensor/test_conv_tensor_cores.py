"""Convolutions on the tensor-core kernel (matmul_mma.cl reading the input in place).

Which path a convolution takes and the TF32 switch for convolutions are plain
Python and run everywhere. The kernel runs on a device with tensor cores, and on
any other through ``gemm.emulated_tensor_cores`` (mma.sync, ldmatrix and
cp.async in plain OpenCL C) with the small tiles, so CI's PoCL checks the
forward pass, both gradients, their gathers and the weight gradient's sum over
images. Results are checked against float64 convolutions of the same stored
inputs within the bound their rounding admits (rounding_bound), and the kernels
gemm launched are checked to be matmul_mma built for that pass (gemm_launches): the
tiled kernel would meet the same bounds.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import pytest
from test_matmul_tensor_cores import NV, emulated_device, fake_cl_device, rounding_bound

from netcl.core.device import Device
from netcl.core.device.kernels import KernelCache
from netcl.core.tensor import backends, dtypes, from_numpy
from netcl.core.tensor.ops import conv_options as conv_options_module
from netcl.core.tensor.ops.conv import (
    _gather as conv_gather,
)
from netcl.core.tensor.ops.conv import (
    conv2d,
    conv2d_grads,
    conv2d_input_grad,
    conv2d_weight_grad,
    output_size,
)
from netcl.core.tensor.ops.conv_options import ConvOptions, conv_options
from netcl.core.tensor.ops.gemm import Operand
from netcl.core.tensor.ops.matmul import MmaTile
from netcl.core.tensor.ops.matmul_tiles import MMA_SMALL_TILES, MMA_TILES

torch = pytest.importorskip("torch")
functional = torch.nn.functional
gemm = importlib.import_module("netcl.core.tensor.ops.gemm")
Array = np.ndarray[Any, Any]
__all__ = ["emulated_device"]  # the fixture, shared with the matmul tests


@pytest.fixture
def conv_tf32() -> Iterator[None]:
    """Allows TF32 for convolutions during the test, restoring the setting after."""
    before = backends.cudnn.allow_tf32
    backends.cudnn.allow_tf32 = True
    yield
    backends.cudnn.allow_tf32 = before


@pytest.fixture
def gemm_launches(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, int, int]]:
    """Each kernel gemm launches during the test, in order: its name and the B_GATHER
    (the convolution pass: 1 forward, 2 weight gradient, 3 input gradient),
    SUM_IMAGES and WIDE_GATHER it was built with."""
    built: dict[int, dict[str, Any]] = {}
    fetch = KernelCache.kernel

    def spy_fetch(cache: KernelCache, sources: Any, name: str, defines: Any = None,
                  options: tuple[str, ...] = ()) -> Any:
        kernel = fetch(cache, sources, name, defines, options)
        built[id(kernel)] = dict(defines.defines() if hasattr(defines, "defines")
                                 else defines or {})
        return kernel

    launches: list[tuple[str, int, int, int]] = []
    enqueue = gemm.enqueue_prepared

    def spy_enqueue(device: Device, kernel: Any, *args: Any) -> None:
        defines = built.get(id(kernel), {})
        launches.append((kernel.function_name, defines.get("B_GATHER", 0),
                         defines.get("SUM_IMAGES", 0), defines.get("WIDE_GATHER", 0)))
        enqueue(device, kernel, *args)

    monkeypatch.setattr(KernelCache, "kernel", spy_fetch)
    monkeypatch.setattr(gemm, "enqueue_prepared", spy_enqueue)
    return launches


def test_conv_tf32_is_off_by_default() -> None:
    """Unlike torch's True: float32 stays float32 until asked otherwise. Read in a fresh
    interpreter, before any test's setting."""
    fresh = subprocess.run(
        [sys.executable, "-c", "from netcl.core.tensor import backends; "
         "print(backends.cudnn.allow_tf32, backends.get_float32_matmul_precision())"],
        capture_output=True, text=True, check=True)
    assert fresh.stdout.split() == ["False", "highest"]


def test_conv_tf32_is_its_own_setting(conv_tf32: None) -> None:
    backends.cudnn.allow_tf32 = False
    backends.set_float32_matmul_precision("high")
    try:
        assert backends.cudnn.allow_tf32 is False  # matmul's switch is another
        backends.cudnn.allow_tf32 = True
        with pytest.raises(TypeError, match=r"cudnn\.allow_tf32 must be a bool, got int"):
            backends.cudnn.allow_tf32 = 1  # type: ignore[assignment]
        assert backends.cudnn.allow_tf32 is True
    finally:
        backends.set_float32_matmul_precision("highest")


@pytest.mark.parametrize(("capability", "dtype", "tf32", "on_tensor_cores"), [
    ((9, 0), dtypes.bfloat16, False, True), ((9, 0), dtypes.float16, False, True),
    ((9, 0), dtypes.float32, False, False), ((9, 0), dtypes.float32, True, True),
    ((7, 5), dtypes.bfloat16, True, False), ((0, 0), dtypes.float16, True, False),
])
def test_each_device_and_dtype_gets_its_convolution(
        conv_tf32: None, capability: tuple[int, int], dtype: Any, tf32: bool,
        on_tensor_cores: bool) -> None:
    backends.cudnn.allow_tf32 = tf32
    extensions = NV if capability != (0, 0) else "cl_khr_fp16"
    device = SimpleNamespace(type="gpu", cl_device=fake_cl_device(extensions, *capability))
    assert gemm.conv_on_tensor_cores(cast(Device, device), dtype) is on_tensor_cores


def test_convolutions_of_few_channels_take_tiles_of_few_rows() -> None:
    """The issue's 64 -> 64 convolution on 132 compute units: half of a 128-row tile
    would multiply rows past the 64 channels."""
    assert gemm._conv_tile(132, "nn", 64, 56 * 56, 32, 2) == MMA_SMALL_TILES[2, "nn"]
    assert gemm._conv_tile(132, "nt", 64, 576, 1, 2) == MMA_SMALL_TILES[2, "nt"]
    assert gemm._conv_tile(132, "nn", 256, 28 * 28, 32, 2) == MMA_TILES[2, "nn"]
    assert MMA_TILES[2, "nn"].bm == 128


def test_conv_tf32_changes_no_bit_without_tensor_cores(
        device: Device, rng: np.random.Generator, conv_tf32: None) -> None:
    if gemm.tensor_cores(device.cl_device):
        pytest.skip("this device has tensor cores: TF32 does change results here")
    x = from_numpy(rng.standard_normal((2, 3, 9, 9)).astype(np.float32), device)
    w = from_numpy(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), device)
    backends.cudnn.allow_tf32 = False
    full = conv2d(x, w, padding=1).numpy()
    backends.cudnn.allow_tf32 = True
    assert np.array_equal(conv2d(x, w, padding=1).numpy(), full)


# (stride, padding, dilation): a ragged OH x OW, stride and dilation unequal by axis.
GEOMETRY = ((2, 1), (1, 2), (1, 2))
PLAIN = (1, 1, 1)


def stored(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any) -> Array:
    return rng.standard_normal(shape).astype(dtype)


def integers(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any) -> Array:
    """Whole numbers in -8..8: every product and every float32 partial sum of the
    passes below is exact (|sum| < 2^24), in any order, so a right kernel gives float64's
    result rounded once to ``dtype``, bit for bit; sums past 256 make that rounding
    bfloat16's."""
    return rng.integers(-8, 9, shape).astype(dtype)


def exact(got: Array, reference: Callable[[Any, Any], Any], left: Array, right: Array
          ) -> None:
    """``got`` is the float64 ``reference`` of whole-number inputs rounded to its dtype."""
    want = reference(as64(left), as64(right)).numpy().astype(left.dtype)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got.astype(np.float64), want.astype(np.float64))


def as64(a: Array) -> Any:
    return torch.from_numpy(a.astype(np.float64))


def check(got: Array, dtype: Any, reference: Callable[[Any, Any], Any], left: Array,
          right: Array, k: int) -> None:
    """``got`` within the rounding bound of the float64 ``reference`` of the stored
    inputs (its magnitude: the same convolution of their absolute values)."""
    assert got.dtype == dtype
    exact = reference(as64(left), as64(right)).numpy()
    magnitude = reference(as64(left).abs(), as64(right).abs()).numpy()
    error = np.abs(got.astype(np.float64) - exact)
    assert np.all(error <= rounding_bound(magnitude, exact, k, np.dtype(dtype),
                                          np.dtype(dtype)))


def forward(emulated_device: Device, x: Array, w: Array, geometry: tuple[Any, ...],
            tile: MmaTile | None = None) -> Array:
    stride, padding, dilation = geometry
    return conv2d(from_numpy(x, emulated_device), from_numpy(w, emulated_device), stride,
                  padding, dilation, tile=tile).numpy()


@pytest.mark.parametrize(("dtype", "geometry"), [
    (dtypes.bfloat16, GEOMETRY), (dtypes.float16, PLAIN), (dtypes.float32, PLAIN)],
    ids=["bf16", "fp16", "tf32"])
def test_forward_matches_float64(
        emulated_device: Device, rng: np.random.Generator, conv_tf32: None, dtype: Any,
        geometry: tuple[Any, ...], gemm_launches: list[tuple[str, int, int, int]]) -> None:
    x, w = stored(rng, (2, 5, 11, 9), dtype), stored(rng, (7, 5, 3, 3), dtype)
    got = forward(emulated_device, x, w, geometry)
    stride, padding, dilation = geometry
    check(got, dtype, lambda a, b: functional.conv2d(a, b, None, stride, padding, dilation),
          x, w, 5 * 9)
    assert np.array_equal(forward(emulated_device, x, w, geometry), got)
    assert gemm_launches == [("matmul_mma", 1, 0, 0)] * 2


def test_input_grad_matches_float64(
        emulated_device: Device, rng: np.random.Generator,
        gemm_launches: list[tuple[str, int, int, int]]) -> None:
    dtype = dtypes.bfloat16
    stride, padding, dilation = GEOMETRY
    x_shape, w = (2, 5, 11, 9), stored(rng, (7, 5, 3, 3), dtypes.bfloat16)
    out_shape = functional.conv2d(torch.zeros(x_shape), torch.zeros(w.shape), None, stride,
                                  padding, dilation).shape
    g = stored(rng, tuple(out_shape), dtype)
    got = conv2d_input_grad(from_numpy(g, emulated_device), from_numpy(w, emulated_device),
                            x_shape, stride, padding, dilation).numpy()
    check(got, dtype, lambda a, b: torch.nn.grad.conv2d_input(x_shape, b, a, stride, padding,
                                                              dilation), g, w, 7 * 9)
    assert gemm_launches == [("matmul_mma", 3, 0, 0)]


def weight_grad(device: Device, g: Array, x: Array, w_shape: tuple[int, ...],
                tile: MmaTile | None = None) -> Array:
    return conv2d_weight_grad(from_numpy(g, device), from_numpy(x, device), w_shape, 1, 1,
                              tile=tile).numpy()


@pytest.mark.parametrize("groups", [1, 3])
@pytest.mark.parametrize("dtype", [dtypes.bfloat16, dtypes.float32], ids=["bf16", "tf32"])
def test_weight_grad_sums_the_images_in_order(
        emulated_device: Device, rng: np.random.Generator, conv_tf32: None,
        monkeypatch: pytest.MonkeyPatch, groups: int, dtype: Any,
        gemm_launches: list[tuple[str, int, int, int]]) -> None:
    """Five images of 9 x 8 (72 output positions: ragged against 32-deep steps) in one
    group, or three (2 + 2 + 1 images, the groups' float32 slabs then summed by ``sum``:
    a fixed order)."""
    monkeypatch.setattr(gemm, "weight_grad_groups", lambda *args: groups)
    x, w_shape = stored(rng, (5, 6, 9, 8), dtype), (8, 6, 3, 3)
    g = stored(rng, (5, 8, 9, 8), dtype)
    got = weight_grad(emulated_device, g, x, w_shape)
    check(got, dtype, lambda a, b: torch.nn.grad.conv2d_weight(b, w_shape, a, 1, 1), g, x,
          5 * 72 + groups)
    assert np.array_equal(weight_grad(emulated_device, g, x, w_shape), got)
    assert gemm_launches == [("matmul_mma", 2, 1, 0)] * 2


# A tile other than the small default (64 x 64 x 32 on 2 x 2 warps): another depth,
# height and warp shape, the same K order.
OTHER_TILE = MmaTile(32, 64, 16, 1, 2)


def test_tiles_give_the_same_bits(
        emulated_device: Device, rng: np.random.Generator,
        monkeypatch: pytest.MonkeyPatch, gemm_launches: list[tuple[str, int, int, int]]) -> None:
    monkeypatch.setattr(gemm, "weight_grad_groups", lambda *args: 2)
    dtype = dtypes.bfloat16
    x, w = stored(rng, (2, 5, 11, 9), dtype), stored(rng, (7, 5, 3, 3), dtype)
    assert np.array_equal(forward(emulated_device, x, w, GEOMETRY, OTHER_TILE),
                          forward(emulated_device, x, w, GEOMETRY))
    x, g = stored(rng, (3, 6, 9, 8), dtype), stored(rng, (3, 8, 9, 8), dtype)
    assert np.array_equal(weight_grad(emulated_device, g, x, (8, 6, 3, 3), OTHER_TILE),
                          weight_grad(emulated_device, g, x, (8, 6, 3, 3)))
    assert gemm_launches == [("matmul_mma", 1, 0, 0)] * 2 + [("matmul_mma", 2, 1, 0)] * 2


def test_grads_for_autograd_take_the_same_kernels(
        emulated_device: Device, rng: np.random.Generator,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """conv2d_grads (autograd's) gives conv2d_input_grad's and conv2d_weight_grad's bits."""
    monkeypatch.setattr(gemm, "weight_grad_groups", lambda *args: 1)
    dtype = dtypes.bfloat16
    x, w = stored(rng, (2, 5, 11, 9), dtype), stored(rng, (7, 5, 3, 3), dtype)
    g = stored(rng, (2, 7, 6, 9), dtype)
    stride, padding, dilation = GEOMETRY
    args = [from_numpy(a, emulated_device) for a in (g, x, w)]
    gx, gw, _ = conv2d_grads(*args, stride, padding, dilation)
    assert gx is not None and gw is not None
    assert np.array_equal(gx.numpy(), conv2d_input_grad(
        args[0], args[2], x.shape, stride, padding, dilation).numpy())
    assert np.array_equal(gw.numpy(), conv2d_weight_grad(
        args[0], args[1], w.shape, stride, padding, dilation).numpy())


def test_a_strided_view_is_read_in_place(
        emulated_device: Device, rng: np.random.Generator,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An input that is a view (an offset, channel and row strides of a larger tensor)
    gives the bits of its contiguous copy: forward and weight gradient gather it."""
    monkeypatch.setattr(gemm, "weight_grad_groups", lambda *args: 1)
    dtype = dtypes.bfloat16
    stride, padding, dilation = GEOMETRY
    whole = stored(rng, (2, 5, 12, 10), dtype)
    w = from_numpy(stored(rng, (7, 5, 3, 3), dtype), emulated_device)
    view = from_numpy(whole, emulated_device)[:, :, 1:, 1:]
    copy = from_numpy(np.ascontiguousarray(whole[:, :, 1:, 1:]), emulated_device)
    assert not view.is_contiguous and view.offset
    assert np.array_equal(conv2d(view, w, stride, padding, dilation).numpy(),
                          conv2d(copy, w, stride, padding, dilation).numpy())
    whole = stored(rng, (5, 6, 10, 9), dtype)
    g = from_numpy(stored(rng, (5, 8, 9, 8), dtype), emulated_device)
    view = from_numpy(whole, emulated_device)[:, :, 1:, 1:]
    copy = from_numpy(np.ascontiguousarray(whole[:, :, 1:, 1:]), emulated_device)
    assert np.array_equal(conv2d_weight_grad(g, view, (8, 6, 3, 3), 1, 1).numpy(),
                          conv2d_weight_grad(g, copy, (8, 6, 3, 3), 1, 1).numpy())


# Rows of 16 positions and 16 input columns (whole 16-byte vectors of bf16 and of
# float32) under geometries whose column shifts against the vectors cover every
# selection of the wide gather: (stride, padding, dilation) with column offsets
# -3, 0, +3 (bf16 shifts 5, 0, 3: odd, crossing into the next vector), and for the
# input gradient +1, 0, -1 (shifts 1, 0, 7); both stride 2 along the height, which
# the input gradient must skip.
WIDE = ((2, 1), (1, 3), (1, 3))
WIDE_NEAR = ((2, 1), (0, 1), (1, 1))


def wide_pass(device: Device, rng: np.random.Generator, which: str, dtype: Any,
              geometry: tuple[Any, ...]) -> tuple[Callable[[], Array], Callable[[Any, Any], Any],
                                                  Array, Array]:
    """One pass on a (2, 5, 7, 16) input and a 3x3 weight of 6 outputs, all whole numbers:
    the call, its float64 reference and the two operands it multiplies."""
    stride, padding, dilation = geometry
    x, w = integers(rng, (2, 5, 7, 16), dtype), integers(rng, (6, 5, 3, 3), dtype)
    out_shape = tuple(functional.conv2d(torch.zeros(x.shape), torch.zeros(w.shape), None,
                                        stride, padding, dilation).shape)
    g = integers(rng, out_shape, dtype)
    xd, wd, gd = (from_numpy(a, device) for a in (x, w, g))
    if which == "forward":
        return (lambda: conv2d(xd, wd, stride, padding, dilation).numpy(),
                lambda a, b: functional.conv2d(a, b, None, stride, padding, dilation), x, w)
    if which == "input grad":
        return (lambda: conv2d_input_grad(gd, wd, x.shape, stride, padding, dilation).numpy(),
                lambda a, b: torch.nn.grad.conv2d_input(x.shape, b, a, stride, padding,
                                                        dilation), g, w)
    return (lambda: conv2d_weight_grad(gd, xd, w.shape, stride, padding, dilation).numpy(),
            lambda a, b: torch.nn.grad.conv2d_weight(b, w.shape, a, stride, padding,
                                                     dilation), g, x)


@pytest.mark.parametrize(("which", "dtype", "geometry", "mode"), [
    ("forward", dtypes.bfloat16, WIDE, 1), ("input grad", dtypes.bfloat16, WIDE_NEAR, 3),
    ("weight grad", dtypes.bfloat16, WIDE, 2), ("weight grad", dtypes.float32, WIDE, 2)],
    ids=["forward", "input-grad", "weight-grad", "weight-grad-tf32"])
def test_the_wide_gather_reads_the_same_elements(
        emulated_device: Device, rng: np.random.Generator, conv_tf32: None,
        monkeypatch: pytest.MonkeyPatch, gemm_launches: list[tuple[str, int, int, int]],
        which: str, dtype: Any, geometry: tuple[Any, ...], mode: int) -> None:
    """Read 16 bytes at a time and shifted into place, each pass gives the exact sums of
    whole-number inputs (as the element gather, whose sums the other tests check), so it
    read every element and every zero of the padding where the element gather does. One
    build a pass, not two: PoCL compiles each for seconds."""
    monkeypatch.setattr(gemm, "weight_grad_groups", lambda *args: 1)
    call, reference, left, right = wide_pass(emulated_device, rng, which, dtype, geometry)
    with conv_options(ConvOptions(wide_gather=True)):
        exact(call(), reference, left, right)
    assert gemm_launches == [("matmul_mma", mode, int(mode == 2), 1)]


def gather_of(mode: int, h: int, w: int, geometry: tuple[Any, ...]) -> dict[str, int]:
    """gemm's G_* defines of pass ``mode`` of a 3x3 convolution of an (h, w) input: the
    tensor it reads (the input, or for the input gradient the output gradient) has five
    contiguous channels."""
    stride, padding, dilation = ((v, v) if isinstance(v, int) else v for v in geometry)
    oh, ow = (output_size(size, 3, s, p, d)
              for size, s, p, d in zip((h, w), stride, padding, dilation, strict=True))
    rows, cols = (oh, ow) if mode == 3 else (h, w)
    values = conv_gather([3, 3, *stride, *padding, *dilation], (h, w), (oh, ow),
                         (5 * rows * cols, rows * cols, cols, 1))
    return {f"G_{key}": value for key, value in values.items()}


def operand(offset: int, image_stride: int) -> Operand:
    return Operand(np.dtype(np.float32), (1,), offset, 0, 0, (image_stride,))


@pytest.mark.parametrize(("mode", "h", "w", "geometry", "offset", "per_vector", "wide"), [
    (1, 7, 16, WIDE, 0, 8, True), (3, 7, 16, WIDE, 0, 8, True),
    (2, 56, 56, PLAIN, 0, 8, True),  # the convolution
    (2, 9, 12, PLAIN, 0, 4, True),  # TF32: 4-element vectors
    (2, 9, 12, PLAIN, 0, 8, False),  # rows of 12: not whole bf16 vectors
    (1, 7, 16, ((1, 2), (1, 1), (1, 1)), 0, 8, False),  # stride 2 along rows
    (1, 7, 16, PLAIN, 1, 8, False),  # rows start off a vector
    (1, 7, 16, ((1, 1), (1, 2), (1, 1)), 0, 8, False),  # 18 output columns
    (3, 7, 16, ((1, 1), (1, 2), (1, 1)), 0, 8, False),  # the input grad reads rows of 18
])
def test_the_wide_gather_only_where_rows_are_whole_aligned_vectors(
        mode: int, h: int, w: int, geometry: tuple[Any, ...], offset: int, per_vector: int,
        wide: bool) -> None:
    gather = gather_of(mode, h, w, geometry)
    image = 5 * gather["G_S1"]
    assert gemm._reads_rows_whole(gather, mode, operand(offset, image), per_vector) is wide


def test_the_wide_gather_needs_unit_column_stride_and_aligned_images() -> None:
    gather = gather_of(1, 7, 16, PLAIN)
    assert gemm._reads_rows_whole(gather, 1, operand(0, 560), 8)
    assert not gemm._reads_rows_whole(gather, 1, operand(0, 561), 8)
    assert not gemm._reads_rows_whole({**gather, "G_S3": 2}, 1, operand(0, 560), 8)
    assert not gemm._reads_rows_whole({**gather, "G_S2": 20}, 1, operand(0, 560), 8)


def test_a_weight_grad_split_inside_images_sums_every_step_once(
        emulated_device: Device, rng: np.random.Generator,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Three images of 72 output positions: three 32-deep steps each (the last padded),
    nine in all. Five shares of two steps cross images (steps 2-3, 6-7 and 8); three
    shares of three steps are the images, as three groups of whole images are."""
    dtype = dtypes.bfloat16
    x, w_shape = stored(rng, (3, 6, 9, 8), dtype), (8, 6, 3, 3)
    g = stored(rng, (3, 8, 9, 8), dtype)
    split = ConvOptions(dw_split_images=True)
    monkeypatch.setattr(gemm, "weight_grad_groups", lambda *args: 5)
    with conv_options(split):
        got = weight_grad(emulated_device, g, x, w_shape)
        assert np.array_equal(weight_grad(emulated_device, g, x, w_shape), got)
    check(got, dtype, lambda a, b: torch.nn.grad.conv2d_weight(b, w_shape, a, 1, 1), g, x,
          3 * 72 + 5)
    monkeypatch.setattr(gemm, "weight_grad_groups", lambda *args: 3)
    with conv_options(split):
        by_steps = weight_grad(emulated_device, g, x, w_shape)
    assert np.array_equal(by_steps, weight_grad(emulated_device, g, x, w_shape))


@pytest.mark.parametrize(("per_unit", "parts", "groups"), [
    (2, 32, 30), (2, 8, 8), (8, 32 * 98, 118), (1, 1, 1)])
def test_weight_grad_groups_aim_at_work_groups_per_compute_unit(
        per_unit: int, parts: int, groups: int) -> None:
    """132 compute units, 9 tiles (the issue's 64 x 576 on 64 x 64 tiles), slabs of 147 KiB."""
    assert gemm.weight_grad_groups(132, 9, parts, 64 * 576 * 4, per_unit) == groups


def test_options_pick_the_weight_grad_tile_and_a_forced_tile_wins(
        emulated_device: Device, rng: np.random.Generator,
        monkeypatch: pytest.MonkeyPatch) -> None:
    tiles: list[MmaTile] = []
    plan = gemm._mma_plan

    def spy_plan(*args: Any) -> Any:
        tiles.append(args[8])
        return plan(*args)

    monkeypatch.setattr(gemm, "_mma_plan", spy_plan)
    monkeypatch.setattr(gemm, "weight_grad_groups", lambda *args: 1)
    x, g = stored(rng, (1, 6, 9, 8), dtypes.bfloat16), stored(rng, (1, 8, 9, 8), dtypes.bfloat16)
    with conv_options(ConvOptions(dw_tile=OTHER_TILE)):
        weight_grad(emulated_device, g, x, (8, 6, 3, 3))
        weight_grad(emulated_device, g, x, (8, 6, 3, 3), MMA_SMALL_TILES[2, "nt"])
    assert tiles == [OTHER_TILE, MMA_SMALL_TILES[2, "nt"]]


def test_conv_options_are_checked() -> None:
    with pytest.raises(ValueError, match=r"dw_per_unit must be an int >= 1 .*got 0"):
        ConvOptions(dw_per_unit=0)
    with pytest.raises(TypeError, match="wide_gather must be a bool, got str 'no'"):
        ConvOptions(wide_gather="no")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"dw_split_images must be a bool, got float 1\.0"):
        ConvOptions(dw_split_images=1.0)  # type: ignore[arg-type]
    for tile in ((64, 128, 32, 2, 2), "64x128"):
        with pytest.raises(TypeError, match=r"dw_tile must be an MmaTile or None .*got "
                           f"{type(tile).__name__}"):
            ConvOptions(dw_tile=tile)  # type: ignore[arg-type]
    with (pytest.raises(TypeError, match="conv_options takes a ConvOptions, got dict"),
          conv_options({})):  # type: ignore[arg-type]
        pass
    assert ConvOptions(True, 8, True, OTHER_TILE).name == f"8/cu split wide {OTHER_TILE.name}"
    assert conv_options_module.current() is conv_options_module.CONV_OPTIONS
    with conv_options(ConvOptions(wide_gather=True)):
        assert conv_options_module.current() == ConvOptions(wide_gather=True)
    assert conv_options_module.current() is conv_options_module.CONV_OPTIONS


# Of the tiles conv_tensor_cores.py --variants sweeps for the weight gradient, the two
# whose shapes no other test runs: 2 x 4 warps of 32 x 48, and 64-deep steps. The others'
# warps (32 x 64, 64 x 32) are the matmul tests' (64x128/2x2w, 128x128/2x4w), and the
# gather reads a vector at a time whatever the tile.
@pytest.mark.parametrize("tile", [MmaTile(64, 192, 32, 2, 4), MmaTile(64, 64, 64, 2, 2)],
                         ids=lambda tile: tile.name)
def test_the_bench_weight_grad_tiles_give_the_exact_sums(
        emulated_device: Device, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch,
        gemm_launches: list[tuple[str, int, int, int]], tile: MmaTile) -> None:
    """Read by the wide gather, in one group, whole-number inputs (72 positions an image:
    ragged against 32- and 64-deep steps): float64's sums, rounded once."""
    monkeypatch.setattr(gemm, "weight_grad_groups", lambda *args: 1)
    dtype = dtypes.bfloat16
    x, g = integers(rng, (2, 6, 9, 8), dtype), integers(rng, (2, 8, 9, 8), dtype)
    with conv_options(ConvOptions(wide_gather=True, dw_tile=tile)):
        got = weight_grad(emulated_device, g, x, (8, 6, 3, 3))
    exact(got, lambda a, b: torch.nn.grad.conv2d_weight(b, (8, 6, 3, 3), a, 1, 1), g, x)
    assert gemm_launches == [("matmul_mma", 2, 1, 1)]
