"""Matrix multiply: ``matmul(a, b)``, numpy's ``a @ b``, with two kernels in matmul.cl.

On a CPU device (PoCL) the "panel" kernel runs: B is packed into 16-wide
float panels and each work-item computes a 6x16 block of C in vector
registers, with no local memory. On a GPU the "tiled" kernel runs: a tile of C
per work-group, local-memory tiles of A and B double-buffered along K, a block
of C per work-item in registers. Both read their operands through strides, so
a transposed view (``x @ W.T``, ``a.T @ g`` in a backward pass) costs no copy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyopencl as cl
import pyopencl.cltypes as cltypes

from netcl.core.device import Device
from netcl.core.tensor import dtypes
from netcl.core.tensor.dispatch import common_device, empty, record
from netcl.core.tensor.launch import enqueue
from netcl.core.tensor.ops.elementwise import copy_, fill_
from netcl.core.tensor.ops.matmul_tiles import TILE_CONFIGS, TileConfig, choose_tile
from netcl.core.tensor.tensor import Shape, Tensor, type_name

__all__ = ["TILE_CONFIGS", "TileConfig", "implicit_gemm", "matmul", "matmul_with"]

KERNEL_FILE = Path(__file__).with_name("matmul.cl")
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


@dataclass(frozen=True)
class _Operand:
    """A batch of matrices as the kernels read it: element (i, j) of batch
    entry z at ``offset + batch_offset(z) + i * row_stride + j * col_stride``."""

    tensor: Tensor
    offset: int
    row_stride: int
    col_stride: int
    batch_strides: Shape


# A launch's scalar arguments: the int16 and the long8 of matmul.cl's PARAMS.
Params = tuple[tuple[int, ...], tuple[int, ...]]


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """The matrix product ``a @ b``, with numpy's rules.

    2-D @ 2-D is (M, K) @ (K, N) -> (M, N). Higher dimensions are batches of
    matrices, broadcast as numpy broadcasts: (..., M, K) @ (..., K, N) ->
    (broadcast(...), M, N). A 1-D ``a`` is a row vector and a 1-D ``b`` a column
    vector, their added dimension removed from the result (1-D @ 1-D is the
    dot product, a 0-d tensor). K = 0 gives zeros.

    Operands must be float32 or float16 and of one dtype; fp16 is accumulated
    in float32 and rounded once. Any strides are read as they are, without a
    copy. Raises ValueError when the inner dimensions or batch shapes do not
    match and TypeError for mixed or non-float dtypes, naming both operands.
    """
    return matmul_with(a, b)


def matmul_with(a: Tensor, b: Tensor, kernel: str | None = None,
                tile: TileConfig | None = None) -> Tensor:
    """``matmul`` with the kernel forced: ``kernel`` "panel" or "tiled"
    (None: by device type), ``tile`` the tiled kernel's shape (None: by size).

    For tests and benchmarks, which run both kernels on one device.
    """
    if kernel not in (None, "panel", "tiled"):
        raise ValueError(f"matmul: kernel must be 'panel', 'tiled' or None, got {kernel!r}")
    _check_operands(a, b)
    device = common_device("matmul", [a, b])
    a2 = a if a.ndim >= 2 else _view(a, (1, a.shape[0]), (0, a.strides[0]))
    b2 = b if b.ndim >= 2 else _view(b, (b.shape[0], 1), (b.strides[0], 0))
    m, k = a2.shape[-2:]
    k_b, n = b2.shape[-2:]
    if k != k_b:
        raise ValueError(
            f"matmul: inner dimensions differ: a has shape {a.shape} (K = {k}), "
            f"b has shape {b.shape} (K = {k_b})"
        )
    batch = _broadcast_batch(a, b, a2.shape[:-2], b2.shape[:-2])

    out = empty((*batch, m, n), a.dtype, device)
    if out.size and k == 0:
        fill_(out, 0)
    elif out.size:
        _multiply(device, a2, b2, out, batch, kernel, tile)

    shape = (*batch, *((m,) if a.ndim >= 2 else ()), *((n,) if b.ndim >= 2 else ()))
    result = out if shape == out.shape else _view(out, shape, None)
    return record("matmul", [a, b], result)


def _check_operands(a: Tensor, b: Tensor) -> None:
    for x in (a, b):
        if not isinstance(x, Tensor):
            raise TypeError(
                f"matmul: operands must be netcl Tensors, got {type_name(x)}; convert with "
                "netcl.core.tensor.tensor(...)"
            )
    for x in (a, b):
        if x.ndim == 0:
            raise ValueError(
                f"matmul: operands must have at least one dimension, got shapes "
                f"{a.shape} and {b.shape}"
            )
    if a.dtype != b.dtype:
        raise TypeError(
            f"matmul: operands have different dtypes, {a.dtype} and {b.dtype}; "
            "cast one first (matmul does not promote)"
        )
    if a.dtype not in (dtypes.float32, dtypes.float16):
        raise TypeError(f"matmul: supports float32 and float16, got {a.dtype} and {b.dtype}")


def _broadcast_batch(a: Tensor, b: Tensor, a_batch: Shape, b_batch: Shape) -> Shape:
    if a_batch == b_batch or not b_batch:
        return a_batch  # the common cases, without numpy's few microseconds
    if not a_batch:
        return b_batch
    try:
        return tuple(np.broadcast_shapes(a_batch, b_batch))
    except ValueError:
        raise ValueError(
            f"matmul: batch dimensions of shapes {a.shape} and {b.shape} cannot be broadcast"
        ) from None


def _view(t: Tensor, shape: Shape, strides: Shape | None) -> Tensor:
    return Tensor(t.buffer, shape, t.dtype, t.device, strides, t.offset)


def _multiply(device: Device, a: Tensor, b: Tensor, out: Tensor, batch: Shape,
              kernel: str | None, tile: TileConfig | None) -> None:
    """Enqueue ``out = a @ b`` for ``out`` contiguous of shape batch + (M, N)."""
    m, k = a.shape[-2:]
    n = b.shape[-1]
    a_batch = _broadcast_batch_strides(a, batch)
    b_batch = _broadcast_batch_strides(b, batch)

    # (..., M, K) @ (K, N): when B does not vary over the batch and A's batch
    # rows lie evenly spaced (a contiguous activation, say), the batch is
    # just more rows of one 2-D product, which keeps the GPU busier.
    if all(s == 0 for s in b_batch):
        rows = _merge([*batch, m], [*a_batch, a.strides[-2]])
        if rows is not None:
            total_rows, row_stride = rows
            a_op = _Operand(a, a.offset, row_stride, a.strides[-1], ())
            b_op = _Operand(b, b.offset, b.strides[-2], b.strides[-1], ())
            _launch(device, a_op, b_op, out, (), total_rows, n, k, kernel, tile)
            return

    # The output is contiguous, so its strides never stop a merge; they are
    # collapsed along so that the kernel's batch index z still addresses
    # output matrix z.
    dims, (a_bs, b_bs, _) = _collapse(batch, [a_batch, b_batch, out.strides[:-2]])
    if len(dims) > MAX_BATCH_DIMS:
        # Rare: broadcast patterns that do not collapse. Materialising both
        # operands over the whole batch makes every batch stride regular.
        a = _materialize(a, (*batch, m, k))
        b = _materialize(b, (*batch, k, n))
        dims = (math.prod(batch),)
        a_bs, b_bs = (m * k,), (k * n,)
    a_op = _Operand(a, a.offset, a.strides[-2], a.strides[-1], a_bs)
    b_op = _Operand(b, b.offset, b.strides[-2], b.strides[-1], b_bs)
    _launch(device, a_op, b_op, out, dims, m, n, k, kernel, tile)


def _broadcast_batch_strides(t: Tensor, batch: Shape) -> Shape:
    """``t``'s batch strides seen from ``batch``: 0 along broadcast dimensions."""
    own = t.shape[:-2]
    lead = len(batch) - len(own)
    return (0,) * lead + tuple(
        0 if size == 1 else stride
        for size, stride in zip(own, t.strides[:-2], strict=True)
    )


