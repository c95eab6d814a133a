"""Shards: each rank's 1/N element range of every flat bucket of an optimizer's layout.

A flat bucket (``netcl.optim.flat_layout``) holds a param group's parameters
of one dtype and device end to end, with their grads end to end in
``grad_flat``. ZeRO-1 cuts each bucket's ``total`` elements into one
contiguous range per rank, whatever parameters the cuts go through: rank r
owns elements ``[total * r // N, total * (r + 1) // N)``; with ``even`` cuts
(NCCL's reduce-scatter and all-gather move equal counts) every rank's range
is ``ceil(total / N)`` elements long, the last ones cut short by the end. A
parameter that shares no bucket (alone of its dtype in its group) is a bucket
of its own here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from netcl.core.tensor import Parameter, Tensor
from netcl.distributed import host_copy
from netcl.optim import Optimizer


@dataclass(eq=False)
class Shard:
    """One flat run of parameters (``params``, element ``starts``, ``total``), cut over ranks.

    ``counts[r]`` and ``displs[r]`` are rank r's element count and first
    element; this rank's range is ``[lo, hi)``. ``tensor`` is this rank's
    range of the parameters as one 1-D Parameter over the same memory (what
    the per-shard optimizer steps), None when the range is empty.
    """

    params: list[Tensor]
    starts: list[int]
    total: int
    param_flat: Tensor
    bucket_grads: Tensor | None  # the bucket's grad_flat; None for a parameter of its own
    counts: list[int]
    displs: list[int]
    lo: int
    hi: int
    tensor: Parameter | None
    host: np.ndarray[Any, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.host = host_copy.pinned_array(self.param_flat.queue, self.total)

    def grad_flat(self) -> Tensor:
        """All of the run's grads as one 1-D tensor (in the bucket's grad buffer)."""
        if self.bucket_grads is not None:
            return self.bucket_grads
        (p,) = self.params
        assert p.grad is not None
        return flat_view(p.grad, 0, p.size)

    def take_own_grads(self) -> None:
        """This rank's range of the run's grads becomes ``tensor``'s grad (a view, no copy)."""
        if self.tensor is not None:
            self.tensor.grad = flat_view(self.grad_flat(), self.lo, self.hi)


def even_chunk(total: int, size: int) -> int:
    """Each rank's element count under an even cut of ``total`` over ``size`` ranks."""
    return -(-total // size)


def flat_view(t: Tensor, first: int, stop: int) -> Tensor:
    """Elements ``first:stop`` of contiguous ``t`` as a 1-D tensor over the same memory."""
    return Tensor(t.buffer, (stop - first,), t.dtype, t.device, offset=t.offset + first)


def cut(optimizer: Optimizer, group_params: Sequence[Tensor], rank: int, size: int,
        even: bool = False) -> list[Shard]:
    """The shards of one param group, in the group's order, from ``optimizer``'s layout."""
    shards: list[Shard] = []
    seen: set[int] = set()
    for p in group_params:
        placed = optimizer.flat_layout.placement(p)
        if placed is None:
            shards.append(_shard([p], [0], p.size, flat_view(p, 0, p.size), None, rank, size,
                                 even))
            continue
        bucket = placed.bucket
        if id(bucket) in seen:
            continue
        seen.add(id(bucket))
        shards.append(_shard(bucket.params, bucket.starts, bucket.total, bucket.param_flat,
                             bucket.grad_flat, rank, size, even))
    return shards


def _shard(params: list[Tensor], starts: list[int], total: int, param_flat: Tensor,
           grads: Tensor | None, rank: int, size: int, even: bool) -> Shard:
    if even:
        chunk = even_chunk(total, size)
        displs = [min(r * chunk, total) for r in range(size)]
        counts = [min(chunk, total - first) for first in displs]
    else:
        displs = [total * r // size for r in range(size)]
        counts = [total * (r + 1) // size - displs[r] for r in range(size)]
    lo, hi = displs[rank], displs[rank] + counts[rank]
    tensor = Parameter(flat_view(param_flat, lo, hi)) if hi > lo else None
    return Shard(params, starts, total, param_flat, grads, counts, displs, lo, hi, tensor)
