"""Launch plans for matmul.cl: which kernels, grids and scalar arguments run one product.

A ``Plan`` is built once per problem (operand shapes, strides, offsets,
dtypes) and replayed for every call with that problem's buffers: the work of
choosing a kernel variant, a tile and packing the scalars is not repeated on
the per-call path. ``matmul`` caches plans; ``implicit_gemm`` (a convolution
pass whose B operand is an NCHW tensor read in place) builds one per call.

On NVIDIA devices with tensor cores (compute capability 8.0 or more) float16
products, and float32 ones when TF32 is allowed (netcl.core.tensor.backends),
run the "mma" kernel (matmul_mma.cl: mma.sync and ldmatrix through inline
PTX). On a CPU device (PoCL) the "panel" kernel runs: B is packed into 16-wide
float panels and each work-item computes a 6x16 block of C in vector
registers, with no local memory. On a GPU the "tiled" kernel runs: a tile of C
per work-group, local-memory tiles of A and B double-buffered along K, a block
of C per work-item in registers. Both read their operands through strides, so
a transposed view (``x @ W.T``, ``a.T @ g`` in a backward pass) costs no copy.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyopencl as cl
import pyopencl.cltypes as cltypes

from netcl.core.device import Device
from netcl.core.device.device import compute_capability
from netcl.core.tensor import backends, dtypes, recorder
from netcl.core.tensor.launch import enqueue_prepared
from netcl.core.tensor.ops import conv_options
from netcl.core.tensor.ops.elementwise import add_, copy_, fill_
from netcl.core.tensor.ops.matmul_tiles import (
    MMA_SMALL_TILES,
    MmaTile,
    TileConfig,
    choose_mma_tile,
    choose_tile,
)
from netcl.core.tensor.ops.reduce import sum as sum_
from netcl.core.tensor.tensor import Shape, Tensor

KERNEL_FILE = Path(__file__).with_name("matmul.cl")
MMA_FILE = Path(__file__).with_name("matmul_mma.cl")
# mma.sync, ldmatrix, cp.async and TF32 rounding in inline PTX, built ahead of it.
MMA_HELPERS_FILE = Path(__file__).with_name("mma.cl")
# PARAMS, UNPACK_PARAMS and batch_offset, built ahead of either file.
PARAMS_FILE = Path(__file__).with_name("matmul_params.cl")
# matmul_mma.cl's MMA_TYPE per input dtype: TF32 for float32, f16, bf16.
MMA_TYPES = {dtypes.float32: 0, dtypes.float16: 1, dtypes.bfloat16: 2}
# bf16's store (bfloat16.cl) and the shared scalars come first.
MMA_SOURCES = (dtypes.BFLOAT16_CL, PARAMS_FILE, MMA_HELPERS_FILE, MMA_FILE)
# The emulated mma.sync's exchange: six words a work-item (mma.cl's MMA_SCRATCH).
MMA_SCRATCH_BYTES = 6 * 4
# mma.sync with f16 and tf32 inputs (and ldmatrix) needs compute capability 8.0.
MMA_CAPABILITY = (8, 0)
# The kernels decompose the batch index over at most this many dimensions.
MAX_BATCH_DIMS = 3
# Offsets inside one matrix are 32-bit ints in the kernels (faster index math
# on GPUs); batch offsets are 64-bit.
INT32_MAX = 2**31 - 1
# The batch runs along the grid's third dimension, which NVIDIA limits to
# 65535 work-groups; longer batches are launched in slices of this many.
MAX_BATCH_SLICE = 65535

# The CPU kernel's block of C per work-item (fixed in matmul.cl).
PANEL_ROWS = 6
PANEL_COLS = 16
# Blocks of rows per CPU work-group: they share one packed panel of B while it
# is in L2. On a 2-core EPYC anything from 4 to 64 ran 1024^3 at ~172 GFLOP/s
# and 128x784x256 within 6% of each other; 16 sits in the middle.
PANEL_GROUP = 16

# The weight gradient sums per-image slabs of O x C*KH*KW floats; past this
# many bytes of them at once it sums groups of images and then the groups.
MAX_SLAB_BYTES = 256 << 20

# Buffer roles in a Step: the call's operands and output, then its scratch.
A, B, OUT = 0, 1, 2


class Operand(NamedTuple):
    """A batch of matrices as the kernels read it: element (i, j) of batch
    entry z at ``offset + batch_offset(z) + i * row_stride + j * col_stride``."""

    dtype: np.dtype[Any]
    shape: Shape  # the tensor's, for error messages
    offset: int
    row_stride: int
    col_stride: int
    batch_strides: Shape


# A launch's scalar arguments: the int16 and the long8 of matmul.cl's PARAMS.
Params = tuple[tuple[int, ...], tuple[int, ...]]


# The packed int16 and long8 as ``enqueue_prepared`` takes them: (0, ints, 1, longs).
Packed = tuple[int, bytes, int, bytes]


class Step(NamedTuple):
    """One kernel launch of a plan. ``buffers`` (arguments 2, 3, ...): an int is a
    role (A, B, OUT, or 3 + i for scratch buffer i), anything else is passed as it is."""

    kernel: cl.Kernel
    global_size: tuple[int, int, int]
    local_size: tuple[int, int, int] | None
    scalars: Packed
    buffers: tuple[Any, ...]


class Plan(NamedTuple):
    """The launches of one product and the scratch memory (bytes each) they need."""

    scratch: tuple[int, ...]
    steps: tuple[Step, ...]


def run(device: Device, plan: Plan, a: Any, b: Any, out: Any) -> None:
    """Enqueue ``plan`` over these buffers (scratch comes from the device's pool)."""
    buffers = (a, b, out, *(device.pool.allocate(size) for size in plan.scratch))
    for step in plan.steps:
        bound: list[Any] = []
        for index, role in enumerate(step.buffers, start=2):
            bound += (index, buffers[role] if type(role) is int else role)
        enqueue_prepared(device, step.kernel, step.global_size, step.local_size, tuple(bound),
                         step.scalars)


class Variant(NamedTuple):
    """What selects one build of matmul.cl; the defines follow from it."""

    family: str  # "panel" (CPU) or "tiled" (GPU)
    a_dtype: np.dtype[Any]
    b_dtype: np.dtype[Any]
    c_dtype: np.dtype[Any]
    a_packed: bool = False  # panel: A goes through pack_a
    a_k_major: bool = False  # tiled: A's unit stride runs along K
    b_k_major: bool = False  # tiled: B's unit stride runs along K
    a_vec: bool = False  # tiled: A's load slots are aligned float4s
    b_vec: bool = False
    c_vec: bool = False  # tiled: C (or slab) rows are stored as float4s
    tile: TileConfig | None = None
    split: bool = False  # tiled: batch entry z is K chunk z
    sum_z: bool = False  # tiled: the batch entries are summed in the launch
    fence: str = ""  # tiled: GLOBAL_FENCE, the device's fence across work-groups
    gather: tuple[tuple[str, int], ...] = ()  # tiled: B is a convolution's input (G_* defines)
    sliced: bool = False  # the batch runs in slices (see _slices)
    edge_slots: bool = False  # tiled: M or N is ragged; edge tiles read inner slots whole

    def defines(self) -> dict[str, str | int]:
        defines: dict[str, str | int] = {
            "A_T": dtypes.STORAGE_C_TYPE[self.a_dtype],
            "B_T": dtypes.STORAGE_C_TYPE[self.b_dtype],
            "C_T": dtypes.STORAGE_C_TYPE[self.c_dtype],
            "LOAD_A(p, i)": _load(self.a_dtype),
            "LOAD_B(p, i)": _load(self.b_dtype),
            "STORE_C(p, i, v)": _store(self.c_dtype),
            "STORE_C4(p, i, v)": _store4(self.c_dtype),
            "PANEL": int(self.family == "panel"),
            "BATCH_SLICED": int(self.sliced),
        }
        if self.family == "panel":
            defines["A_PACKED"] = int(self.a_packed)
            defines["VECTOR_STORE"] = int(self.c_dtype == dtypes.float32)
            defines["A_FLOAT"] = int(self.a_dtype == dtypes.float32)
            defines["B_FLOAT"] = int(self.b_dtype == dtypes.float32)
        else:
            assert self.tile is not None
            tile = self.tile
            defines.update(BM=tile.bm, BN=tile.bn, BK=tile.bk, TM=tile.tm, TN=tile.tn,
                           A_K_MAJOR=int(self.a_k_major), B_K_MAJOR=int(self.b_k_major),
                           A_VEC=int(self.a_vec), B_VEC=int(self.b_vec),
                           C_VEC=int(self.c_vec), SPLIT_K=int(self.split),
                           SWIZZLE=int(tile.swizzle), K_SLICES=tile.k_slices,
                           PIPELINED=int(tile.pipelined),
                           SUM_Z=int(self.sum_z), GLOBAL_FENCE=self.fence or "0",
                           EDGE_SLOTS=int(self.edge_slots))
            defines.update(self.gather or (("B_GATHER", 0),))
        return defines


def _load(dtype: np.dtype[Any]) -> str:
    return dtypes.cl_load(dtype, "(p)", "(i)")


def _store(dtype: np.dtype[Any]) -> str:
    return dtypes.cl_store(dtype, "(p)", "(i)", "(v)")


def _store4(dtype: np.dtype[Any]) -> str:
    if dtype == dtypes.float16:
        return "vstore_half4((v), 0, (p) + (i))"
    if dtype == dtypes.bfloat16:
        return "bf16_store4((v), (i), (p))"
    return "*(__global float4 *)((p) + (i)) = (v)"


class MmaVariant(NamedTuple):
    """What selects one build of matmul_mma.cl; the defines follow from it."""

    a_dtype: np.dtype[Any]  # both operands' dtype
    c_dtype: np.dtype[Any]
    a_k_major: bool  # A's unit stride runs along K
    b_k_major: bool
    a_vec: bool  # A's 16-byte vectors along its unit stride are aligned
    b_vec: bool
    c_vec: bool  # C is float32 with N even: stored two floats at a time
    copy_async: bool  # both operands' vectors aligned: tiles come in by cp.async
    tile: MmaTile
    sliced: bool = False  # the batch runs in slices (see _slices)
    emulated: bool = False  # mma.sync and friends in plain OpenCL C (emulated_tensor_cores)
    gather: tuple[tuple[str, int], ...] = ()  # B is a convolution's input (G_* defines)
    sum_images: bool = False  # batch entry z sums a run of the images' K steps (SUM_IMAGES)
    even: bool = False  # M, N and K whole tiles, tile.even_tiles (EVEN_TILES)
    wide_gather: bool = False  # the gathered B read 16 bytes at a time (WIDE_GATHER)

    def defines(self) -> dict[str, str | int]:
        tile = self.tile
        return {
            **dict(self.gather or (("B_GATHER", 0),)), "SUM_IMAGES": int(self.sum_images),
            "MMA_TYPE": MMA_TYPES[self.a_dtype], "BM": tile.bm, "BN": tile.bn, "BK": tile.bk,
            "WARPS_M": tile.warps_m, "WARPS_N": tile.warps_n,
            "A_K_MAJOR": int(self.a_k_major), "B_K_MAJOR": int(self.b_k_major),
            "A_VEC": int(self.a_vec), "B_VEC": int(self.b_vec), "LDMATRIX": int(tile.ldmatrix),
            "ASYNC": int(self.copy_async), "STAGES": tile.stages,
            "C_T": dtypes.STORAGE_C_TYPE[self.c_dtype], "STORE_C(p, i, v)": _store(self.c_dtype),
            "C_VEC2": int(self.c_vec), "BATCH_SLICED": int(self.sliced),
            "SWIZZLE": int(tile.swizzle), "RASTER": tile.raster,
            "MMA_EMULATED": int(self.emulated), "EVEN_TILES": int(self.even),
            "WIDE_GATHER": int(self.wide_gather),
            "FRAG_PIPELINE": int(tile.pipelined),
            "ROUND_STAGED": int(tile.round_staged),
        }


# Whether an emulated_tensor_cores block is open (a ContextVar, as autocast's
# state: a block opened on one thread does not leak into another's launches).
_emulating: ContextVar[bool] = ContextVar("netcl_emulated_tensor_cores", default=False)


@contextmanager
def emulated_tensor_cores() -> Iterator[None]:
    """Within this block, every device runs the tensor-core kernels where one with
    tensor cores would, ``mma.sync``, ``ldmatrix`` and ``cp.async`` emulated in plain
    OpenCL C where the device lacks them (mma.cl's MMA_EMULATED). Far slower than
    the other kernels: it exists so that the tensor-core kernels' tiling, fragment
    and edge logic is tested where no NVIDIA GPU is (CI's PoCL). cp.async is
    deferred there to the wait that covers it, its destination NaN till then, so a
    wait count one short or a stage read before its wait fails a test; a race
    between work-items (a missing barrier) shows only on hardware."""
    token = _emulating.set(True)
    try:
        yield
    finally:
        _emulating.reset(token)


def tensor_cores(cl_device: Any) -> bool:
    """Whether matmul_mma.cl can run on this OpenCL device (emulated within
    ``emulated_tensor_cores``)."""
    return _emulating.get() or reaches_tensor_cores(compute_capability(cl_device))


def emulates_tensor_cores(cl_device: Any) -> bool:
    """Whether the tensor-core kernels run on this device through the emulation."""
    return _emulating.get() and not reaches_tensor_cores(compute_capability(cl_device))


def reaches_tensor_cores(capability: tuple[int, int] | None) -> bool:
    return capability is not None and capability >= MMA_CAPABILITY


def kernels_for(device_type: str, capability: tuple[int, int] | None) -> str:
    """Which matmul kernels a device of this type and compute capability runs,
    in words (``netcl devices`` prints it)."""
    if device_type == "cpu":
        return "matmul: panel kernel (CPU)"
    if reaches_tensor_cores(capability):
        return ("matmul and conv2d: tensor cores (mma.sync) for float16 and bfloat16, and "
                "float32 when TF32 is allowed (matmul.allow_tf32, cudnn.allow_tf32); tiled "
                "kernel otherwise")
    return "matmul: tiled kernel (no tensor cores reachable)"


def default_family(device: Device, dtype: np.dtype[Any]) -> str:
    """The kernel a product of ``dtype`` operands runs on ``device`` unless one is
    forced: "mma" on tensor cores (real, or emulated within ``emulated_tensor_cores``)
    for float16 and bfloat16, and for float32 when TF32 is allowed (backends);
    otherwise "panel" on a CPU and "tiled" on a GPU."""
    wants_mma = dtype in MMA_TYPES and (dtype != dtypes.float32 or backends.tf32_allowed())
    if wants_mma and tensor_cores(device.cl_device):
        return "mma"
    return "panel" if device.type == "cpu" else "tiled"


def conv_on_tensor_cores(device: Device, dtype: np.dtype[Any]) -> bool:
    """Whether a convolution of ``dtype`` runs on tensor cores here: float16 and
    bfloat16, and float32 when TF32 is allowed for convolutions (backends.cudnn),
    on a device with tensor cores (or within ``emulated_tensor_cores``)."""
    wants_mma = dtype in MMA_TYPES and (dtype != dtypes.float32 or backends.conv_tf32_allowed())
    return wants_mma and tensor_cores(device.cl_device)


def _is_nvidia(device: Device) -> bool:
    return "NVIDIA" in str(device.cl_device.platform.name)


def _global_fence(device: Device) -> str:
    # OpenCL 1.2's mem_fence orders a work-item's accesses as its own
    # work-group sees them; a sum across work-groups needs them visible to
    # every compute unit: PTX's membar.gl (CUDA's __threadfence) on NVIDIA.
    # PoCL's CPU memory is coherent, and there the fence suffices.
    if _is_nvidia(device):
        return 'asm volatile("membar.gl;" ::: "memory")'
    return "mem_fence(CLK_GLOBAL_MEM_FENCE)"


def _sums_in_launch(device: Device) -> bool:
    """Whether SUM_Z may run here: devices whose global fence is known to reach
    every compute unit. Elsewhere slabs are summed by a second launch."""
    return device.type == "cpu" or _is_nvidia(device)


def kernel(device: Device, name: str, variant: Variant) -> cl.Kernel:
    """Kernel ``name`` of matmul.cl built for ``variant`` (the cache's key)."""
    return device.kernels.kernel((dtypes.BFLOAT16_CL, PARAMS_FILE, KERNEL_FILE), name, variant)


# Per device: a buffer of zeroed per-tile counters for SUM_Z launches (each
# launch leaves its counters at zero again; the queue is in order, so launches
# never share them at once), and every one it replaced, kept alive for the
# launches that may still use them.
_counters: dict[Device, list[tuple[int, Any]]] = {}


def _tile_counters(device: Device, tiles: int) -> Any:
    held = _counters.setdefault(device, [])
    if not held or held[-1][0] < tiles:
        size = max(4096, 2 * tiles)
        zeros = np.zeros(size, np.int32)
        flags = cl.mem_flags.READ_WRITE | cl.mem_flags.COPY_HOST_PTR
        held.append((size, cl.Buffer(device.context, flags, hostbuf=zeros)))
    return held[-1][1]


def params(a: Operand, b: Operand, m: int, n: int, k: int, dims: Shape,
           chunk: int = 0, slabs: int = 0) -> Params:
    """The int16 and long8 every kernel takes (UNPACK_PARAMS in matmul.cl)."""
    for op, rows, cols in ((a, m, k), (b, k, n)):
        reach = (rows - 1) * abs(op.row_stride) + (cols - 1) * abs(op.col_stride)
        if reach > INT32_MAX:
            raise ValueError(
                f"matmul: one matrix of shape {op.shape} spans {reach} elements; "
                f"the kernels index a single matrix with 32-bit offsets (at most {INT32_MAX})"
            )
    if m * n > INT32_MAX:
        raise ValueError(f"matmul: an output matrix of {m} x {n} exceeds 32-bit offsets")
    pad = MAX_BATCH_DIMS - len(dims)
    batch_shape = (*((1,) * pad), *dims)
    a_bs = (*((0,) * pad), *a.batch_strides)
    b_bs = (*((0,) * pad), *b.batch_strides)
    # Index 10 is the first batch entry of a slice (_slices fills it in),
    # 11 the depth of one split-K chunk and 12 the number of summed slabs.
    ints = (m, n, k, a.row_stride, a.col_stride, b.row_stride, b.col_stride, *batch_shape, 0,
            chunk, slabs)
    return (*ints, *((0,) * (16 - len(ints)))), (a.offset, *a_bs, b.offset, *b_bs)


def _slices(count: int, params: Params) -> list[tuple[int, Packed]]:
    """(entries, packed scalars) for each slice of at most MAX_BATCH_SLICE batch entries."""
    ints, longs = params
    return [
        (min(MAX_BATCH_SLICE, count - first), _pack(((*ints[:10], first, *ints[11:]), longs)))
        for first in range(0, count, MAX_BATCH_SLICE)
    ]


def _pack(params: Params) -> Packed:
    """The scalars as every kernel's first two arguments (PARAMS in matmul.cl)."""
    ints, longs = params
    return (0, np.array(ints, dtype=cltypes.int16).tobytes(),
            1, np.array(longs, dtype=cltypes.long8).tobytes())


def product_plan(device: Device, a: Operand, b: Operand, out_dtype: np.dtype[Any],
                 dims: Shape, m: int, n: int, k: int, kernel_family: str | None,
                 tile: TileConfig | MmaTile | None) -> Plan:
    """The plan of ``out[z] = A[z] @ B[z]`` for a contiguous ``out`` (batch, M, N)."""
    family = kernel_family or default_family(device, a.dtype)
    if family == "panel":
        return _panel_plan(device, a, b, out_dtype, dims, m, n, k)
    if family == "mma":
        if isinstance(tile, TileConfig):
            raise ValueError(f"matmul: kernel 'mma' takes an MmaTile, got {tile}")
        return _mma_plan(device, a, b, out_dtype, dims, m, n, k, tile)
    if isinstance(tile, MmaTile):
        raise ValueError(f"matmul: {tile.name} is a tile of kernel 'mma', not {family!r}")
    a_k_major = a.col_stride == 1
    b_k_major = b.row_stride == 1 and b.col_stride != 1
    count = math.prod(dims)
    if tile is None:
        layout = ("n" if a_k_major else "t") + ("t" if b_k_major else "n")
        tile = choose_tile(device.name, device.compute_units, layout, m, n, k, count)
    return _tiled_plan(device, a, b, out_dtype, dims, m, n, k, tile, a_k_major, b_k_major)


def _panel_plan(device: Device, a: Operand, b: Operand, out_dtype: np.dtype[Any],
                dims: Shape, m: int, n: int, k: int, b_packed: bool = False) -> Plan:
    count = math.prod(dims)
    # A is read in place only when it is float32 with unit stride along K;
    # otherwise pack_a first (see matmul.cl for the measurements).
    a_packed = not (a.dtype == dtypes.float32 and a.col_stride == 1)
    variant = Variant("panel", a.dtype, b.dtype, out_dtype, a_packed=a_packed,
                      sliced=count > MAX_BATCH_SLICE)
    panels = -(-n // PANEL_COLS)
    blocks = -(-m // PANEL_ROWS)
    # Spread the row blocks evenly over as few work-groups as PANEL_GROUP allows.
    group = -(-blocks // -(-blocks // PANEL_GROUP))
    # Scratch roles from 3: packed B (unless the caller packed it), then packed A.
    scratch = [] if b_packed else [count * panels * k * PANEL_COLS * 4]
    b_role = B if b_packed else 3
    a_role = A
    if a_packed:
        scratch.append(count * blocks * k * PANEL_ROWS * 4)
        a_role = 2 + len(scratch)
    steps = []
    for entries, scalars in _slices(count, params(a, b, m, n, k, dims)):
        if a_packed:
            steps.append(Step(kernel(device, "pack_a", variant), (k, blocks, entries), None,
                              scalars, (A, a_role)))
        if not b_packed:
            steps.append(Step(kernel(device, "pack_b", variant), (k, panels, entries), None,
                              scalars, (B, b_role)))
        steps.append(Step(kernel(device, "matmul_panel", variant),
                          (panels, -(-blocks // group) * group, entries), (1, group, 1),
                          scalars, (a_role, b_role, OUT)))
    return Plan(tuple(scratch), tuple(steps))


def packed_b_plan(device: Device, a: Operand, m: int, n: int, k: int, count: int = 1) -> Plan:
    """The panel kernel's plan of one (M, K) @ (K, N) whose B the caller has packed
    as ``pack_b`` would (float panels 16 columns wide, zero past N: see matmul.cl);
    ``run`` then takes that packed buffer as B. A convolution's columns are written
    straight into panels this way, saving pack_b's copy of them. With ``count`` > 1,
    a batch of that many products (``a`` with one batch stride, B's packed panels
    one batch entry after another, out (count, M, N))."""
    dims = (count,) if count > 1 else ()
    b = Operand(np.dtype(np.float32), (k, n), 0, n, 1, (k * n,) * len(dims))
    return _panel_plan(device, a, b, a.dtype, dims, m, n, k, b_packed=True)


def _float4_slots(op: Operand, k_major: bool) -> bool:
    """Whether the tiled kernel may read ``op``'s load slots as aligned float4s:
    float32, unit stride along the slot, everything else a multiple of 4."""
    return op.dtype == dtypes.float32 and _aligned_slots(op, k_major, 4)


def _aligned_slots(op: Operand, k_major: bool, width: int) -> bool:
    """Whether ``width`` elements of ``op`` along K (``k_major``) or along its rows'
    other axis, starting at a multiple of ``width``, are one aligned vector."""
    unit, other = (op.col_stride, op.row_stride) if k_major else (op.row_stride, op.col_stride)
    return unit == 1 and all(s % width == 0 for s in (other, op.offset, *op.batch_strides))


def _mma_plan(device: Device, a: Operand, b: Operand, out_dtype: np.dtype[Any], dims: Shape,
              m: int, n: int, k: int, tile: MmaTile | None,
              gather: tuple[tuple[str, int], ...] = (), group: int = 0,
              wide_gather: bool = False) -> Plan:
    """``out[z] = A[z] @ B[z]`` on tensor cores (matmul_mma.cl). With ``gather``, B is
    a convolution's input read in place (see implicit_gemm), 16 bytes at a time with
    ``wide_gather`` (_reads_rows_whole must hold); with ``group`` (and a ``tile``), the
    images' K ranges, each padded to whole ``tile.bk`` steps, are one sequence of
    steps, and entry z of ``out`` sums steps z * group .. (z + 1) * group - 1 of it."""
    if not tensor_cores(device.cl_device):
        raise ValueError(
            f"matmul: kernel 'mma' needs tensor cores (NVIDIA compute capability "
            f"{MMA_CAPABILITY[0]}.{MMA_CAPABILITY[1]} or more); {device.name} has none "
            f"(gemm.emulated_tensor_cores() emulates them, for tests)"
        )
    if a.dtype not in MMA_TYPES:
        raise TypeError(f"matmul: kernel 'mma' takes {sorted(map(str, MMA_TYPES))}, got {a.dtype}")
    size = a.dtype.itemsize
    count = math.prod(dims)
    a_k_major = a.col_stride == 1
    # A weight gradient's gathered B runs along K (output positions) in memory.
    b_k_major = dict(gather).get("B_GATHER") == 2 if gather else (
        b.row_stride == 1 and b.col_stride != 1)
    if group:
        assert tile is not None, "a sum over images steps through its tile's depth"
        k_steps = -(-k // tile.bk)
        entries = -(-(count * k_steps) // group)
    else:
        entries = count
    if tile is None:
        layout = ("n" if a_k_major else "t") + ("t" if b_k_major else "n")
        tile = choose_mma_tile(device.compute_units, layout, m, n, entries, size)
    per_vector = 16 // size
    a_vec = _aligned_slots(a, a_k_major, per_vector)
    b_vec = not gather and _aligned_slots(b, not b_k_major, per_vector)
    copy_async = a_vec and b_vec
    # The options of the cp.async path (pipelined, even_tiles, round_staged) are hints
    # that change no bits: where it is not taken the plain tile runs, checks included,
    # and round_staged rounds TF32 only (16-bit inputs need no rounding). Decided here
    # only: the variant's defines follow the tile.
    if not copy_async:
        tile = tile.plain
    elif a.dtype != dtypes.float32:
        tile = dataclasses.replace(tile, round_staged=False)
    emulated = emulates_tensor_cores(device.cl_device)
    local_bytes = tile.local_bytes(size, a_k_major, b_k_major, tile.stages if copy_async else 2)
    if emulated:
        local_bytes += tile.threads * MMA_SCRATCH_BYTES
    if not tile.fits(size) or local_bytes > device.cl_device.local_mem_size:
        raise ValueError(
            f"matmul: {tile.name} cannot run {a.dtype} here: bk must be a multiple of "
            f"{32 // size} ({64 // size} pipelined), bm * bk and bn * bk of {per_vector} "
            f"elements per work-item (swizzled: bm and bn multiples of {8 * per_vector}, "
            f"bk {2 * per_vector}, {4 * per_vector} or a multiple of {8 * per_vector}), "
            f"and its {local_bytes} bytes of tiles must fit the device's "
            f"{device.cl_device.local_mem_size} of local memory"
        )
    variant = MmaVariant(a.dtype, out_dtype, a_k_major, b_k_major, a_vec, b_vec,
                         n % 2 == 0 and out_dtype == dtypes.float32, copy_async, tile,
                         sliced=entries > MAX_BATCH_SLICE, emulated=emulated,
                         gather=gather, sum_images=group > 0, wide_gather=wide_gather,
                         even=tile.even_tiles
                         and m % tile.bm == 0 and n % tile.bn == 0 and k % tile.bk == 0)
    mma = device.kernels.kernel(MMA_SOURCES, "matmul_mma", variant)
    grid = (-(-n // tile.bn) * tile.threads, -(-m // tile.bm))
    scalars = params(a, b, m, n, k, dims, group, count if group else 0)
    steps = tuple(Step(mma, (*grid, sliced), (tile.threads, 1, 1), packed, (A, B, OUT))
                  for sliced, packed in _slices(entries, scalars))
    return Plan((), steps)


def _tiled_plan(device: Device, a: Operand, b: Operand, out_dtype: np.dtype[Any],
                dims: Shape, m: int, n: int, k: int, tile: TileConfig, a_k_major: bool,
                b_k_major: bool, gather: tuple[tuple[str, int], ...] = (),
                sum_batch: bool = False) -> Plan:
    """``out[z] = A[z] @ B[z]`` by the tiled kernel, or with ``sum_batch`` ``out =
    sum over z of A[z] @ B[z]``; with ``gather``, B is a convolution's input read in
    place (see implicit_gemm). A single product may split K (the tile's split_k)."""
    count = math.prod(dims)
    splits = tile.split_k if count == 1 and not gather else 1
    per_split = -(-k // splits)
    chunk = -(-per_split // tile.bk) * tile.bk  # whole BK steps
    splits = max(1, -(-k // chunk))
    entries = splits if splits > 1 else count
    summed = sum_batch or splits > 1
    in_launch = summed and _sums_in_launch(device)
    local_bytes = tile.local_bytes + 4 * in_launch  # SUM_Z adds one int flag
    if local_bytes > device.cl_device.local_mem_size:
        raise ValueError(
            f"matmul: tile {tile.name} needs {local_bytes} bytes of local memory; "
            f"{device.name} has {device.cl_device.local_mem_size}: choose a smaller tile"
        )
    grid_tiles = (-(-n // tile.bn), -(-m // tile.bm))
    variant = Variant(
        "tiled", a.dtype, b.dtype, out_dtype if not summed or in_launch else dtypes.float32,
        a_k_major=a_k_major, b_k_major=b_k_major,
        a_vec=_float4_slots(a, a_k_major),
        b_vec=not gather and _float4_slots(b, not b_k_major),
        c_vec=n % 4 == 0 and (out_dtype == dtypes.float32 or summed),
        tile=tile, split=splits > 1, sum_z=in_launch, gather=gather,
        fence=_global_fence(device) if in_launch else "",
        sliced=entries > MAX_BATCH_SLICE,
        edge_slots=m % tile.bm != 0 or n % tile.bn != 0,
    )
    local = tile.local_size
    scalars = params(a, b, m, n, k, dims, chunk, entries if summed else 0)
    scratch: tuple[int, ...] = (entries * m * n * 4,) if summed else ()
    # Summed in the launch: C is the output, slab scratch and counters follow;
    # by a second launch: the slabs are this launch's C.
    buffers: tuple[Any, ...] = (A, B, OUT)
    if in_launch:
        buffers = (A, B, OUT, 3, _tile_counters(device, grid_tiles[0] * grid_tiles[1]))
    elif summed:
        buffers = (A, B, 3)
    tiled = kernel(device, "matmul_tiled", variant)
    steps = [
        Step(tiled, (grid_tiles[0] * local[0], grid_tiles[1] * local[1], slice_entries), local,
             slice_scalars, buffers)
        for slice_entries, slice_scalars in _slices(entries, scalars)
    ]
    if summed and not in_launch:
        summing = kernel(device, "sum_splits", variant._replace(c_dtype=out_dtype))
        size = 256
        steps.append(Step(summing, (-(-(m * n) // size) * size, 1, 1), (size, 1, 1),
                          _pack(scalars), (3, OUT)))
    return Plan(scratch, tuple(steps))


def implicit_gemm(a: Tensor, x: Tensor, out: Tensor, mode: int,
                  geometry: dict[str, int], tile: TileConfig | MmaTile | None = None) -> None:
    """One convolution pass as a GEMM whose B operand is read in place from the NCHW ``x``.

    For every image z of ``x``: ``a[z] @ B[z]`` (``a`` is (M, K), or (N, M, K):
    one matrix per image) where B[z] is image z of ``x`` seen as the
    convolution's columns. Mode 1: the unfolded input (K = C*KH*KW, columns
    OH*OW); mode 3: the input gradient's view of the output gradient; both
    write ``out`` (N, M, columns). Mode 2: the unfolded input transposed (the
    weight gradient's B, K = OH*OW), summed over images into ``out`` (M, columns).
    ``geometry`` holds matmul.cl's G_* values without the prefix. Where
    ``conv_on_tensor_cores`` holds (or an MmaTile is given), matmul_mma.cl runs it.
    """
    device = a.device
    count = x.shape[0]
    m, n_cols = out.shape[-2:]
    k = a.shape[-1]
    if k == 0:  # no input channels
        fill_(out, 0)
        return
    a_op = Operand(a.dtype, a.shape, a.offset, a.strides[-2], a.strides[-1],
                   (a.strides[0],) if a.ndim == 3 else (0,))
    b_op = Operand(x.dtype, x.shape, x.offset, 0, 0, (x.strides[0],))
    gather = (("B_GATHER", mode), *((f"G_{key}", value) for key, value in geometry.items()))
    if isinstance(tile, MmaTile) or (tile is None and conv_on_tensor_cores(device, a.dtype)):
        _mma_conv(a_op, b_op, a, x, out, mode, tuple(sorted(gather)), tile)
        return
    if tile is None:
        tile = choose_tile(device.name, device.compute_units, f"conv{mode}", m, n_cols, k,
                           count)
    images = max(1, MAX_SLAB_BYTES // (m * n_cols * 4)) if mode == 2 else count
    if count <= images:
        # Mode 2's K runs along the image's columns: consecutive work-items walk K.
        plan = _tiled_plan(device, a_op, b_op, out.dtype, (count,), m, n_cols, k, tile,
                           a.strides[-1] == 1, mode == 2, tuple(sorted(gather)), mode == 2)
        run(device, plan, a.buffer, x.buffer, out.buffer)
        return
    # Too many images' slabs at once: sum groups of them, then the groups in order.
    total = Tensor(device.pool.allocate(m * n_cols * 4), (m, n_cols), dtypes.float32, device)
    part = Tensor(device.pool.allocate(m * n_cols * 4), (m, n_cols), dtypes.float32, device)
    for first in range(0, count, images):
        size = min(images, count - first)
        implicit_gemm(_images(a, first, size), _images(x, first, size),
                      total if first == 0 else part, mode, geometry, tile)
        if first:
            add_(total, part)
    copy_(out, total)


def weight_grad_groups(compute_units: int, tiles: int, parts: int, slab_bytes: int,
                       per_unit: int) -> int:
    """Groups a tensor-core weight gradient splits its ``parts`` (images, or K steps
    with ConvOptions.dw_split_images) into: each group's sum goes to a float32 slab
    of ``slab_bytes`` and the slabs are then summed (see _mma_conv). Enough groups
    for ``per_unit`` work-groups a compute unit, at most one a part, their slabs
    within MAX_SLAB_BYTES."""
    wanted = -(-per_unit * compute_units // tiles)
    return max(1, min(parts, wanted, MAX_SLAB_BYTES // slab_bytes))


def _reads_rows_whole(gather: dict[str, int], mode: int, x: Operand, per_vector: int) -> bool:
    """Whether matmul_mma.cl's WIDE_GATHER may read pass ``mode``'s tensor ``x``: unit
    stride along rows both in the tensor and from one output position to the next, rows
    of positions and rows of ``x`` of whole vectors of ``per_vector`` elements, and every
    row of ``x`` starting on a vector (its offset, image, channel and row strides)."""
    positions_w, width = (gather["G_IW"], gather["G_OW"]) if mode == 3 else (
        gather["G_OW"], gather["G_IW"])
    starts = (gather["G_S1"], gather["G_S2"], x.offset, *x.batch_strides)
    return (gather["G_SW"] == 1 and gather["G_S3"] == 1 and positions_w % per_vector == 0
            and width % per_vector == 0 and all(s % per_vector == 0 for s in starts))


def _conv_tile(compute_units: int, layout: str, m: int, n: int, count: int,
               element_bytes: int) -> MmaTile:
    """choose_mma_tile's tile, or the small one where half the big tile's rows or more
    would lie past M: a convolution's M is a channel count, often 64 against 128-row
    tiles, and rows past M cost as many mma.sync as rows inside (reasoned from the
    kernel, not yet timed)."""
    tile = choose_mma_tile(compute_units, layout, m, n, count, element_bytes)
    return MMA_SMALL_TILES[element_bytes, layout] if 2 * m <= tile.bm else tile


def _mma_conv(a_op: Operand, b_op: Operand, a: Tensor, x: Tensor, out: Tensor, mode: int,
              gather: tuple[tuple[str, int], ...], tile: MmaTile | None) -> None:
    """implicit_gemm on tensor cores, with conv_options' choices. The weight gradient
    (mode 2) sums its images in the kernel, a run of their K steps a work-group
    (SUM_IMAGES: whole images, or split at any step); more than one group, and their
    float32 slabs are then summed by ``sum`` over the slabs' axis (its reduction's
    order on this device, not group order): a fixed order either way."""
    device = a.device
    options = conv_options.current()
    count = x.shape[0]
    m, n = out.shape[-2:]
    k = a.shape[-1]
    if tile is None and mode == 2:
        tile = options.dw_tile
    if tile is None:
        # The weight gradient's tiles are chosen for one product: its groups follow.
        tile = _conv_tile(device.compute_units, "nt" if mode == 2 else "nn", m, n,
                          1 if mode == 2 else count, a.dtype.itemsize)
    mma_tile = tile
    wide = options.wide_gather and _reads_rows_whole(dict(gather), mode, b_op,
                                                      16 // a.dtype.itemsize)

    def launch(target: Tensor, group: int = 0) -> None:
        plan = _mma_plan(device, a_op, b_op, target.dtype, (count,), m, n, k, mma_tile,
                         gather, group, wide)
        run(device, plan, a.buffer, x.buffer, target.buffer)

    if mode != 2:
        launch(out)
        return
    tiles = -(-m // tile.bm) * -(-n // tile.bn)
    k_steps = -(-k // tile.bk)
    # A group's steps: a share of all steps, or of the images in whole steps each.
    step, parts = (1, count * k_steps) if options.dw_split_images else (k_steps, count)
    shares = weight_grad_groups(device.compute_units, tiles, parts, m * n * 4,
                                options.dw_per_unit)
    group = -(-parts // shares) * step
    groups = -(-(count * k_steps) // group)
    if groups == 1:
        launch(out, group)
        return
    slabs = Tensor(device.pool.allocate(groups * m * n * 4), (groups, m, n), dtypes.float32,
                   device)
    launch(slabs, group)
    with recorder.recording(None):  # a step of the convolution, not an op of its own
        copy_(out, sum_(slabs, (0,)))


def _images(t: Tensor, first: int, size: int) -> Tensor:
    """Images ``first`` to ``first + size`` of ``t`` (its leading axis), as a view."""
    return Tensor(t.buffer, (size, *t.shape[1:]), t.dtype, t.device, t.strides,
                  t.offset + first * t.strides[0])
