"""Gathers and scatter-adds along one axis (indexing.cl).

``index_select`` and ``take_along_axis`` read; ``index_add`` and
``scatter_add`` are their adjoints, which their backward passes need.
Indices may be negative (counted from the end, as in numpy). Host indices (a
list, a numpy array) are checked on the host before anything is enqueued; a
Tensor of indices is checked on the device (``deferred``: ValueError at the
next read, no wait for the queue), so a captured call (netcl.jit) checks at
every replay too.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from netcl.core.device import Device
from netcl.core.tensor import deferred, dtypes
from netcl.core.tensor.creation import from_numpy
from netcl.core.tensor.dispatch import empty, record
from netcl.core.tensor.launch import MAX_DIMS, enqueue, int8_vector, launch
from netcl.core.tensor.ops.elementwise import elementwise, rows_group
from netcl.core.tensor.ops.reduce import max as reduce_max
from netcl.core.tensor.strides import contiguous_strides, merge
from netcl.core.tensor.tensor import Shape, Tensor

KERNEL_FILE = Path(__file__).with_name("indexing.cl")
IndexLike = Tensor | np.ndarray[Any, Any] | Sequence[int]

_WORDS = {1: "uchar", 2: "ushort", 4: "uint", 8: "ulong"}
_LONG_MIN = int(np.iinfo(np.int64).min)


def _axis(op: str, shape: Shape, axis: int) -> int:
    ndim = len(shape)
    if not -ndim <= axis < ndim:
        raise IndexError(f"{op}: axis {axis} is out of range for shape {shape} ({ndim} dimensions)")
    if ndim > MAX_DIMS:
        raise ValueError(f"{op}: at most {MAX_DIMS} dimensions are supported, shape is {shape}")
    return axis % ndim


def _index_shape(indices: IndexLike) -> Shape:
    return indices.shape if isinstance(indices, Tensor) else np.shape(indices)


def _check_range(op: str, host: np.ndarray[Any, Any], axis: int, size: int) -> None:
    if host.size == 0:
        return
    low, high = int(host.min()), int(host.max())
    if low < -size or high >= size:
        raise IndexError(
            f"{op}: indices range from {low} to {high}, but axis {axis} has size {size} "
            f"(valid indices are {-size} to {size - 1})"
        )


# Index tensors as_indices made: non-negative int64, every value checked to lie below
# the bound kept here. Nothing outside as_indices holds them to write (ops save them for
# their backward), so a backward's scatter can use them without reading them back.
# Keyed by id with a weak reference to confirm it (a WeakKeyDictionary would compare
# tensors with ==, which is elementwise).
_checked: dict[int, tuple[weakref.ref[Tensor], int]] = {}


def checked_indices(
    op: str, indices: Tensor, size: int, describe: Callable[[int], str],
    allowed: int | None = None, wrap: bool = False,
) -> Tensor:
    """``indices`` for an axis of ``size``, checked on the device instead of read back.

    An index outside ``[0, size)`` (``[-size, size)`` with ``wrap``, negative ones
    then counted from the end; ``allowed`` exempts a marker such as an ignore_index
    the caller handles) is reported to ``deferred``: the next read from the device
    raises ``ValueError(describe(index))``. Meanwhile the returned int64 indices
    hold 0 in its place, so no kernel reads or writes outside its buffer.
    """
    if indices.dtype not in (dtypes.int32, dtypes.int64):
        raise TypeError(f"{op}: indices must be int32 or int64, got {indices.dtype}")
    inside = "(a >= -b && a < b)" if wrap else "(a >= 0 && a < b)"
    kept = "(a < 0 ? a + b : a)" if wrap else "a"
    safe = elementwise(op, f"({inside} ? {kept} : 0)", [indices, size],
                       out_dtype=dtypes.int64)
    if indices.size:
        wrong = f"!{inside}" if allowed is None else f"(!{inside} && a != c)"
        # LONG_MIN where fine: the largest wrong index wins the max, and the check's key
        # keeps the largest across calls (deferred.report).
        marker = [] if allowed is None else [allowed]
        example = elementwise(op, f"({wrong} ? (long)a : LONG_MIN)", [indices, size, *marker],
                              out_dtype=dtypes.int64)
        deferred.report(f"{op}:{size}:{allowed}:{wrap}", reduce_max(example), _LONG_MIN,
                        describe)
    return _checked_indices(safe, size)


def as_indices(op: str, indices: IndexLike, axis: int, size: int, device: Device) -> Tensor:
    """``indices`` as a non-negative int64 tensor on ``device``, each checked against ``size``.

    Host indices (a numpy array, a list) are checked on the host: IndexError
    here. A Tensor of indices is checked on the device (:func:`checked_indices`):
    ValueError at the next read, and meanwhile a bad index selects element 0.
    The result is a tensor of this function's own, so passing it in again (a
    backward pass does) is known to be in range without another check.
    """
    if isinstance(indices, Tensor):
        if indices.device is not device:
            raise ValueError(
                f"{op}: indices are on {indices.device!r} but the data is on {device!r}"
            )
        known = _checked.get(id(indices))
        if known is not None and known[0]() is indices and known[1] <= size:
            return indices

        def describe(index: int) -> str:
            return (f"{op}: index {index} is out of range for axis {axis} of size {size} "
                    f"(valid indices are {-size} to {size - 1})")

        return checked_indices(op, indices, size, describe, wrap=True)
    host = np.asarray(indices)
    # An empty list comes out as float64; it selects nothing, whatever its dtype.
    if host.dtype.kind not in "iu" and host.size:
        raise TypeError(f"{op}: indices must be integers, got an array of {host.dtype}")
    _check_range(op, host, axis, size)
    normalized = np.where(host < 0, host + size, host).astype(np.int64)
    return _checked_indices(from_numpy(normalized.reshape(host.shape), device), size)


def _checked_indices(indices: Tensor, size: int) -> Tensor:
    key = id(indices)
    _checked[key] = (weakref.ref(indices, lambda _: _checked.pop(key, None)), size)
    return indices


def _slice_strides(device: Device, shape: Shape, strides: Shape,
                   axis: int) -> tuple[int, int, int] | None:
    """The strides of a tensor of ``shape`` and ``strides`` seen as (outer, shape[axis],
    inner), the dimensions before ``axis`` merged into one and those after it into
    another, for gather_slices and scatter_slices; None where either does not merge.
    Those kernels run on a CPU, where they replaced the walk over every dimension
    (tools/bench/indexing.py); a GPU keeps the kernels it was measured with: None there."""
    if device.type != "cpu":
        return None
    before, after = merge(shape[:axis], strides[:axis]), merge(shape[axis + 1:], strides[axis + 1:])
    if before is None or after is None:
        return None
    return before[1], strides[axis], after[1]


def _launch_slices(device: Device, kernel: Any, shape: Shape, axis: int, count: int,
                   *args: Any) -> None:
    """``kernel`` over the exact grid (inner, count, outer) around ``axis`` of ``shape``,
    a work-group of whole rows along inner (which PoCL vectorizes along)."""
    inner, outer = math.prod(shape[axis + 1:]), math.prod(shape[:axis])
    if inner * count * outer:
        enqueue(device, kernel, (inner, count, outer), (*rows_group(inner, count), 1), args)


def _gather(a: Tensor, axis: int, indices: Tensor, shape: Shape, idx_strides: Shape,
            per_slice: bool = False) -> Tensor:
    """``a``'s elements at ``indices`` along ``axis``, of ``shape``; ``per_slice``: one
    index a slice of ``a`` (index_select), which gather_slices may take."""
    out = empty(shape, a.dtype, a.device)
    slices = _slice_strides(a.device, a.shape, a.strides, axis) if per_slice else None
    word = {"WORD_T": _WORDS[a.dtype.itemsize]}
    if slices is None:
        kernel = a.device.kernels.kernel(KERNEL_FILE, "gather", word)
        launch(
            a.device, kernel, out.size,
            np.int32(out.size), np.int32(len(shape)), np.int32(axis), np.int32(a.shape[axis]),
            int8_vector(shape),
            out.buffer, a.buffer, np.int32(a.offset), int8_vector(a.strides),
            indices.buffer, np.int32(indices.offset), int8_vector(idx_strides),
        )
    else:
        kernel = a.device.kernels.kernel(KERNEL_FILE, "gather_slices", word)
        _launch_slices(a.device, kernel, shape, axis, shape[axis],
                       out.buffer, a.buffer, np.int32(a.offset), *map(np.int32, slices),
                       np.int32(a.shape[axis]), indices.buffer, np.int32(indices.offset),
                       np.int32(idx_strides[axis]))
    return out


def _one_axis_strides(ndim: int, axis: int, indices: Tensor) -> Shape:
    """Index strides that give every slice along ``axis`` the same index."""
    return tuple(indices.strides[0] if d == axis else 0 for d in range(ndim))


def index_select(a: Tensor, axis: int, indices: IndexLike) -> Tensor:
    """The slices of ``a`` at ``indices`` (1-D) along ``axis``, in that order.

    The result has ``a``'s shape with ``axis`` replaced by ``len(indices)``.
    Recorded as ``index_select`` with the non-negative int64 ``indices``.
    """
    axis = _axis("index_select", a.shape, axis)
    if len(_index_shape(indices)) != 1:
        raise ValueError(
            f"index_select: indices must be 1-D, got shape {_index_shape(indices)}"
        )
    idx = as_indices("index_select", indices, axis, a.shape[axis], a.device)
    shape = (*a.shape[:axis], idx.shape[0], *a.shape[axis + 1 :])
    out = _gather(a, axis, idx, shape, _one_axis_strides(a.ndim, axis, idx), per_slice=True)
    return record("index_select", [a], out, axis=axis, indices=idx)


def take_along_axis(a: Tensor, indices: IndexLike, axis: int) -> Tensor:
    """``out[..., i, ...] = a[..., indices[..., i, ...], ...]`` along ``axis`` (torch.gather).

    ``indices`` has ``a``'s number of dimensions and sizes no larger than
    ``a``'s off ``axis``; the result has ``indices``' shape. Recorded as
    ``take_along_axis`` with the non-negative int64 ``indices``.
    """
    axis = _axis("take_along_axis", a.shape, axis)
    _check_along_shape("take_along_axis", a.shape, _index_shape(indices), axis, "input")
    idx = as_indices("take_along_axis", indices, axis, a.shape[axis], a.device)
    out = _gather(a, axis, idx, idx.shape, idx.strides)
    return record("take_along_axis", [a], out, axis=axis, indices=idx)


def _check_along_shape(op: str, shape: Shape, idx_shape: Shape, axis: int, name: str) -> None:
    if len(idx_shape) != len(shape) or any(
        i > s for d, (i, s) in enumerate(zip(idx_shape, shape, strict=True)) if d != axis
    ):
        raise ValueError(
            f"{op}: indices of shape {idx_shape} do not fit the {name} of shape {shape}: "
            f"they need its number of dimensions and no larger sizes off axis {axis}"
        )


def _check_source(op: str, source: Tensor) -> None:
    if source.dtype not in (*dtypes.FLOATING, dtypes.int32):
        raise TypeError(
            f"{op}: source must be float32, float16, bfloat16 or int32, got {source.dtype}")


def _scatter(
    op: str, shape: Shape, axis: int, idx: Tensor, source: Tensor, idx_strides: Shape,
    per_slice: bool = False,
) -> Tensor:
    """``out`` of ``shape`` += ``source`` at ``idx`` along ``axis``; ``per_slice``: one
    index a slice of ``source`` (index_add), which scatter_slices may take."""
    device = source.device
    # 16-bit floats accumulate in a float32 buffer: there is no 16-bit atomic, and
    # the sum of many rows is better rounded once at the end.
    acc = dtypes.int32 if source.dtype == dtypes.int32 else dtypes.float32
    out = empty(shape, acc, device)
    elementwise(op, "a", [0], out=out)
    is_int = acc == dtypes.int32
    defines = {
        "ACC_T": dtypes.STORAGE_C_TYPE[acc],
        "SRC_T": dtypes.STORAGE_C_TYPE[source.dtype],
        "LOAD(i)": dtypes.cl_load(source.dtype, "src", "(i)"),
        "ATOMIC_ADD(p, v)": "atomic_add(p, v)" if is_int else "atomic_add_float(p, v)",
    }
    slices = _slice_strides(device, source.shape, source.strides, axis) if per_slice else None
    name = "scatter_add" if slices is None else "scatter_slices"
    kernel = device.kernels.kernel((dtypes.BFLOAT16_CL, KERNEL_FILE), name, defines)
    if slices is None:
        launch(
            device, kernel, source.size,
            np.int32(source.size), np.int32(source.ndim), np.int32(axis), np.int32(shape[axis]),
            int8_vector(source.shape),
            out.buffer, int8_vector(contiguous_strides(shape)),
            source.buffer, np.int32(source.offset), int8_vector(source.strides),
            idx.buffer, np.int32(idx.offset), int8_vector(idx_strides),
        )
    else:
        _launch_slices(device, kernel, source.shape, axis, source.shape[axis],
                       out.buffer, np.int32(shape[axis]), source.buffer, np.int32(source.offset),
                       *map(np.int32, slices), idx.buffer, np.int32(idx.offset),
                       np.int32(idx_strides[axis]))
    return out if acc == source.dtype else elementwise(op, "a", [out], out_dtype=source.dtype)


def index_add(shape: Sequence[int], axis: int, indices: IndexLike, source: Tensor) -> Tensor:
    """A new tensor of ``shape``, zero but for ``source``'s slices added at ``indices``.

    ``out[..., indices[j], ...] += source[..., j, ...]`` along ``axis``;
    duplicate indices accumulate. The adjoint of ``index_select``; not recorded.
    """
    shape = tuple(int(s) for s in shape)
    axis = _axis("index_add", shape, axis)
    _check_source("index_add", source)
    idx_shape = _index_shape(indices)
    if len(idx_shape) != 1:
        raise ValueError(f"index_add: indices must be 1-D, got shape {idx_shape}")
    expected = (*shape[:axis], *idx_shape, *shape[axis + 1 :])
    if source.shape != expected:
        raise ValueError(
            f"index_add: source has shape {source.shape}; {idx_shape[0]} indices into "
            f"shape {shape} along axis {axis} need {expected}"
        )
    idx = as_indices("index_add", indices, axis, shape[axis], source.device)
    return _scatter("index_add", shape, axis, idx, source,
                    _one_axis_strides(len(shape), axis, idx), per_slice=True)


def scatter_add(shape: Sequence[int], axis: int, indices: IndexLike, source: Tensor) -> Tensor:
    """A new tensor of ``shape``, zero but for ``source`` added where ``indices`` point.

    ``out[..., indices[..., i, ...], ...] += source[..., i, ...]`` along
    ``axis``; ``indices`` has ``source``'s shape. The adjoint of
    ``take_along_axis``; not recorded.
    """
    shape = tuple(int(s) for s in shape)
    axis = _axis("scatter_add", shape, axis)
    _check_source("scatter_add", source)
    idx_shape = _index_shape(indices)
    if idx_shape != source.shape:
        raise ValueError(
            f"scatter_add: indices of shape {idx_shape} and source of shape {source.shape} "
            "must have the same shape"
        )
    _check_along_shape("scatter_add", shape, idx_shape, axis, "output")
    idx = as_indices("scatter_add", indices, axis, shape[axis], source.device)
    return _scatter("scatter_add", shape, axis, idx, source, idx.strides)

