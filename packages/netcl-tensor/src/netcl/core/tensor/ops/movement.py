"""Movement ops: reshape, permute, expand, slicing as views of the same memory; cat, stack.

A view shares its input's buffer and only changes shape, strides and offset;
a copy is made only where no strides can express the result (``reshape`` of
a non-contiguous tensor) or where the data must move (``cat``).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any

import numpy as np

from netcl.core.tensor import dtypes
from netcl.core.tensor.dispatch import common_device, empty, record
from netcl.core.tensor.ops.elementwise import elementwise
from netcl.core.tensor.ops.indexing import index_select
from netcl.core.tensor.strides import contiguous_strides
from netcl.core.tensor.tensor import Shape, Tensor

# What getitem records as ``index``: one entry per dimension of the result's
# making, in order: a non-negative int (that input dimension is dropped),
# slice(start, stop, step) with the ints slice.indices gives (that input
# dimension is kept), or None (a new dimension of size 1). A backward slice
# that reaches element 0 has stop None, not -1, and an empty slice is
# slice(0, 0, 1), so that applying the index again selects the same
# elements. Every input dimension has exactly one int or slice entry, so the
# gradient is zeros(input_shape)[index] = grad.
IndexEntry = int | slice | None


def _view(a: Tensor, shape: Sequence[int], strides: Sequence[int], offset: int) -> Tensor:
    return Tensor.fresh(a.buffer, tuple(shape), a.dtype, a.device, tuple(strides), offset)


def _dim(op: str, dim: int, ndim: int) -> int:
    """``dim`` in [-ndim, ndim) made non-negative, or an IndexError."""
    dim = operator.index(dim)
    # A 0-d tensor takes dimension 0 or -1, as in PyTorch.
    bound = max(ndim, 1)
    if not -bound <= dim < bound:
        raise IndexError(f"{op}: dimension {dim} is out of range for {ndim} dimensions")
    return dim % bound


def _axis_or_dim(op: str, axis: int, dim: int | None) -> int:
    """numpy's ``axis`` or PyTorch's ``dim``: one argument under two names."""
    if dim is None:
        return axis
    if axis != 0:
        raise TypeError(f"{op}: got both axis={axis} and dim={dim}; they are one argument")
    return dim


def _resolve_shape(op: str, old: Shape, shape: Sequence[int]) -> Shape:
    """``shape`` with its -1 filled in, or a ValueError naming both shapes."""
    new = [operator.index(s) for s in shape]
    size = math.prod(old)
    free = [d for d, s in enumerate(new) if s == -1]
    if len(free) > 1 or any(s < -1 for s in new):
        raise ValueError(f"{op}: invalid shape {tuple(new)} (one -1 at most, no other negatives)")
    known = math.prod(s for s in new if s != -1)
    if free and known and size % known == 0:
        new[free[0]] = size // known
    elif free or known != size:
        raise ValueError(f"{op}: cannot reshape shape {old} ({size} elements) into {tuple(new)}")
    return tuple(new)


def view_strides(shape: Shape, strides: Shape, new_shape: Shape) -> Shape | None:
    """Strides that show memory laid out as (shape, strides) in ``new_shape``, if any exist.

    The input's dimensions (size-1 ones aside) fall into runs that step
    through memory evenly; each run can be re-split freely. A new shape is a
    view when its dimensions, in order, multiply out to exactly those runs.
    """
    if math.prod(shape) == 0:
        return contiguous_strides(new_shape)
    runs: list[tuple[int, int]] = []  # (elements, stride of the innermost dimension)
    for size, stride in zip(shape, strides, strict=True):
        if size == 1:
            continue
        if runs and runs[-1][1] == stride * size:
            runs[-1] = (runs[-1][0] * size, stride)
        else:
            runs.append((size, stride))
    result = [1] * len(new_shape)
    d = 0
    for elements, inner in runs:
        start, covered = d, 1
        while covered < elements and d < len(new_shape):
            covered *= new_shape[d]
            d += 1
        if covered != elements:
            return None
        step = inner
        for g in range(d - 1, start - 1, -1):
            result[g] = step
            step *= new_shape[g]
    return tuple(result)


def _reshaped(op: str, a: Tensor, shape: Sequence[int]) -> Tensor:
    new_shape = _resolve_shape(op, a.shape, shape)
    strides = view_strides(a.shape, a.strides, new_shape)
    if strides is not None:
        return _view(a, new_shape, strides, a.offset)
    # Not expressible as a view: copy (unrecorded; the reshape's record covers it).
    source = elementwise(op, "a", [a])
    return _view(source, new_shape, contiguous_strides(new_shape), source.offset)


def reshape(a: Tensor, shape: Sequence[int]) -> Tensor:
    """``a`` in ``shape`` (one entry may be -1): a view when strides allow, else a copy."""
    out = _reshaped("reshape", a, shape)
    return record("reshape", [a], out, input_shape=a.shape)


def view(a: Tensor, shape: Sequence[int]) -> Tensor:
    """``a`` in ``shape`` over the same memory; a ValueError when no strides can do it."""
    new_shape = _resolve_shape("view", a.shape, shape)
    strides = view_strides(a.shape, a.strides, new_shape)
    if strides is None:
        raise ValueError(
            f"view: shape {a.shape} with strides {a.strides} cannot be viewed as {new_shape} "
            "without a copy; use reshape"
        )
    return record("reshape", [a], _view(a, new_shape, strides, a.offset), input_shape=a.shape)


def flatten(a: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Dimensions ``start_dim`` to ``end_dim`` (inclusive) merged into one; 0-d gives (1,)."""
    if a.ndim == 0:
        return reshape(a, (1,))
    start, end = _dim("flatten", start_dim, a.ndim), _dim("flatten", end_dim, a.ndim)
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    merged = math.prod(a.shape[start : end + 1])
    out = _reshaped("flatten", a, (*a.shape[:start], merged, *a.shape[end + 1 :]))
    return record("reshape", [a], out, input_shape=a.shape)


