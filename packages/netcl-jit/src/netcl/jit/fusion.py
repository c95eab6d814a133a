"""Which captured launches fuse: runs of elementwise launches, and which of their stores stay.

A run is a stretch of consecutive elementwise launches (nothing else enqueued
between them) that can execute as one kernel, work-item i doing element i of
every member in order. That is safe when every buffer region a member writes
is touched by the run's other members at exactly the same elements (same
offset, same element-to-index map): then nothing one work-item writes is
another work-item's business, and a read of such a region takes the value
from a register. Launches of other kernels are opaque: every buffer they get
counts as read and written whole.

A member's store is left out when nothing after the run reads what it
wrote: the next touch of that memory is a write that covers it, or there is
no later touch and nobody outside the capture holds the buffer.

Before runs are formed, an elementwise launch that would stand alone moves
next to the nearest elementwise launch it can reach, later or else earlier,
across launches of other kernels that share no buffer with it (never across
host work): the order of launches that touch disjoint memory does not matter
on an in-order queue.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import pyopencl as cl

from netcl.core.tensor import dtypes
from netcl.core.tensor.launch_info import ElementwiseLaunch, Operand, ReductionLaunch
from netcl.jit.codegen import Member, element_range, is_flat

# One fused kernel takes at most this many members and distinct buffers: OpenCL
# guarantees only 1024 bytes of kernel arguments, and a long run gains little more.
MAX_MEMBERS = 16
MAX_BUFFERS = 24
_WHOLE = (0, 2**62)


@dataclass(frozen=True, slots=True)
class Touch:
    """One access of a launch to a buffer: elements ``low``..``high``; ``mapping`` says which
    element work-item i touches (None: unknown, an opaque kernel's access)."""

    buffer: Any
    low: int
    high: int
    mapping: tuple[Any, ...] | None
    write: bool

    def overlaps(self, other: Touch) -> bool:
        return self.buffer is other.buffer and self.low <= other.high and other.low <= self.high


def _touch(access: Operand, launch: ElementwiseLaunch, write: bool) -> Touch:
    low, high = element_range(access, launch.dims)
    if is_flat(access, launch.dims):
        mapping: tuple[Any, ...] = ("flat", access.offset, launch.n, access.dtype)
        high = access.offset + launch.n - 1
    else:
        mapping = ("strided", access.offset, launch.n, launch.dims, access.strides, access.dtype)
    return Touch(access.buffer, low, high, mapping, write)


def touches(
    args: Sequence[Any], elementwise: ElementwiseLaunch | ReductionLaunch | None
) -> list[Touch]:
    """Every access of one launch, reads before its write (an elementwise kernel reads its
    operands before it stores)."""
    if isinstance(elementwise, ElementwiseLaunch):
        reads = [_touch(x, elementwise, False) for x in elementwise.tensors()]
        return [*reads, _touch(elementwise.out, elementwise, True)]
    return [
        Touch(arg, *_WHOLE, None, write)
        for arg in args if isinstance(arg, cl.MemoryObjectHolder)
        for write in (False, True)
    ]


def fusable(launch: ElementwiseLaunch | ReductionLaunch | None) -> bool:
    """A 16-bit float is rounded where it is stored, which a register does not repeat."""
    if not isinstance(launch, ElementwiseLaunch):
        return False
    return all(x.dtype not in dtypes.LOW_PRECISION for x in [launch.out, *launch.tensors()])


Entry = tuple[Sequence[Any], ElementwiseLaunch | ReductionLaunch | None]


def reorder(entries: Sequence[Entry | None]) -> list[int]:
    """An order of ``entries`` (a launch's arguments and description; None for host work)
    in which lone elementwise launches sit beside another elementwise launch if they can."""
    order = list(range(len(entries)))
    buffers = [
        set() if e is None else {id(t.buffer) for t in touches(*e)} for e in entries
    ]

    def lone(p: int) -> bool:
        entry = entries[order[p]]
        if entry is None or not fusable(entry[1]):
            return False
        return not any(
            0 <= q < len(order) and _elementwise(entries[order[q]]) for q in (p - 1, p + 1)
        )

    p = 0
    while p < len(order):
        if lone(p):
            for step in (1, -1):
                q = p + step
                while 0 <= q < len(order) and _passable(entries[order[q]]) and not (
                    buffers[order[p]] & buffers[order[q]]
                ):
                    q += step
                if 0 <= q < len(order) and _elementwise(entries[order[q]]) and q != p + step:
                    moved = order.pop(p)
                    order.insert(q - 1 if step == 1 else q + 1, moved)
                    break
        p += 1
    return order


def _elementwise(entry: Entry | None) -> bool:
    return entry is not None and fusable(entry[1])


def _passable(entry: Entry | None) -> bool:
    """A launch another may move across: any kernel's but an elementwise one's (that one is
    where the move stops), never host work."""
    return entry is not None and not fusable(entry[1])


@dataclass
class Run:
    """Launches ``start`` to ``stop - 1`` of a capture, fused into one kernel: elementwise
    ``members``, then, with ``reduction``, the reduction (at ``stop - 1``) that reads the
    last member's result, which it computes where it would load it (a prologue)."""

    start: int
    stop: int
    members: list[Member]
    reduction: ReductionLaunch | None = None


def runs(launches: Sequence[Entry | None], live: Callable[[Any], bool],
         cpu: bool = False) -> list[Run]:
    """The runs of two or more members in ``launches`` (each its arguments and, for an
    elementwise kernel, its description; None for host work, which touches nothing and
    fuses with nothing); ``live(buffer)``: held outside the capture.

    ``cpu``: for PoCL, which vectorizes a kernel across work-items only where no
    store is under a branch and hoists no index math out of a reduction's loop: a
    run's members then all have one length (a shorter member's guard cost a 64x16x784
    BatchNorm run 25x), a run with a strided access is no reduction's prologue (its
    index divisions ran per element there: 4x the reduction's time), and a lone
    launch with a strided access is a run of one, generated with its divisors
    compiled in (a head split's copy ran 30x faster than elementwise.cl's, whose
    shape is a kernel argument).
    """
    abouts = [None if e is None else e[1] for e in launches]
    all_touches = [[] if e is None else touches(*e) for e in launches]
    found: list[Run] = []
    i = 0
    while i < len(launches):
        if not fusable(abouts[i]):
            i += 1
            continue
        stop, sources = _extend(abouts, all_touches, i, cpu)
        members = [
            Member(cast(ElementwiseLaunch, abouts[k]), tuple(src), False)
            for k, src in zip(range(i, stop), sources, strict=True)
        ]
        reduction = _reduction(abouts[stop] if stop < len(abouts) else None, members,
                               all_touches[i:stop])
        if cpu and _strided(members):
            reduction = None
        end = stop + (reduction is not None)
        if end - i >= 2 or (cpu and _strided(members)):
            members = [
                Member(m.launch, m.sources, _needed(all_touches, k, i, end, live))
                for k, m in enumerate(members, i)
            ]
            found.append(Run(i, end, members, reduction))
        i = end
    return found


def _strided(members: Sequence[Member]) -> bool:
    return any(not is_flat(x, m.launch.dims) for m in members
               for x in (m.launch.out, *m.launch.tensors()))


def _reduction(
    reduction: ElementwiseLaunch | ReductionLaunch | None, members: Sequence[Member],
    run_touches: Sequence[Sequence[Touch]],
) -> ReductionLaunch | None:
    """``reduction`` (the launch after the run of ``members``) if the run can be its
    prologue: it reads exactly the last member's result, no member has more elements,
    and no member reads from memory what the run writes (a reduction may load an element
    twice, so the prologue may run twice)."""
    if not isinstance(reduction, ReductionLaunch):
        return None
    last = members[-1].launch
    source = reduction.input
    if not (
        source.buffer is last.out.buffer and source.offset == last.out.offset
        and source.dtype == last.out.dtype and reduction.count == last.n
        and is_flat(last.out, last.dims)
    ):
        return None
    # The reduction loads elements 0..count-1 only: a longer member would stop short.
    if any(m.launch.n > reduction.count for m in members):
        return None
    writes = [t for mine in run_touches for t in mine if t.write]
    for member, mine in zip(members, run_touches, strict=True):
        origins = [
            origin for x, origin in zip(member.launch.operands, member.sources, strict=True)
            if isinstance(x, Operand)
        ]
        from_memory = [t for t, origin in zip(mine[:-1], origins, strict=True) if origin is None]
        if any(t.overlaps(w) for t in from_memory for w in writes):
            return None
    return reduction


def _extend(
    abouts: Sequence[ElementwiseLaunch | ReductionLaunch | None],
    all_touches: Sequence[Sequence[Touch]],
    start: int,
    same_length: bool,
) -> tuple[int, list[list[int | None]]]:
    """How far a run from ``start`` reaches (with ``same_length``, only over launches as
    long as the first), and for each member where each slot reads from (a member's index
    within the run, or None for memory)."""
    sources: list[list[int | None]] = []
    buffers: set[int] = set()
    stop = start
    while stop < len(abouts) and stop - start < MAX_MEMBERS:
        launch = abouts[stop]
        if not isinstance(launch, ElementwiseLaunch) or not fusable(launch):
            break
        first = abouts[start]
        if same_length and isinstance(first, ElementwiseLaunch) and launch.n != first.n:
            break
        mine = all_touches[stop]
        if len(buffers | {id(t.buffer) for t in mine}) > MAX_BUFFERS:
            break
        earlier = [(k, t) for k in range(start, stop) for t in all_touches[k]]
        if any(
            t.overlaps(u) and (t.write or u.write) and t.mapping != u.mapping
            for t in mine for _, u in earlier
        ):
            break
        slots: list[int | None] = []
        reads = iter(mine[:-1])
        for x in launch.operands:
            if not isinstance(x, Operand):
                slots.append(None)
                continue
            read = next(reads)
            writers = [k for k, u in earlier if u.write and u.overlaps(read)]
            slots.append(writers[-1] - start if writers else None)
        sources.append(slots)
        buffers |= {id(t.buffer) for t in mine}
        stop += 1
    return stop, sources


def _needed(
    all_touches: Sequence[Sequence[Touch]], k: int, start: int, stop: int,
    live: Callable[[Any], bool],
) -> bool:
    """Whether launch ``k``'s store (in the run ``start``..``stop``) is read after the run."""
    write = all_touches[k][-1]
    for j in range(k + 1, stop):
        if all_touches[j][-1].mapping == write.mapping and all_touches[j][-1].overlaps(write):
            return False  # a later member overwrites exactly these elements
    for later in all_touches[stop:]:
        hits = [t for t in later if t.overlaps(write)]
        if not hits:
            continue
        if any(not t.write for t in hits):
            return True
        cover = hits[-1]
        if cover.mapping is not None and (
            cover.mapping == write.mapping
            or (cover.mapping[0] == "flat" and cover.low <= write.low and cover.high >= write.high)
        ):
            return False
    return live(write.buffer)
