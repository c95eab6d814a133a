"""Reductions: sum, mean, max, min, argmax, argmin, logsumexp over any axes (reduce.cl)."""

from __future__ import annotations

import builtins
import math
import operator
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyopencl as cl

from netcl.core.device import Device
from netcl.core.tensor import dtypes
from netcl.core.tensor.dispatch import record
from netcl.core.tensor.launch import current_observer, enqueue_prepared, launch_size, pack_int32
from netcl.core.tensor.launch_info import Operand, ReductionLaunch
from netcl.core.tensor.ops.elementwise import elementwise
from netcl.core.tensor.strides import contiguous_strides
from netcl.core.tensor.tensor import Shape, Tensor

# This module defines sum, max and min; the builtins are reached as builtins.*.
KERNEL_FILE = Path(__file__).with_name("reduce.cl")
KERNEL_SOURCES = (dtypes.BFLOAT16_CL, KERNEL_FILE)
Axis = int | Sequence[int] | None

# reduce_rows's work-group size (work-items per row times rows side by side):
# enough to fill a GPU's compute unit, and the static size of the kernel's local
# buffers. A row gets the fewest work-items (a power of two, so the local-memory
# tree halves evenly) that leave each at most ROW_SERIAL elements, and a group
# takes as many rows as fit. (At 16 work-items a row and one row a group,
# reduce_rows averaged 93 us a launch in the jitted GPT 6 step on the H200, its
# rows mostly 8192 of 512: far below memory bandwidth. A CPU never runs
# reduce_rows: it reads rows and columns by reduce_strips and reduce_cols8.)
GROUP = 256
ROW_SERIAL = 4
# Groups launched at most; past that each group walks several rows, so a
# huge row count is still one launch of bounded size.
MAX_GROUPS = 16384
# reduce_cols (a sum over leading axes, read in place): work-groups of
# COLS_WIDTH columns (a warp's worth of consecutive floats per row) and up to
# COLS_DEPTH work-items down each column, each group over a segment of at most
# COLS_SEGMENT rows; more than one segment and a second launch sums the
# segments' partial sums.
COLS_WIDTH = 32
COLS_DEPTH = 32
COLS_SEGMENT = 512
# reduce_rows on a GPU, for a sum whose rows alone would fill fewer groups than the
# device has compute units (a full sum: one group of GROUP work-items reading every
# element, as netcl-optim's Adafactor and Muon norms of 20M-element matrices did):
# each row in parts of ROW_SEGMENT elements (64 a work-item of a full group), one group
# a part, and a second launch adding the parts. Not yet timed on a GPU.
ROW_SEGMENT = GROUP * 64

_MODES = {"sum": 0, "extremum": 1, "arg": 2, "lse": 3}
_LOWEST = {"float": "(-INFINITY)", "int": "INT_MIN", "long": "LONG_MIN"}
_HIGHEST = {"float": "INFINITY", "int": "INT_MAX", "long": "LONG_MAX"}


def normalize_axes(op: str, shape: Shape, axis: Axis) -> tuple[int, ...]:
    """``axis`` as a sorted tuple of distinct non-negative axes (None: all of them)."""
    ndim = len(shape)
    if axis is None:
        return tuple(range(ndim))
    items = (axis,) if isinstance(axis, int) else tuple(axis)
    normalized: list[int] = []
    for item in items:
        ax = operator.index(item)
        if not -ndim <= ax < ndim:
            raise IndexError(
                f"{op}: axis {ax} is out of range for shape {shape} ({ndim} dimensions)"
            )
        ax %= ndim
        if ax in normalized:
            raise ValueError(f"{op}: axis {ax} appears twice in axis={axis!r}")
        normalized.append(ax)
    return tuple(sorted(normalized))


def _load(dtype: np.dtype[Any], acc: str) -> str:
    return f"(({acc}){dtypes.cl_load(dtype, 'in', '(i)')})"


def _row_shape(row_len: int, max_work_group: int) -> tuple[int, int]:
    """reduce_rows's work-group: (work-items per row, rows side by side)."""
    group = GROUP
    # A device with smaller work-groups still gets a power of two that fits.
    while group > max_work_group:
        group //= 2
    per_row = 1
    while per_row < group and per_row * ROW_SERIAL < row_len:
        per_row *= 2
    return per_row, group // per_row