def squeeze(a: Tensor, axis: int | Sequence[int] | None = None) -> Tensor:
    """``a`` without size-1 dimensions (all, or those in ``axis``, which must be size 1)."""
    if axis is None:
        drop = {d for d, s in enumerate(a.shape) if s == 1}
    else:
        items = (axis,) if isinstance(axis, int) else tuple(axis)
        drop = {_dim("squeeze", d, a.ndim) for d in items}
        wrong = [d for d in sorted(drop) if a.ndim and a.shape[d] != 1]
        if wrong:
            raise ValueError(f"squeeze: dimension {wrong[0]} of shape {a.shape} is not 1")
    keep = [d for d in range(a.ndim) if d not in drop]
    out = _view(a, [a.shape[d] for d in keep], [a.strides[d] for d in keep], a.offset)
    return record("reshape", [a], out, input_shape=a.shape)


def unsqueeze(a: Tensor, axis: int) -> Tensor:
    """``a`` with a new size-1 dimension at ``axis`` (in [-ndim-1, ndim])."""
    axis = _dim("unsqueeze", axis, a.ndim + 1)
    stride = a.strides[axis] * a.shape[axis] if axis < a.ndim else 1
    out = _view(
        a, (*a.shape[:axis], 1, *a.shape[axis:]), (*a.strides[:axis], stride, *a.strides[axis:]),
        a.offset,
    )
    return record("reshape", [a], out, input_shape=a.shape)


def permute(a: Tensor, dims: Sequence[int]) -> Tensor:
    """A view with dimension ``dims[i]`` of ``a`` as dimension ``i``."""
    order = tuple(_dim("permute", d, a.ndim) for d in dims) if a.ndim else tuple(dims)
    if sorted(order) != list(range(a.ndim)):
        raise ValueError(f"permute: {tuple(dims)} is not a permutation of {a.ndim} dimensions")
    out = _view(a, [a.shape[d] for d in order], [a.strides[d] for d in order], a.offset)
    return record("permute", [a], out, dims=order)


def transpose(a: Tensor, dim0: int, dim1: int) -> Tensor:
    """A view with dimensions ``dim0`` and ``dim1`` swapped (recorded as a permute)."""
    order = list(range(a.ndim))
    d0, d1 = _dim("transpose", dim0, a.ndim), _dim("transpose", dim1, a.ndim)
    if a.ndim:
        order[d0], order[d1] = order[d1], order[d0]
    return permute(a, order)


def expand(a: Tensor, shape: Sequence[int]) -> Tensor:
    """A view of ``a`` broadcast to ``shape`` (-1 keeps a size); size-1 dimensions repeat."""
    shape = tuple(operator.index(s) for s in shape)
    lead = len(shape) - a.ndim
    if lead < 0:
        raise ValueError(f"expand: shape {shape} has fewer dimensions than {a.shape}")
    new_shape: list[int] = []
    new_strides: list[int] = []
    for d, want in enumerate(shape):
        size, stride = (1, 0) if d < lead else (a.shape[d - lead], a.strides[d - lead])
        if want == -1 and d >= lead:
            want = size
        if want < 0 or (size != 1 and want != size):
            raise ValueError(f"expand: cannot expand shape {a.shape} to {shape}")
        new_shape.append(want)
        new_strides.append(stride if size == want else 0)
    out = _view(a, new_shape, new_strides, a.offset)
    return record("expand", [a], out, input_shape=a.shape)