def _merge(shape: Sequence[int], strides: Sequence[int]) -> tuple[int, int] | None:
    """(size, stride) of one dimension walking all of ``shape`` evenly, if there is one."""
    kept = [(size, stride) for size, stride in zip(shape, strides, strict=True) if size != 1]
    if not kept:
        return math.prod(shape), 0
    size, stride = kept[-1]
    for outer_size, outer_stride in reversed(kept[:-1]):
        if outer_stride != stride * size:
            return None
        size *= outer_size
    return size, stride


def _collapse(shape: Shape, all_strides: list[Shape]) -> tuple[Shape, list[Shape]]:
    """Drop size-1 batch dimensions and merge neighbours every operand walks evenly."""
    keep = [d for d in range(len(shape)) if shape[d] != 1]
    dims = [shape[d] for d in keep]
    strides = [[s[d] for d in keep] for s in all_strides]
    for d in range(len(dims) - 1, 0, -1):
        if all(s[d - 1] == s[d] * dims[d] for s in strides):
            dims[d - 1] *= dims[d]
            del dims[d]
            for s in strides:
                s[d - 1] = s[d]
                del s[d]
    return tuple(dims), [tuple(s) for s in strides]


def _materialize(t: Tensor, shape: Shape) -> Tensor:
    target = empty(shape, t.dtype, t.device)
    copy_(target, t)
    return target