def _for_cpu(device: Device) -> bool:
    """Whether ``device`` gets the CPU's kernels (reduce_strips, reduce_cols8)."""
    return bool(device.type == "cpu")


class _Stage(NamedTuple):
    """reduce_cols's second launch: the sum of the first's [segments, cols] partial sums."""

    kernel: cl.Kernel
    global_size: tuple[int, ...]
    local_size: tuple[int, ...]
    values: tuple[Any, ...]
    dtype: np.dtype[Any]  # the partial sums' (the accumulator's)
    partials: int  # how many


class _Plan(NamedTuple):
    """What a reduction of one shape, strides and dtype over the same axes needs, planned once."""

    axes: tuple[int, ...]
    rows_shape: Shape  # the input's shape with the reduced axes innermost
    rows_strides: Shape
    # The kernel reads the input as it is: rows (that view is contiguous) or columns
    # (reduce_cols); else it reads a copy of that view.
    in_place: bool
    out_shape: Shape
    out_strides: Shape
    nbytes: int
    kernel: cl.Kernel | None  # None: no rows, nothing to launch
    global_size: tuple[int, ...]
    local_size: tuple[int, ...]
    values: tuple[Any, ...]  # (index, bytes) pairs of rows, row_len, out_offset, scale
    # What a launch observer is told: the kernel's defines, elements read, their C type.
    defines: dict[str, str | int]
    elements: int
    load_type: str
    second: _Stage | None = None


def _reduce(
    op: str,
    a: Tensor,
    axis: Axis,
    keepdims: bool,
    mode: str,
    acc: str,
    out_dtype: np.dtype[Any],
    beats: str = ">",
    finish: str = "(x)",
) -> tuple[Tensor, tuple[int, ...]]:
    device = a.device
    key = ("reduce", mode, acc, out_dtype, beats, finish, a.shape, a.strides, a.dtype,
           axis if axis is None or isinstance(axis, int) else tuple(axis), keepdims)
    plan: _Plan | None = device.kernels.plans.get(key)
    if plan is None:
        plan = device.kernels.remember(
            key, _plan(op, a, axis, keepdims, mode, acc, out_dtype, beats, finish)
        )
    out = Tensor.fresh(device.pool.allocate(plan.nbytes), plan.out_shape, out_dtype, device,
                       plan.out_strides)
    if plan.kernel is None:
        return out, plan.axes
    if plan.in_place:
        source = a
    else:
        # The copy is not recorded: the reduction's own record is what autograd
        # differentiates.
        view = Tensor.fresh(a.buffer, plan.rows_shape, a.dtype, device, plan.rows_strides,
                            a.offset)
        source = elementwise("copy", "a", [view])
    second = plan.second
    target = out
    if second is not None:
        target = Tensor.fresh(device.pool.allocate(second.partials * second.dtype.itemsize),
                              (second.partials,), second.dtype, device)
    # reduce_rows(rows, row_len, in, in_offset, out, out_offset, scale)
    buffers = (2, source.buffer, 4, target.buffer)
    values = (*plan.values, 3, pack_int32(source.offset))
    about = None
    if current_observer() is not None:  # a capture may compute the input inside (a prologue)
        operand = Operand(source.buffer, source.offset, (), source.dtype)
        about = ReductionLaunch(KERNEL_FILE, plan.defines, 2, operand, plan.elements,
                                plan.load_type)
    enqueue_prepared(device, plan.kernel, plan.global_size, plan.local_size, buffers, values,
                     None, about)
    if second is not None:
        enqueue_prepared(device, second.kernel, second.global_size, second.local_size,
                         (2, target.buffer, 4, out.buffer), second.values)
    return out, plan.axes


