"""Matrix multiply: ``matmul(a, b)``, numpy's ``a @ b``, on matmul.cl's kernels.

This module turns numpy's rules (1-D operands, broadcast batches, any
strides) into one launch plan per problem (gemm.py: the CPU "panel" kernel or
the GPU "tiled" one), cached on the operands' shapes, strides, offsets and
dtypes (in the device's KernelCache.plans), so a training loop that repeats
its shapes pays for planning once.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from netcl.core.device import Device
from netcl.core.tensor import backends, dtypes
from netcl.core.tensor.autocast import to_low_precision
from netcl.core.tensor.dispatch import common_device, empty, record
from netcl.core.tensor.ops import gemm
from netcl.core.tensor.ops.elementwise import copy_, fill_
from netcl.core.tensor.ops.gemm import Operand, implicit_gemm
from netcl.core.tensor.ops.matmul_tiles import TILE_CONFIGS, MmaTile, TileConfig
from netcl.core.tensor.strides import broadcast_strides, collapse, merge
from netcl.core.tensor.tensor import Shape, Tensor, type_name

__all__ = ["TILE_CONFIGS", "MmaTile", "TileConfig", "implicit_gemm", "matmul", "matmul_with"]

class _Call(NamedTuple):
    """Everything one matmul call runs, given its operands' buffers."""

    out_shape: Shape  # the contiguous output allocated per call
    result_shape: Shape  # what is returned: out_shape less 1-D operands' axes
    plan: gemm.Plan | None  # None: K = 0, the output is zeros (or empty)
    materialize: tuple[Shape, Shape] | None  # copy a and b to these shapes first


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """The matrix product ``a @ b``, with numpy's rules.

    2-D @ 2-D is (M, K) @ (K, N) -> (M, N). Higher dimensions are batches of
    matrices, broadcast as numpy broadcasts: (..., M, K) @ (..., K, N) ->
    (broadcast(...), M, N). A 1-D ``a`` is a row vector and a 1-D ``b`` a column
    vector, their added dimension removed from the result (1-D @ 1-D is the
    dot product, a 0-d tensor). K = 0 gives zeros.

    Operands must be float32, float16 or bfloat16 and of one dtype; 16-bit floats
    accumulate in float32 and round once. On tensor cores (NVIDIA compute capability
    8.0 or more) fp16 runs there, and float32 too when TF32 is allowed
    (``backends.set_float32_matmul_precision("high")``: inputs rounded to
    10-bit mantissas, as in PyTorch); the summation order is fixed, so
    results are deterministic. Any strides are read as they are, without a
    copy. Raises ValueError when the inner dimensions or batch shapes do not
    match and TypeError for mixed or non-float dtypes, naming both operands.
    Inside ``netcl.amp.autocast`` both operands are cast to its dtype first.
    """
    a, b = to_low_precision(a, b)
    return matmul_with(a, b)


def matmul_with(a: Tensor, b: Tensor, kernel: str | None = None,
                tile: TileConfig | MmaTile | None = None, *,
                out_dtype: dtypes.DTypeLike | None = None) -> Tensor:
    """``matmul`` with the kernel forced: ``kernel`` "panel", "tiled" or "mma"
    (tensor cores; None: by device and dtype, gemm.default_family), ``tile``
    that kernel's shape (None: by size); for tests and benchmarks, which run
    several kernels on one device.

    ``out_dtype`` float32 keeps a product of 16-bit operands unrounded (their float32
    sums as they are): what torch's bf16 ``addmm`` adds its other term to before it
    rounds once. None: the operands' dtype.
    """
    if kernel not in (None, "panel", "tiled", "mma"):
        raise ValueError(
            f"matmul: kernel must be 'panel', 'tiled', 'mma' or None, got {kernel!r}")
    _check_operands(a, b)
    out_type = a.dtype if out_dtype is None else dtypes.as_dtype(out_dtype)
    if out_type not in (a.dtype, dtypes.float32):
        raise TypeError(f"matmul: out_dtype must be float32 or None (the operands' dtype, "
                        f"{a.dtype}), got {out_type}")
    device = common_device("matmul", [a, b])
    key = ("matmul", a.shape, a.strides, a.offset, a.dtype, b.shape, b.strides, b.offset,
           kernel, tile, backends.get_float32_matmul_precision(), out_type,
           gemm.emulates_tensor_cores(device.cl_device))
    call = device.kernels.plans.get(key)
    if call is None:
        call = device.kernels.remember(key, _plan(device, a, b, kernel, tile, out_type))
    out = empty(call.out_shape, out_type, device)
    if call.plan is not None:
        left, right = a, b
        if call.materialize is not None:
            left, right = (_materialize(t, shape) for t, shape in zip((a, b), call.materialize,
                                                                    strict=True))
        gemm.run(device, call.plan, left.buffer, right.buffer, out.buffer)
    elif out.size:
        fill_(out, 0)
    result = out if call.result_shape == call.out_shape else _view(out, call.result_shape, None)
    return record("matmul", [a, b], result)