class _Variant(NamedTuple):
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
    c_vec: bool = False  # tiled: C rows are stored as float4s
    tile: TileConfig | None = None
    split: bool = False  # tiled: batch entry z is K chunk z
    gather: tuple[tuple[str, int], ...] = ()  # tiled: B is a convolution's input (G_* defines)
    sliced: bool = False  # the batch runs in slices (see _slices)

    def defines(self) -> dict[str, str | int]:
        defines: dict[str, str | int] = {
            "A_T": dtypes.STORAGE_C_TYPE[self.a_dtype],
            "B_T": dtypes.STORAGE_C_TYPE[self.b_dtype],
            "C_T": dtypes.STORAGE_C_TYPE[self.c_dtype],
            "LOAD_A(p, i)": _load(self.a_dtype),
            "LOAD_B(p, i)": _load(self.b_dtype),
            "STORE_C(p, i, v)": _store(self.c_dtype),
            "PANEL": int(self.family == "panel"),
            "BATCH_SLICED": int(self.sliced),
        }
        if self.family == "panel":
            defines["A_PACKED"] = int(self.a_packed)
            defines["VECTOR_STORE"] = int(self.c_dtype == dtypes.float32)
        else:
            assert self.tile is not None
            tile = self.tile
            defines.update(BM=tile.bm, BN=tile.bn, BK=tile.bk, TM=tile.tm, TN=tile.tn,
                           A_K_MAJOR=int(self.a_k_major), B_K_MAJOR=int(self.b_k_major),
                           A_VEC=int(self.a_vec), B_VEC=int(self.b_vec),
                           C_VEC=int(self.c_vec), SPLIT_K=int(self.split))
            defines.update(self.gather or (("B_GATHER", 0),))
        return defines


def _load(dtype: np.dtype[Any]) -> str:
    return "vload_half((i), (p))" if dtype == dtypes.float16 else "(p)[i]"


def _store(dtype: np.dtype[Any]) -> str:
    return "vstore_half((v), (i), (p))" if dtype == dtypes.float16 else "(p)[i] = (v)"


def _kernel(device: Device, name: str, variant: _Variant) -> cl.Kernel:
    """Kernel ``name`` of matmul.cl built for ``variant`` (the cache's key)."""
    return device.kernels.kernel(KERNEL_FILE, name, variant)


def _run(device: Device, kernel: cl.Kernel, global_size: tuple[int, int, int],
         local_size: tuple[int, int, int] | None, ints: tuple[int, ...],
         longs: tuple[int, ...], *buffers: Any) -> None:
    """Enqueue ``kernel(int16 ints, long8 longs, *buffers)``."""
    params = (np.array(ints, dtype=cltypes.int16).tobytes(),
              np.array(longs, dtype=cltypes.long8).tobytes())
    enqueue(device, kernel, global_size, local_size, (*params, *buffers))


def _params(a: _Operand, b: _Operand, m: int, n: int, k: int, dims: Shape,
            chunk: int = 0, splits: int = 0) -> Params:
    """The int16 and long8 every kernel takes (UNPACK_PARAMS in matmul.cl)."""
    for op, rows, cols in ((a, m, k), (b, k, n)):
        reach = (rows - 1) * abs(op.row_stride) + (cols - 1) * abs(op.col_stride)
        if reach > INT32_MAX:
            raise ValueError(
                f"matmul: one matrix of shape {op.tensor.shape} spans {reach} elements; "
                f"the kernels index a single matrix with 32-bit offsets (at most {INT32_MAX})"
            )
    if m * n > INT32_MAX:
        raise ValueError(f"matmul: an output matrix of {m} x {n} exceeds 32-bit offsets")
    pad = MAX_BATCH_DIMS - len(dims)
    batch_shape = (*((1,) * pad), *dims)
    a_bs = (*((0,) * pad), *a.batch_strides)
    b_bs = (*((0,) * pad), *b.batch_strides)
    # Index 10 is the first batch entry of a slice (_slices fills it in),
    # 11 the depth of one split-K chunk and 12 the number of chunks.
    ints = (m, n, k, a.row_stride, a.col_stride, b.row_stride, b.col_stride, *batch_shape, 0,
            chunk, splits)
    return (*ints, *((0,) * (16 - len(ints)))), (a.offset, *a_bs, b.offset, *b_bs)