def _is_array_index(item: Any) -> bool:
    if isinstance(item, Tensor):
        return item.ndim > 0
    return isinstance(item, list | np.ndarray) and np.ndim(item) > 0


def _as_int(item: Any) -> int:
    if isinstance(item, Tensor) and item.dtype in (dtypes.int32, dtypes.int64):
        return int(item.item())
    if isinstance(item, bool | np.bool_ | Tensor):
        raise TypeError(f"getitem: unsupported index {item!r} (bool masks are not supported)")
    try:
        return operator.index(item)
    except TypeError:
        raise TypeError(
            f"getitem: unsupported index {item!r} of type {type(item).__name__}"
        ) from None


def _normalize_index(a: Tensor, items: tuple[Any, ...]) -> list[Any]:
    """Ellipsis expanded, ints bounds-checked, slices made concrete; arrays left in place."""
    ellipses = sum(it is Ellipsis for it in items)
    consuming = [it for it in items if it is not None and it is not Ellipsis]
    if ellipses > 1:
        raise IndexError("getitem: an index can only have one Ellipsis")
    if len(consuming) > a.ndim:
        raise IndexError(f"getitem: {len(consuming)} indices for shape {a.shape}")
    fill = [slice(None)] * (a.ndim - len(consuming))
    expanded: list[Any] = []
    for it in items:
        expanded.extend(fill if it is Ellipsis else [it])
    if not ellipses:
        expanded.extend(fill)
    result: list[Any] = []
    dim = 0
    for it in expanded:
        if it is None or _is_array_index(it):
            result.append(it)
            dim += it is not None
            continue
        size = a.shape[dim]
        if isinstance(it, slice):
            start, stop, step = it.indices(size)
            if not range(start, stop, step):
                start, stop, step = 0, 0, 1
            result.append(slice(start, None if stop < 0 else stop, step))
        else:
            i = _as_int(it)
            if not -size <= i < size:
                raise IndexError(
                    f"getitem: index {i} is out of range for axis {dim} of size {size}"
                )
            result.append(i % size)
        dim += 1
    return result


def _basic_view(a: Tensor, index: Sequence[IndexEntry]) -> Tensor:
    shape: list[int] = []
    strides: list[int] = []
    offset = a.offset
    dim = 0
    for entry in index:
        if entry is None:
            shape.append(1)
            strides.append(0)
            continue
        stride = a.strides[dim]
        dim += 1
        if isinstance(entry, int):
            offset += entry * stride
            continue
        start, stop, step = entry.indices(a.shape[dim - 1])
        length = len(range(start, stop, step))
        if length:
            offset += start * stride
        shape.append(length)
        strides.append(stride * step)
    return _view(a, shape, strides, offset)


def getitem(a: Tensor, index: Any) -> Tensor:
    """numpy-style indexing: ints, slices (any nonzero step), None and Ellipsis give a view.

    One integer array (a Tensor, numpy array or list of ints) may stand at one
    position; it selects along that axis with ``index_select`` and its shape
    replaces that axis. The view is recorded as ``getitem`` with the
    normalized ``index`` (see ``IndexEntry`` above) and ``input_shape``.
    """
    items = index if isinstance(index, tuple) else (index,)
    normalized = _normalize_index(a, items)
    arrays = [d for d, it in enumerate(normalized) if _is_array_index(it)]
    if len(arrays) > 1:
        raise IndexError(f"getitem: only one integer-array index is supported, got {len(arrays)}")
    array: Any = None
    out_axis = 0
    if arrays:
        position = arrays[0]
        array = normalized[position]
        input_dim = sum(e is not None for e in normalized[:position])
        normalized[position] = slice(0, a.shape[input_dim], 1)
        out_axis = sum(not isinstance(e, int) for e in normalized[:position])
    entries = tuple(normalized)
    untouched = all(
        isinstance(e, slice) and e == slice(0, n, 1) for e, n in zip(entries, a.shape, strict=False)
    ) and len(entries) == a.ndim
    out = a
    if not (arrays and untouched):
        out = record(
            "getitem", [a], _basic_view(a, entries), index=entries, input_shape=a.shape
        )
    if array is None:
        return out
    flat = array.reshape((-1,)) if isinstance(array, Tensor) else np.asarray(array).reshape(-1)
    selected = index_select(out, out_axis, flat)
    array_shape = array.shape if isinstance(array, Tensor) else np.shape(array)
    if len(array_shape) != 1:
        selected = reshape(
            selected, (*selected.shape[:out_axis], *array_shape, *selected.shape[out_axis + 1 :])
        )
    # numpy counts ints as advanced indices too: when a slice, None or Ellipsis
    # stands between them and the array, the array's dimensions go first.
    advanced = [d for d, e in enumerate(entries) if isinstance(e, int) or d == arrays[0]]
    if advanced[-1] - advanced[0] + 1 == len(advanced) or out_axis == 0:
        return selected
    moved = range(out_axis, out_axis + len(array_shape))
    rest = [d for d in range(selected.ndim) if d not in moved]
    return permute(selected, [*moved, *rest])


