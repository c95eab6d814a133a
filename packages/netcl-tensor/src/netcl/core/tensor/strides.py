"""Strides, in elements: the row-major layout, broadcasting, and collapsing dimensions.

Every op that walks strided memory (elementwise, matmul's batch, the JIT's fused
kernels) reads its layout through these, so one rule decides which dimensions merge.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Shape = tuple[int, ...]


def contiguous_strides(shape: Sequence[int]) -> Shape:
    """Row-major strides, in elements, for ``shape``."""
    strides = [1] * len(shape)
    for d in range(len(shape) - 2, -1, -1):
        strides[d] = strides[d + 1] * max(shape[d + 1], 1)
    return tuple(strides)


def broadcast_strides(shape: Shape, strides: Shape, target: Shape) -> Shape:
    """The strides of a ``shape``/``strides`` view seen from ``target``, which it broadcasts
    to: 0 along every dimension it is broadcast over (a new leading one, or a size 1)."""
    lead = len(target) - len(shape)
    return (0,) * lead + tuple(
        0 if size == 1 and want != 1 else stride
        for size, stride, want in zip(shape, strides, target[lead:], strict=True)
    )


def collapse(shape: Shape, all_strides: Sequence[Shape]) -> tuple[Shape, list[Shape]]:
    """Drop size-1 dimensions and merge neighbours every operand walks evenly.

    Fewer dimensions means fewer divisions per element, and the common case
    (everything contiguous) becomes one flat dimension.
    """
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


def merge(shape: Shape, strides: Shape) -> tuple[int, int] | None:
    """(size, stride) of one dimension walking all of ``shape`` evenly, or None if
    ``strides`` do not collapse to one."""
    dims, (merged,) = collapse(shape, [strides])
    if not dims:
        return math.prod(shape), 0
    if len(dims) == 1:
        return dims[0], merged[0]
    return None