def _plan(device: Device, a: Tensor, b: Tensor, kernel: str | None,
          tile: TileConfig | MmaTile | None, out_dtype: np.dtype[Any]) -> _Call:
    """What ``a @ b`` runs; raises the shape errors of ``matmul``."""
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
    out_shape = (*batch, m, n)
    result_shape = (*batch, *((m,) if a.ndim >= 2 else ()), *((n,) if b.ndim >= 2 else ()))
    if k == 0 or math.prod(out_shape) == 0:
        return _Call(out_shape, result_shape, None, None)
    plan, materialize = _product(device, a2, b2, batch, kernel, tile, out_dtype)
    return _Call(out_shape, result_shape, plan, materialize)


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
    if a.dtype not in dtypes.FLOATING:
        raise TypeError(
            f"matmul: supports float32, float16 and bfloat16, got {a.dtype} and {b.dtype}")


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
    return Tensor.fresh(t.buffer, shape, t.dtype, t.device, strides, t.offset)


def _product(device: Device, a: Tensor, b: Tensor, batch: Shape, kernel: str | None,
             tile: TileConfig | MmaTile | None, out_dtype: np.dtype[Any],
             ) -> tuple[gemm.Plan, tuple[Shape, Shape] | None]:
    """The plan of ``a @ b`` into a contiguous (batch, M, N), and the shapes to
    materialise the operands to first, if they must be."""
    m, k = a.shape[-2:]
    n = b.shape[-1]
    a_batch = broadcast_strides(a.shape[:-2], a.strides[:-2], batch)
    b_batch = broadcast_strides(b.shape[:-2], b.strides[:-2], batch)
    b_op = Operand(b.dtype, b.shape, b.offset, b.strides[-2], b.strides[-1], ())

    # (..., M, K) @ (K, N): when B does not vary over the batch and A's batch
    # rows lie evenly spaced (a contiguous activation, say), the batch is
    # just more rows of one 2-D product, which keeps the GPU busier.
    if all(s == 0 for s in b_batch):
        rows = merge((*batch, m), (*a_batch, a.strides[-2]))
        if rows is not None:
            total_rows, row_stride = rows
            a_op = Operand(a.dtype, a.shape, a.offset, row_stride, a.strides[-1], ())
            return gemm.product_plan(device, a_op, b_op, out_dtype, (), total_rows, n, k,
                                     kernel, tile), None

    # The output is contiguous, so its strides never stop a merge; they are
    # collapsed along so that the kernel's batch index z still addresses
    # output matrix z.
    out_strides = tuple(m * n * math.prod(batch[d + 1:]) for d in range(len(batch)))
    dims, (a_bs, b_bs, _) = collapse(batch, [a_batch, b_batch, out_strides])
    materialize = None
    if len(dims) > gemm.MAX_BATCH_DIMS:
        # Rare: broadcast patterns that do not collapse. Materialising both
        # operands over the whole batch makes every batch stride regular.
        materialize = (*batch, m, k), (*batch, k, n)
        dims = (math.prod(batch),)
        a_op = Operand(a.dtype, a.shape, 0, k, 1, (m * k,))
        b_op = Operand(b.dtype, b.shape, 0, n, 1, (k * n,))
    else:
        a_op = Operand(a.dtype, a.shape, a.offset, a.strides[-2], a.strides[-1], a_bs)
        b_op = b_op._replace(batch_strides=b_bs)
    plan = gemm.product_plan(device, a_op, b_op, out_dtype, dims, m, n, k, kernel, tile)
    return plan, materialize


def _materialize(t: Tensor, shape: Shape) -> Tensor:
    target = empty(shape, t.dtype, t.device)
    copy_(target, t)
    return target