def cat(tensors: Sequence[Tensor], axis: int = 0, *, dim: int | None = None) -> Tensor:
    """``tensors`` joined along ``axis`` (or PyTorch's ``dim``); the dtype is their
    promoted dtype.

    Recorded as ``cat`` with the non-negative ``axis`` and each input's
    ``sizes`` along it.
    """
    tensors = list(tensors)
    axis = _axis_or_dim("cat", axis, dim)
    if not tensors:
        raise ValueError("cat: needs at least one tensor")
    device = common_device("cat", tensors)
    first = tensors[0]
    if first.ndim == 0:
        raise ValueError("cat: 0-d tensors cannot be concatenated; use stack")
    axis = _dim("cat", axis, first.ndim)
    dtype = first.dtype
    for t in tensors[1:]:
        if t.ndim != first.ndim or any(
            s != f for d, (s, f) in enumerate(zip(t.shape, first.shape, strict=True)) if d != axis
        ):
            raise ValueError(
                f"cat: shapes {first.shape} and {t.shape} differ outside axis {axis}"
            )
        dtype = dtypes.promote(dtype, t.dtype)
    sizes = tuple(t.shape[axis] for t in tensors)
    out_shape = (*first.shape[:axis], sum(sizes), *first.shape[axis + 1 :])
    out = empty(out_shape, dtype, device)
    start = 0
    for t, size in zip(tensors, sizes, strict=True):
        part = _view(out, t.shape, out.strides, out.offset + start * out.strides[axis])
        elementwise("cat", "a", [t], out=part)
        start += size
    return record("cat", tensors, out, axis=axis, sizes=sizes)


def stack(tensors: Sequence[Tensor], axis: int = 0, *, dim: int | None = None) -> Tensor:
    """``tensors``, all of one shape, joined along a new dimension ``axis`` (or ``dim``)."""
    tensors = list(tensors)
    axis = _axis_or_dim("stack", axis, dim)
    if not tensors:
        raise ValueError("stack: needs at least one tensor")
    for t in tensors[1:]:
        if t.shape != tensors[0].shape:
            raise ValueError(f"stack: shapes {tensors[0].shape} and {t.shape} differ")
    axis = _dim("stack", axis, tensors[0].ndim + 1)
    return cat([unsqueeze(t, axis) for t in tensors], axis)


def split(a: Tensor, split_size_or_sections: int | Sequence[int], dim: int = 0) -> list[Tensor]:
    """Views of ``a`` along ``dim``, as ``torch.split``: pieces of ``split_size_or_sections``
    elements (the last may be shorter), or of the listed sizes, which must sum to its size."""
    dim = _dim("split", dim, a.ndim)
    length = a.shape[dim]
    if isinstance(split_size_or_sections, int):
        size = split_size_or_sections
        if size <= 0:
            raise ValueError(f"split: split_size must be positive, got {size}")
        sizes = [min(size, length - start) for start in range(0, length, size)] or [0]
    else:
        sizes = [operator.index(s) for s in split_size_or_sections]
        if any(s < 0 for s in sizes) or sum(sizes) != length:
            raise ValueError(
                f"split: sections {sizes} must be non-negative and sum to {length}, the size "
                f"of dimension {dim} of shape {a.shape}"
            )
    pieces = []
    start = 0
    for size in sizes:
        index = (slice(None),) * dim + (slice(start, start + size),)
        pieces.append(getitem(a, index))
        start += size
    return pieces


def chunk(a: Tensor, chunks: int, dim: int = 0) -> list[Tensor]:
    """``a`` split into at most ``chunks`` views along ``dim`` of ceil(size / chunks)
    elements each (the last may be shorter), as ``torch.chunk``."""
    if operator.index(chunks) <= 0:
        raise ValueError(f"chunk: chunks must be positive, got {chunks}")
    length = a.shape[_dim("chunk", dim, a.ndim)]
    return split(a, max(-(-length // chunks), 1), dim)