def _plan(
    op: str,
    a: Tensor,
    axis: Axis,
    keepdims: bool,
    mode: str,
    acc: str,
    out_dtype: np.dtype[Any],
    beats: str,
    finish: str,
) -> _Plan:
    axes = normalize_axes(op, a.shape, axis)
    kept = [d for d in range(a.ndim) if d not in axes]
    rows = math.prod(a.shape[d] for d in kept)
    row_len = math.prod(a.shape[d] for d in axes)
    if row_len == 0 and mode in ("extremum", "arg"):
        raise ValueError(
            f"{op}: cannot reduce shape {a.shape} over axes {axes}: they hold no elements "
            "and this reduction has no identity"
        )
    if keepdims:
        out_shape = tuple(1 if d in axes else size for d, size in enumerate(a.shape))
    else:
        out_shape = tuple(a.shape[d] for d in kept)
    order = [*kept, *axes]
    rows_shape = tuple(a.shape[d] for d in order)
    rows_strides = tuple(a.strides[d] for d in order)
    in_place = Tensor.fresh(a.buffer, rows_shape, a.dtype, a.device, rows_strides).is_contiguous
    device = a.device
    depth = builtins.min(COLS_DEPTH, device.max_work_group_size // COLS_WIDTH)
    columns = mode == "sum" and not in_place and rows >= COLS_WIDTH and _leads(a, axes)
    is_float = acc == "float"
    extremes = _LOWEST if beats == ">" else _HIGHEST
    defines: dict[str, str | int] = {
        "MODE": _MODES[mode],
        "IN_T": dtypes.STORAGE_C_TYPE[a.dtype],
        "ACC_T": acc,
        "LOAD(i)": _load(a.dtype, acc),
        "KAHAN": int(is_float),
        "BEATS(v, b)": f"((v) {beats} (b))",
        "IDENTITY": extremes[acc],
        "IS_NAN(x)": "isnan(x)" if is_float else "0",
        "FINISH(x)": finish,
        "OUT_T": dtypes.STORAGE_C_TYPE[out_dtype],
        "STORE(idx, v)": dtypes.cl_store(out_dtype, "out", "(idx)", "v"),
        "GROUP": GROUP,
        "COLS_WIDTH": COLS_WIDTH,
        "COLS_DEPTH": depth,
    }
    values: tuple[Any, ...] = ()
    launched_rows = rows  # rows the first launch reduces (more where rows are cut in parts)
    global_size: tuple[int, ...]
    local_size: tuple[int, ...]
    strips = _strips(a, axes, in_place, rows, row_len) if _for_cpu(device) else None
    second: _Stage | None = None
    if strips is not None:
        # CPUs: one work-item per output (8 outputs for a float column sum), no barriers.
        outer, kept_len, inner = strips
        defines["STRIPS"] = 1
        cols8 = inner == 1 and outer > 1 and mode == "sum" and is_float
        name = "reduce_cols8" if cols8 else "reduce_strips"
        items = -(-kept_len // 8) if cols8 else kept_len
        local = 8 if items >= 16 else 1
        global_size, local_size = (launch_size(items, local),), (local,)
        values = () if cols8 else (7, pack_int32(inner))
        in_place = in_place or outer > 1
    elif columns:
        name = "reduce_cols"
        segments = builtins.max(1, -(-row_len // COLS_SEGMENT))
        global_size = (launch_size(rows, COLS_WIDTH), depth * segments)
        local_size = (COLS_WIDTH, depth)
        values = (7, pack_int32(COLS_SEGMENT))
        if segments > 1:
            second = _second_stage(device, defines, rows, segments, row_len, local_size)
            defines = _partial_output(defines, second.dtype)
    else:
        name = "reduce_rows"
        per_row, stack = _row_shape(row_len, device.max_work_group_size)
        segments = 1
        if mode == "sum" and row_len > ROW_SEGMENT and -(-rows // stack) < device.compute_units:
            # Whole rows would leave most compute units idle (a full sum was one group):
            # each row is summed in parts, one group a part, and a second launch adds them.
            segments = -(-row_len // ROW_SEGMENT)
            per_row, stack = _row_shape(ROW_SEGMENT, device.max_work_group_size)
            defines["SEGMENTS"], defines["SEGMENT"] = segments, ROW_SEGMENT
            second = _rows_second_stage(device, defines, rows, segments, row_len)
            defines = _partial_output(defines, second.dtype)
        groups = builtins.min(-(-rows * segments // stack), MAX_GROUPS)
        global_size, local_size = (groups * per_row, stack), (per_row, stack)
        launched_rows = rows * segments
    scale = 1.0 / row_len if row_len else math.nan
    return _Plan(
        axes=axes,
        rows_shape=rows_shape,
        rows_strides=rows_strides,
        in_place=in_place or columns,
        out_shape=out_shape,
        out_strides=contiguous_strides(out_shape),
        nbytes=rows * out_dtype.itemsize,
        kernel=device.kernels.kernel(KERNEL_SOURCES, name, defines) if rows else None,
        global_size=global_size,
        local_size=local_size,
        values=(0, pack_int32(launched_rows), 1, pack_int32(row_len), 5, pack_int32(0),
                6, np.float32(scale).tobytes(), *values),
        defines=defines,
        elements=rows * row_len,
        load_type=acc,
        second=second,
    )


def _partial_output(defines: dict[str, str | int], partial: np.dtype[Any]
                    ) -> dict[str, str | int]:
    """A first launch's ``defines`` storing its partial sums as they are, in ``partial``."""
    return {**defines, "OUT_T": dtypes.STORAGE_C_TYPE[partial], "FINISH(x)": "(x)",
            "STORE(idx, v)": dtypes.cl_store(partial, "out", "(idx)", "v")}


def _partial_input(defines: dict[str, str | int]) -> tuple[np.dtype[Any], dict[str, str | int]]:
    """The partial sums' dtype (the accumulator's), and ``defines`` reading them."""
    partial = dtypes.float32 if defines["ACC_T"] == "float" else dtypes.int64
    return partial, {**defines, "IN_T": dtypes.STORAGE_C_TYPE[partial],
                     "LOAD(i)": _load(partial, str(defines["ACC_T"]))}


def _rows_second_stage(device: Device, defines: dict[str, str | int], rows: int,
                       segments: int, row_len: int) -> _Stage:
    """reduce_rows over the [rows, segments] partial sums of rows of ``row_len``."""
    partial, own = _partial_input({k: v for k, v in defines.items()
                                   if k not in ("SEGMENTS", "SEGMENT")})
    per_row, stack = _row_shape(segments, device.max_work_group_size)
    groups = builtins.min(-(-rows // stack), MAX_GROUPS)
    return _Stage(
        kernel=device.kernels.kernel(KERNEL_SOURCES, "reduce_rows", own),
        global_size=(groups * per_row, stack),
        local_size=(per_row, stack),
        values=(0, pack_int32(rows), 1, pack_int32(segments), 3, pack_int32(0),
                5, pack_int32(0), 6, np.float32(1.0 / row_len).tobytes()),
        dtype=partial,
        partials=rows * segments,
    )


def _second_stage(
    device: Device, defines: dict[str, str | int], cols: int, segments: int, row_len: int,
    local_size: tuple[int, ...],
) -> _Stage:
    """reduce_cols over the [segments, cols] partial sums (in the accumulator's type) that
    its first launch, ``defines`` but for its output, stores."""
    partial, own = _partial_input(defines)
    return _Stage(
        kernel=device.kernels.kernel(KERNEL_SOURCES, "reduce_cols", own),
        global_size=(launch_size(cols, COLS_WIDTH), local_size[1]),
        local_size=local_size,
        values=(0, pack_int32(cols), 1, pack_int32(segments), 3, pack_int32(0),
                5, pack_int32(0), 6, np.float32(1.0 / row_len).tobytes(),
                7, pack_int32(segments)),
        dtype=partial,
        partials=segments * cols,
    )


def _strips(
    a: Tensor, axes: tuple[int, ...], in_place: bool, rows: int, row_len: int
) -> tuple[int, int, int]:
    """``a`` read as [outer, kept, inner] with the reduced axes outer and inner, for
    reduce.cl's CPU kernels: in place where ``a`` is contiguous and the kept axes lie
    between a prefix and a suffix of reduced ones (BatchNorm's (N, C, H, W) over 0, 2, 3),
    else (1, rows, row_len) of the rows view (copied first where not ``in_place``)."""
    if in_place or not a.is_contiguous:
        return 1, rows, row_len
    lead = 0
    while lead in axes:
        lead += 1
    trail = a.ndim
    while trail - 1 in axes and trail - 1 >= lead:
        trail -= 1
    if len(axes) != lead + a.ndim - trail:  # a reduced axis between kept ones
        return 1, rows, row_len
    outer = math.prod(a.shape[:lead])
    return outer, math.prod(a.shape[lead:trail]), math.prod(a.shape[trail:])


def _leads(a: Tensor, axes: tuple[int, ...]) -> bool:
    """Whether ``a`` is contiguous with ``axes`` (a sorted tuple) its leading axes: read
    in place as [reduced elements, kept elements], the layout reduce_cols sums."""
    return axes == tuple(range(len(axes))) and a.is_contiguous


def _sum_acc(dtype: np.dtype[Any]) -> str:
    # Integers and bools sum in 64 bits, so an int32 sum does not wrap.
    return "float" if dtypes.is_floating(dtype) else "long"


def sum(a: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Sum over ``axis`` (an int, a tuple of ints, or None for all).

    Floats accumulate in float32 (Kahan within a work-item, a tree across
    work-items) and keep their dtype; ints and bools sum to int64 as in numpy.
    An empty reduction is 0.
    """
    out_dtype = a.dtype if dtypes.is_floating(a.dtype) else dtypes.int64
    out, axes = _reduce("sum", a, axis, keepdims, "sum", _sum_acc(a.dtype), out_dtype)
    return record("sum", [a], out, axis=axes, keepdims=keepdims)


def mean(a: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Arithmetic mean over ``axis``; ints and bools give float32, an empty mean NaN."""
    out_dtype = a.dtype if dtypes.is_floating(a.dtype) else dtypes.float32
    out, axes = _reduce(
        "mean", a, axis, keepdims, "sum", _sum_acc(a.dtype), out_dtype, finish="((x) * scale)"
    )
    return record("mean", [a], out, axis=axes, keepdims=keepdims)


def _compute_acc(dtype: np.dtype[Any]) -> str:
    return dtypes.COMPUTE_C_TYPE[dtype]


def max(a: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Largest element over ``axis``, NaN if any is NaN; ValueError on an empty reduction."""
    out, axes = _reduce("max", a, axis, keepdims, "extremum", _compute_acc(a.dtype), a.dtype)
    return record("max", [a], out, axis=axes, keepdims=keepdims)


def min(a: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Smallest element over ``axis``, NaN if any is NaN; ValueError on an empty reduction."""
    out, axes = _reduce(
        "min", a, axis, keepdims, "extremum", _compute_acc(a.dtype), a.dtype, beats="<"
    )
    return record("min", [a], out, axis=axes, keepdims=keepdims)


def _arg(op: str, a: Tensor, axis: int | None, keepdims: bool, beats: str) -> Tensor:
    if axis is not None and not isinstance(axis, int | np.integer):
        raise TypeError(f"{op}: axis must be an int or None, got {axis!r}")
    # Not recorded: an index has no gradient.
    out, _ = _reduce(op, a, axis, keepdims, "arg", _compute_acc(a.dtype), dtypes.int64, beats)
    return out


def argmax(a: Tensor, axis: int | None = None, keepdims: bool = False) -> Tensor:
    """Index (int64) of the first maximum along ``axis`` (None: of the flattened tensor)."""
    return _arg("argmax", a, axis, keepdims, ">")


def argmin(a: Tensor, axis: int | None = None, keepdims: bool = False) -> Tensor:
    """Index (int64) of the first minimum along ``axis`` (None: of the flattened tensor)."""
    return _arg("argmin", a, axis, keepdims, "<")


def logsumexp(a: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """``m + log(sum(exp(a - m)))`` with ``m`` the max over ``axis``: never overflows.

    Computed in float32 (ints give float32); an empty reduction is -inf.
    """
    out_dtype = a.dtype if dtypes.is_floating(a.dtype) else dtypes.float32
    out, axes = _reduce("logsumexp", a, axis, keepdims, "lse", "float", out_dtype)
    return record("logsumexp", [a], out, axis=axes, keepdims=keepdims)