def _slices(count: int, params: Params) -> list[tuple[int, Params]]:
    """(entries, params) for each slice of at most MAX_BATCH_SLICE batch entries."""
    ints, longs = params
    return [
        (min(MAX_BATCH_SLICE, count - first), ((*ints[:10], first, *ints[11:]), longs))
        for first in range(0, count, MAX_BATCH_SLICE)
    ]


def _launch(device: Device, a: _Operand, b: _Operand, out: Tensor, dims: Shape,
            m: int, n: int, k: int, kernel: str | None, tile: TileConfig | None) -> None:
    count = math.prod(dims)
    if (kernel or ("panel" if device.type == "cpu" else "tiled")) == "panel":
        params = _params(a, b, m, n, k, dims)
        _launch_panel(device, a, b, out, m, n, k, count, params)
        return
    a_k_major = a.col_stride == 1
    b_k_major = b.row_stride == 1 and b.col_stride != 1
    if tile is None:
        layout = ("n" if a_k_major else "t") + ("t" if b_k_major else "n")
        tile = choose_tile(device.name, device.compute_units, layout, m, n, k, count)
    _launch_tiled(device, a, b, out, m, n, k, dims, tile, a_k_major, b_k_major)


def _launch_panel(device: Device, a: _Operand, b: _Operand, out: Tensor, m: int, n: int,
                  k: int, count: int, params: Params) -> None:
    # A is read in place only when it is float32 with unit stride along K;
    # otherwise pack_a first (see matmul.cl for the measurements).
    a_packed = not (a.tensor.dtype == dtypes.float32 and a.col_stride == 1)
    variant = _Variant("panel", a.tensor.dtype, b.tensor.dtype, out.dtype, a_packed=a_packed,
                       sliced=count > MAX_BATCH_SLICE)
    panels = -(-n // PANEL_COLS)
    blocks = -(-m // PANEL_ROWS)
    # Spread the row blocks evenly over as few work-groups as PANEL_GROUP allows.
    group = -(-blocks // -(-blocks // PANEL_GROUP))
    a_buffer = a.tensor.buffer
    if a_packed:
        a_buffer = device.pool.allocate(count * blocks * k * PANEL_ROWS * 4)
    packed_b = device.pool.allocate(count * panels * k * PANEL_COLS * 4)
    for entries, sliced in _slices(count, params):
        if a_packed:
            _run(device, _kernel(device, "pack_a", variant), (k, blocks, entries), None,
                 *sliced, a.tensor.buffer, a_buffer)
        _run(device, _kernel(device, "pack_b", variant), (k, panels, entries), None, *sliced,
             b.tensor.buffer, packed_b)
        _run(device, _kernel(device, "matmul_panel", variant),
             (panels, -(-blocks // group) * group, entries), (1, group, 1), *sliced,
             a_buffer, packed_b, out.buffer)


def _float4_slots(op: _Operand, k_major: bool) -> bool:
    """Whether the tiled kernel may read ``op``'s load slots as aligned float4s:
    float32, unit stride along the slot, everything else a multiple of 4."""
    unit, other = (op.col_stride, op.row_stride) if k_major else (op.row_stride, op.col_stride)
    return (op.tensor.dtype == dtypes.float32 and unit == 1
            and all(s % 4 == 0 for s in (other, op.offset, *op.batch_strides)))


def _launch_tiled(device: Device, a: _Operand, b: _Operand, out: Tensor, m: int, n: int,
                  k: int, dims: Shape, tile: TileConfig, a_k_major: bool, b_k_major: bool,
                  gather: tuple[tuple[str, int], ...] = ()) -> tuple[_Variant, Params]:
    """``out[z] = A[z] @ B[z]`` by the tiled kernel; with ``gather``, B is a
    convolution's input read in place (see implicit_gemm). Returns the build
    and the scalars it ran with."""
    count = math.prod(dims)
    # Split K only for a single product (the kernel's z then counts chunks)
    # and into chunks of whole BK steps.
    splits = tile.split_k if count == 1 and not gather else 1
    per_split = -(-k // splits)
    chunk = -(-per_split // tile.bk) * tile.bk
    splits = max(1, -(-k // chunk))
    split = splits > 1
    target = out
    if split:
        target = Tensor(device.pool.allocate(splits * m * n * 4), (splits, m, n),
                        dtypes.float32, device)
    variant = _Variant(
        "tiled", a.tensor.dtype, b.tensor.dtype, target.dtype,
        a_k_major=a_k_major, b_k_major=b_k_major,
        a_vec=_float4_slots(a, a_k_major),
        b_vec=not gather and _float4_slots(b, not b_k_major),
        c_vec=target.dtype == dtypes.float32 and n % 4 == 0,
        tile=tile, split=split, gather=gather,
        sliced=count > MAX_BATCH_SLICE,
    )
    kernel = _kernel(device, "matmul_tiled", variant)
    local = tile.local_size
    params = _params(a, b, m, n, k, dims, chunk, splits)
    for entries, sliced in _slices(splits if split else count, params):
        grid = (-(-n // tile.bn) * local[0], -(-m // tile.bm) * local[1], entries)
        _run(device, kernel, grid, local, *sliced, a.tensor.buffer, b.tensor.buffer,
             target.buffer)
    if split:
        _sum_slabs(device, variant, target, out, params)
    return variant, params


def _sum_slabs(device: Device, variant: _Variant, slabs: Tensor, out: Tensor,
               params: Params) -> None:
    """``out = slabs.sum(0)`` for float32 ``slabs`` (count, M, N), in slab order:
    the ``sum_splits`` kernel of the build that wrote them (for a float32 ``out``)."""
    ints, longs = params
    count, m, n = slabs.shape
    ints = (*ints[:12], count, *ints[13:])
    local = 256
    kernel = _kernel(device, "sum_splits", variant._replace(c_dtype=out.dtype))
    _run(device, kernel, (-(-(m * n) // local) * local, 1, 1), (local, 1, 1), ints, longs,
         slabs.buffer, out.buffer)


def implicit_gemm(a: Tensor, x: Tensor, out: Tensor, mode: int,
                  geometry: dict[str, int], tile: TileConfig | None = None) -> None:
    """One convolution pass as a GEMM whose B operand is read in place from the NCHW ``x``.

    For every image z of ``x``: ``a[z] @ B[z]`` (``a`` is (M, K), or (N, M, K):
    one matrix per image) where B[z] is image z of ``x`` seen as the
    convolution's columns. Mode 1: the unfolded input (K = C*KH*KW, columns
    OH*OW); mode 3: the input gradient's view of the output gradient; both
    write ``out`` (N, M, columns). Mode 2: the unfolded input transposed (the
    weight gradient's B, K = OH*OW), summed over images into ``out`` (M, columns).
    ``geometry`` holds matmul.cl's G_* values without the prefix.
    """
    device = common_device("conv2d", [a, x, out])
    count = x.shape[0]
    m, n_cols = out.shape[-2:]
    k = a.shape[-1]
    if k == 0:  # no input channels
        fill_(out, 0)
        return
    a_bs = (a.strides[0],) if a.ndim == 3 else (0,)
    a_op = _Operand(a, a.offset, a.strides[-2], a.strides[-1], a_bs)
    b_op = _Operand(x, x.offset, 0, 0, (x.strides[0],))
    if tile is None:
        tile = choose_tile(device.name, device.compute_units, f"conv{mode}", m, n_cols, k,
                           count)
    gather = (("B_GATHER", mode), *((f"G_{key}", value) for key, value in geometry.items()))
    slabs = out if mode != 2 else Tensor(
        device.pool.allocate(count * m * n_cols * 4), (count, m, n_cols), dtypes.float32, device)
    # Mode 2's K runs along the image's columns: consecutive work-items walk K.
    variant, params = _launch_tiled(device, a_op, b_op, slabs, m, n_cols, k, (count,), tile,
                                    a.strides[-1] == 1, mode == 2, tuple(sorted(gather)))
    if mode == 2:
        _sum_slabs(device, variant, slabs, out, params)
