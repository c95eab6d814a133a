"""One param group's step, planned: which parameters step, and in how many launches.

A parameter steps when it is a leaf with a grad (PyTorch skips the rest). A
parameter of a flat bucket whose grad is its grad home, and which still lives
at its place in the bucket, joins a *run*: adjacent parameters of one bucket
with the same step count (and both new, or both old, state) are updated by one
kernel launch over their joint range. When every parameter of a bucket has its
grad and one step count, that is one launch for the bucket. Anything else (a
parameter outside any bucket, a grad stored elsewhere) is *loose*: its grad is
checked and it gets a launch of its own, the per-parameter path.

Planning changes nothing: new states are made but not stored, so a bad grad
found in a later group leaves every group as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from netcl.core.tensor import Tensor
from netcl.optim.flat import FlatBucket

if TYPE_CHECKING:
    from netcl.optim.optimizer import ParamState


class Slot(NamedTuple):
    """Where a parameter sits in the flat layout: its bucket and its index there."""

    bucket: FlatBucket
    position: int


@dataclass(eq=False)
class Entry:
    """A parameter that steps now, its grad and its state (``created``: made by this plan)."""

    param: Tensor
    grad: Tensor
    state: ParamState
    created: bool


@dataclass(eq=False)
class Run:
    """Parameters ``start`` to ``stop - 1`` of ``bucket``, updated by one launch.

    Every member has step count ``step`` and state made by this plan or not
    (``created``), so one set of kernel scalars serves them all; ``states`` are
    the members' states, in bucket order.
    """

    bucket: FlatBucket
    start: int
    stop: int
    step: float | None
    created: bool
    states: list[ParamState]

    def params(self) -> list[Tensor]:
        return self.bucket.params[self.start:self.stop]


@dataclass
class Plan:
    """A group's step: ``loose`` entries launch one by one; each run launches once."""

    loose: list[Entry] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)

    def states(self) -> list[ParamState]:
        return [entry.state for entry in self.loose] + [
            st for run in self.runs for st in run.states
        ]

    def created(self) -> list[tuple[Tensor, ParamState]]:
        """The parameters whose state this plan made, with that state."""
        made = [(entry.param, entry.state) for entry in self.loose if entry.created]
        for run in self.runs:
            if run.created:
                made += zip(run.params(), run.states, strict=True)
        return made


def plan(
    params: Iterable[Tensor],
    states: Mapping[Tensor, ParamState],
    slots: Mapping[Tensor, Slot],
    new_state: Callable[[], ParamState],
    check_grad: Callable[[Tensor, Tensor], None],
) -> Plan:
    """The Plan for ``params`` (one group, in order); ``check_grad`` raises for a bad grad.

    Per parameter this is a few attribute reads and dict lookups, with no object
    made for a run member: a step over a model of hundreds of tensors must cost
    far less host time than its one launch.
    """
    out = Plan()
    open_runs: dict[int, Run] = {}
    for p in params:
        grad = p.grad
        if grad is None or not p.is_leaf:
            continue
        st = states.get(p)
        created = st is None
        if st is None:
            st = new_state()
        slot = slots.get(p)
        if slot is not None:
            bucket, index = slot
            # Its grad is its home and it still lives in the bucket (nobody rebound it).
            if (
                grad is bucket.grad_homes[index]
                and p.buffer is bucket.param_flat.buffer
                and p.offset == bucket.param_offsets[index]
            ):
                run = open_runs.get(id(bucket))
                if (
                    run is not None and run.stop == index and run.step == st.step
                    and run.created == created
                ):
                    run.stop = index + 1
                    run.states.append(st)
                    continue
                run = Run(bucket, index, index + 1, st.step, created, [st])
                open_runs[id(bucket)] = run
                out.runs.append(run)
                continue
        check_grad(p, grad)
        out.loose.append(Entry(p, grad, st, created))
    return out
