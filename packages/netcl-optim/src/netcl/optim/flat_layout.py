"""The flat layout: an optimizer's parameters, grads and state in a few flat buffers.

An optimizer built with ``fused=None`` (the default) or ``fused=True`` owns one
:class:`FlatLayout`. It groups each param group's parameters by (dtype,
device) into :class:`FlatBucket`\\ s. For a bucket of two or more parameters it
allocates one buffer for the parameters, one for their grads and, lazily on
the first step, one buffer per state name (``exp_avg``, ...), each holding the
parameters' state in group order with no padding between them (float32 in the
parameter's shape, unless the optimizer's ``spec`` says otherwise). Then it:

* copies each parameter's values in and rebinds *the same* Tensor object to
  its range (``buffer``, ``offset``, ``strides``), so every reference the
  model holds keeps working;
* makes each parameter's grad home (``Tensor.set_grad_home``) its range of the
  grad buffer, so ``p.grad = g`` (autograd's first accumulation included)
  copies g there and in-place accumulation stays there;
* hands out per-parameter state tensors that are views of the state buffers,
  so ``optimizer.state[p]`` and state dicts read as before.

A step (:meth:`FlatLayout.group_launches`) then updates a whole bucket with one launch of
the family's kernel. A bucket is never padded: Adam's state is exactly 8 bytes
per parameter, and the kernels' vloadN need only element alignment.

**What a bucket exposes** (for code that works on whole buckets, such as a
data-parallel all-reduce of ``grad_flat`` or a sharded optimizer that keeps
the state of one element range): ``params``; ``starts[i]`` and ``sizes[i]``,
parameter i's first element and element count within the bucket; ``total``
elements; ``param_flat`` and ``grad_flat``, 1-D Tensors of ``total`` elements
in the parameters' dtype; ``grad_homes[i]``, parameter i's view of
``grad_flat``; ``state_flats``, the state buffers made so far, by
name, with ``state_flat(name)`` making one; ``state_view(name, i)``;
``views(start, stop, names)`` over parameters ``start:stop`` and
``element_views(first, stop, names)`` over any element range, each giving 1-D
param, grad and state views that one kernel launch can step.

Only parameters netcl may move are arranged: contiguous ones whose memory came
from a buffer pool (every netcl allocation). A parameter wrapping another
framework's ``pyopencl.Buffer`` is never moved, since that framework reads it
through its own buffer. Views taken of a parameter *before* the optimizer was
built keep the old memory and no longer alias the parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

import numpy as np
import pyopencl.tools as cl_tools

from netcl.core.device import Device
from netcl.core.tensor import Tensor, empty, float32, from_numpy, recorder, zeros
from netcl.core.tensor.launch import transfer
from netcl.core.tensor.strides import contiguous_strides
from netcl.optim.functional.device_arrays import with_master
from netcl.optim.functional.kernels import GradScaling, LiveGroup
from netcl.optim.param_state import ParamState

# Range views are cached per (start, stop); a bucket whose late parameters keep
# shifting the ranges could grow the cache without bound, so it is cleared past this.
_VIEW_CACHE_LIMIT = 64

HostArrays = dict[str, np.ndarray[Any, Any]]
#: Each state buffer's shape and dtype for a parameter of a shape: ``spec(name, shape)``.
StateSpec = Callable[[str, tuple[int, ...]], tuple[tuple[int, ...], np.dtype[Any]]]
#: The state name of a 16-bit parameter's float32 master copy (see ``Optimizer``).
MASTER = "master_param"
NamedStateT = TypeVar("NamedStateT", bound=NamedTuple)


def elementwise_state(name: str, shape: tuple[int, ...]) -> tuple[tuple[int, ...], np.dtype[Any]]:
    """The StateSpec of every algorithm whose state is float32 in its parameter's shape."""
    return shape, float32


def unmovable_reason(p: Tensor) -> str | None:
    """Why ``p`` cannot join a flat layout, or None if it can."""
    if not p.is_contiguous:
        return f"is not contiguous (strides {p.strides})"
    if not isinstance(p.buffer, cl_tools.PooledBuffer):
        return (
            "wraps memory netcl did not allocate (a pyopencl Buffer from another "
            "framework), which the optimizer must not move"
        )
    return None


class BucketViews(NamedTuple):
    """1-D views over one range of a bucket: its params, its grads, and each state buffer."""

    param: Tensor
    grad: Tensor
    state: dict[str, Tensor]


@dataclass(eq=False)
class FlatBucket:
    """Parameters of one dtype and device in one param group, laid out end to end.

    See the module docstring for what a bucket exposes.

    >>> import numpy as np
    >>> from netcl.core.tensor import Parameter, from_numpy
    >>> from netcl.optim import Adam
    >>> a, b = (Parameter(from_numpy(np.ones(n, np.float32))) for n in (3, 5))
    >>> (bucket,) = Adam([a, b]).flat_layout.buckets
    >>> bucket.starts, bucket.sizes, bucket.total, a.buffer is bucket.param_flat.buffer
    ([0, 3], [3, 5], 8, True)
    """

    params: list[Tensor]
    starts: list[int]
    total: int
    param_flat: Tensor
    grad_flat: Tensor
    grad_homes: list[Tensor]
    state_flats: dict[str, Tensor] = field(default_factory=dict)
    #: Each state buffer's shape and dtype per parameter (float32 and the parameter's
    #: shape unless the algorithm keeps another kind: 8-bit Adam's codes and block scales).
    spec: StateSpec = elementwise_state
    #: Each parameter's absolute element offset in ``param_flat.buffer``.
    param_offsets: list[int] = field(init=False)
    _state_starts: dict[str, list[int]] = field(default_factory=dict)
    _state_views: dict[tuple[str, int], Tensor] = field(default_factory=dict)
    _range_views: dict[tuple[int, int], tuple[Tensor, Tensor]] = field(default_factory=dict)
    _range_states: dict[tuple[str, int, int], Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.param_offsets = [self.param_flat.offset + start for start in self.starts]

    @property
    def device(self) -> Device:
        return self.param_flat.device

    @property
    def sizes(self) -> list[int]:
        """Each parameter's element count."""
        return [p.size for p in self.params]

    def state_starts(self, name: str) -> list[int]:
        """Where each parameter's state ``name`` starts in ``state_flat(name)``, and (last)
        its size: ``starts`` and ``total`` for state shaped like the parameters."""
        starts = self._state_starts.get(name)
        if starts is None:
            starts = [0]
            for p in self.params:
                shape, _ = self.spec(name, p.shape)
                starts.append(starts[-1] + int(np.prod(shape, dtype=np.int64)))
            self._state_starts[name] = starts
        return starts

    def state_flat(self, name: str) -> Tensor:
        """The buffer for state ``name`` (float32 unless ``spec`` says otherwise), zero-filled
        when first asked for."""
        flat = self.state_flats.get(name)
        if flat is None:
            _, dtype = self.spec(name, ())
            flat = zeros((self.state_starts(name)[-1],), dtype, device=self.device)
            self.state_flats[name] = flat
        return flat

    def state_view(self, name: str, index: int) -> Tensor:
        """Parameter ``index``'s state ``name``: a view of ``state_flat(name)`` in its shape.

        The same Tensor object every time, so a loaded state dict lands in the views
        an earlier ``optimizer.state[p]`` handed out.
        """
        view = self._state_views.get((name, index))
        if view is None:
            flat = self.state_flat(name)
            shape, dtype = self.spec(name, self.params[index].shape)
            view = Tensor(flat.buffer, shape, dtype, self.device,
                          offset=flat.offset + self.state_starts(name)[index])
            self._state_views[(name, index)] = view
        return view

    def views(self, start: int, stop: int, names: Iterable[str]) -> BucketViews:
        """Views over parameters ``start`` to ``stop - 1`` (cached: a step asks each time)."""
        if len(self._range_views) > _VIEW_CACHE_LIMIT:
            self._range_views.clear()
            self._range_states.clear()
        first = self.starts[start]
        last = self.starts[stop] if stop < len(self.params) else self.total
        pair = self._range_views.get((start, stop))
        if pair is None:
            pair = (_span(self.param_flat, first, last), _span(self.grad_flat, first, last))
            self._range_views[(start, stop)] = pair
        state: dict[str, Tensor] = {}
        for name in names:
            view = self._range_states.get((name, start, stop))
            if view is None:
                starts = self.state_starts(name)
                view = _span(self.state_flat(name), starts[start], starts[stop])
                self._range_states[(name, start, stop)] = view
            state[name] = view
        return BucketViews(pair[0], pair[1], state)

    def element_views(self, first: int, stop: int, names: Iterable[str]) -> BucketViews:
        """Views over elements ``first`` to ``stop - 1`` of the bucket, whatever parameters
        they cut through (a shard); new views each call. Only for state shaped like the
        parameters (an algorithm that ``shards_elementwise``)."""
        if not 0 <= first <= stop <= self.total:
            raise ValueError(
                f"element_views: [{first}, {stop}) is not a range of a bucket of {self.total}"
            )
        state = {name: _span(self.state_flat(name), first, stop) for name in names}
        return BucketViews(_span(self.param_flat, first, stop),
                           _span(self.grad_flat, first, stop), state)

    def load_state(self, name: str, host: np.ndarray[Any, Any]) -> None:
        """Replace state ``name`` of the whole bucket by ``host`` (its dtype and size), in place."""
        flat = self.state_flats.get(name)
        if flat is None:
            self.state_flats[name] = from_numpy(host, self.device)
        elif flat.size:
            _write(flat, host)

    def state_images(self, loaded: Mapping[int, HostArrays]) -> HostArrays:
        """Host images of the state buffers after a load: ``loaded[i][name]`` at parameter
        i's range, zeros for every parameter without loaded state (so a parameter whose
        state is created later starts from zero, as a fresh one does)."""
        names = set(self.state_flats)
        for arrays in loaded.values():
            names.update(arrays)
        images: HostArrays = {}
        for name in sorted(names):
            starts = self.state_starts(name)
            image = np.zeros(starts[-1], self.spec(name, ())[1])
            for index, arrays in loaded.items():
                if name in arrays:
                    image[starts[index]:starts[index + 1]] = arrays[name].reshape(-1)
            images[name] = image
        return images


class Placement(NamedTuple):
    """Where a parameter sits in the flat layout: its bucket and its position there."""

    bucket: FlatBucket
    position: int


# -- one group's step: its launches -------------------------------------------------------------
@dataclass(eq=False)
class SeparateUpdate:
    """A parameter stepped by a launch of its own (outside any bucket, or with a grad
    stored elsewhere), its grad and its state (``created``: made for this step)."""

    param: Tensor
    grad: Tensor
    state: ParamState
    created: bool


@dataclass(eq=False)
class RangeUpdate:
    """Parameters ``start`` to ``stop - 1`` of ``bucket``, stepped by one launch.

    Every member has step count ``step`` and state made for this step or not
    (``created``), so one set of kernel scalars serves them all; ``states`` are
    the members' states, in bucket order.
    """

    bucket: FlatBucket
    start: int
    stop: int
    step: float | None
    created: bool
    states: list[ParamState]


@dataclass
class GroupLaunches:
    """One group's step: each separate update is a launch, and so is each range."""

    separate: list[SeparateUpdate] = field(default_factory=list)
    ranges: list[RangeUpdate] = field(default_factory=list)

    def states(self) -> list[ParamState]:
        return [u.state for u in self.separate] + [st for r in self.ranges for st in r.states]

    def created(self) -> list[tuple[Tensor, ParamState]]:
        """The parameters whose state was made for this step, with that state."""
        made = [(u.param, u.state) for u in self.separate if u.created]
        for r in self.ranges:
            if r.created:
                made += zip(r.bucket.params[r.start:r.stop], r.states, strict=True)
        return made


@dataclass
class StepBatch:
    """What an algorithm's ``_update`` launches for one group: entry i is one launch, over
    a parameter or over a range of a bucket (one 1-D view of many parameters)."""

    params: list[Tensor] = field(default_factory=list)
    grads: list[Tensor] = field(default_factory=list)
    states: list[dict[str, Tensor]] = field(default_factory=list)
    #: Each entry's step count (0 for optimizers that count none).
    steps: list[float] = field(default_factory=list)
    #: Whether each entry's state was made for this step.
    first_steps: list[bool] = field(default_factory=list)
    #: The element counts of the parameters each entry covers, in order (one for a
    #: parameter stepped alone): for state kept per parameter block (8-bit Adam's).
    sizes: list[list[int]] = field(default_factory=list)
    #: The state each entry's step count is read from (a range's first member's).
    counters: list[ParamState] = field(default_factory=list)
    #: The group's hyperparameters and ``steps`` as a replay re-reads them: set only while
    #: a capture records (see ``optimizer.GroupStep``); eager steps pass plain values.
    live: LiveGroup | None = None
    #: A GradScaler's buffers, for algorithms that take them (set by the step).
    grad_scaling: GradScaling | None = None
    #: (parameter, contiguous copy stepped in its place): the kernels take contiguous
    #: memory, so a strided parameter is stepped in a copy that ``write_back`` returns.
    staged: list[tuple[Tensor, Tensor]] = field(default_factory=list)

    def state(self, name: str) -> list[Tensor]:
        """Every entry's state buffer ``name``, in launch order."""
        return [state[name] for state in self.states]

    def named(self, fields: type[NamedStateT]) -> NamedStateT:
        """The state as an algorithm's NamedTuple (``AdamState``): each field the list of
        every entry's buffer of that name, or the field's default where there is none."""
        present = self.states[0] if self.states else {}
        return fields._make(self.state(name) if name in present else fields._field_defaults[name]
                            for name in fields._fields)

    def add(self, param: Tensor, grad: Tensor, state: dict[str, Tensor], counter: ParamState,
            first_step: bool, sizes: list[int]) -> None:
        self.params.append(param)
        self.sizes.append(sizes)
        self.grads.append(grad)
        self.states.append(state)
        self.steps.append(counter.step or 0.0)
        self.first_steps.append(first_step)
        self.counters.append(counter)

    def write_back(self) -> None:
        """Copy each staged parameter's new values into the strided parameter it stands for."""
        with recorder.recording(None):  # an optimizer's update is no op of the model
            for param, staged in self.staged:
                param.copy_(staged)


class FlatLayout:
    """Every bucket of one optimizer, where each parameter sits, and how a group steps.

    ``buckets`` lists the live buckets; ``placement(p)`` says where ``p`` sits.
    """

    def __init__(self, spec: StateSpec = elementwise_state) -> None:
        #: Each state buffer's shape and dtype (see :class:`FlatBucket`'s ``spec``).
        self.spec = spec
        self.buckets: list[FlatBucket] = []
        self._placements: dict[Tensor, Placement] = {}

    def placement(self, p: Tensor) -> Placement | None:
        """``p``'s bucket and index, or None when it is stepped on its own."""
        return self._placements.get(p)

    def arrange(self, params: Sequence[Tensor], states: Mapping[Tensor, ParamState]) -> None:
        """Lay out the movable ones of ``params`` (one group) in a bucket per dtype and device.

        Buckets of a single parameter are not made: its own memory is already one
        range, so its own launch is the fused launch. A parameter that had a bucket
        before (its group added again) brings its state from ``states`` along.
        """
        by_kind: dict[tuple[Any, Device], list[Tensor]] = {}
        for p in params:
            if unmovable_reason(p) is None:
                by_kind.setdefault((p.dtype, p.device), []).append(p)
        for members in by_kind.values():
            if len(members) < 2:
                continue
            bucket = _bucket(members, self.spec)
            self.buckets.append(bucket)
            for index, p in enumerate(bucket.params):
                self._placements[p] = Placement(bucket, index)
                st = states.get(p)
                if st is None:
                    continue
                for name, buffer in st.buffers.items():
                    view = bucket.state_view(name, index)
                    view.copy_(buffer)
                    st.buffers[name] = view
        # A bucket whose every parameter moved on steps nothing any more.
        self.buckets = [
            b for b in self.buckets if any(self._placements[p].bucket is b for p in b.params)
        ]

    def group_launches(
        self,
        params: Iterable[Tensor],
        states: Mapping[Tensor, ParamState],
        new_state: Callable[[], ParamState],
        check_grad: Callable[[Tensor, Tensor], None],
    ) -> GroupLaunches:
        """The launches that step ``params`` (one group, in order); changes nothing.

        A parameter steps when it is a leaf with a grad (PyTorch skips the rest).
        One of a bucket whose grad is its grad home, and which still lives at its
        place in the bucket, joins a range: adjacent parameters of one bucket with
        the same step count (and both new, or both old, state). When every
        parameter of a bucket has its grad and one step count, that is one launch
        for the bucket. Anything else is a separate update, its grad checked by
        ``check_grad`` (which raises). New states are made but not stored, so a bad
        grad in a later group leaves every group as it was.

        Per parameter this is a few attribute reads and dict lookups, with no object
        made for a range member: a step over a model of hundreds of tensors must cost
        far less host time than its one launch.
        """
        out = GroupLaunches()
        open_ranges: dict[int, RangeUpdate] = {}
        for p in params:
            grad = p.grad
            if grad is None or not p.is_leaf:
                continue
            st = states.get(p)
            created = st is None
            if st is None:
                st = new_state()
            placed = self._placements.get(p)
            if placed is not None:
                bucket, index = placed
                # Its grad is its home and it still lives in the bucket (nobody rebound it).
                if (
                    grad is bucket.grad_homes[index]
                    and p.buffer is bucket.param_flat.buffer
                    and p.offset == bucket.param_offsets[index]
                ):
                    open_range = open_ranges.get(id(bucket))
                    if (
                        open_range is not None and open_range.stop == index
                        and open_range.step == st.step and open_range.created == created
                        and (open_range.states[0].scalars is st.scalars
                             or open_range.states[0].scalars == st.scalars)
                    ):
                        open_range.stop = index + 1
                        open_range.states.append(st)
                        continue
                    open_range = RangeUpdate(bucket, index, index + 1, st.step, created, [st])
                    open_ranges[id(bucket)] = open_range
                    out.ranges.append(open_range)
                    continue
            check_grad(p, grad)
            out.separate.append(SeparateUpdate(p, grad, st, created))
        return out

    def batch(
        self, launches: GroupLaunches, names: Sequence[str],
        initial: Callable[[str], float] = lambda name: 0.0, master_weights: bool = False,
    ) -> StepBatch:
        """The StepBatch of ``launches`` (step counts already advanced), after making every
        state buffer ``names`` it lacks: filled with ``initial(name)`` (zero unless the
        algorithm says otherwise), a view of the bucket's where it has one.

        With ``master_weights``, a 16-bit parameter also keeps ``MASTER`` (a float32 copy,
        made from the parameter when missing), and its entry is the parameter
        :func:`~netcl.optim.functional.with_master` that copy: the kernel steps the master.
        """
        batch = StepBatch()
        for u in launches.separate:
            param, grad = u.param, u.grad
            with recorder.recording(None):
                if not param.is_contiguous:
                    param = param.contiguous()
                    batch.staged.append((u.param, param))
                grad = grad.contiguous()
            for name in names:
                if name not in u.state.buffers:
                    u.state.buffers[name] = self.new_state_tensor(u.param, name, initial(name))
            if master_weights and param.dtype != float32:
                if MASTER not in u.state.buffers:
                    u.state.buffers[MASTER] = self.new_state_tensor(u.param, MASTER).copy_(
                        param.astype(float32))
                param = with_master(param, u.state.buffers[MASTER])
            batch.add(param, grad, u.state.buffers, u.state, u.created, [param.size])
        for r in launches.ranges:
            mastered = master_weights and r.bucket.param_flat.dtype != float32
            views = r.bucket.views(r.start, r.stop, (*names, MASTER) if mastered else names)
            if r.created:  # one fill per name sets the whole range's fresh state
                for name, flat_state in views.state.items():
                    if name == MASTER:
                        flat_state.copy_(views.param.astype(float32))
                    else:
                        flat_state.fill_(initial(name))
            for index, st in enumerate(r.states, r.start):
                for name in names:
                    if name not in st.buffers:
                        view = r.bucket.state_view(name, index)
                        st.buffers[name] = view if r.created else view.fill_(initial(name))
                if mastered and MASTER not in st.buffers:
                    view = r.bucket.state_view(MASTER, index)
                    if not r.created:  # a loaded state without a master: start from p
                        view.copy_(r.bucket.params[index].astype(float32))
                    st.buffers[MASTER] = view
            # One launch for the whole range: views of it, its members' common step.
            param = with_master(views.param, views.state[MASTER]) if mastered else views.param
            batch.add(param, views.grad, views.state, r.states[0], r.created,
                      r.bucket.sizes[r.start:r.stop])
        return batch

    def new_state_tensor(self, p: Tensor, name: str, value: float = 0.0) -> Tensor:
        """A state buffer for ``p`` (shape and dtype from ``spec``) filled with ``value``: its
        view of the flat state
        if it has a place.

        The view is filled: its range may hold the state of an earlier life
        (``optimizer.state`` cleared, a state dict loaded without this parameter).
        """
        placed = self._placements.get(p)
        if placed is None:
            shape, dtype = self.spec(name, p.shape)
            fresh = zeros(shape, dtype, device=p.device)
            return fresh.fill_(value) if value else fresh
        return placed.bucket.state_view(name, placed.position).fill_(value)

    def zero_grads_in_homes(self) -> set[int]:
        """Zero, one fill per bucket, every bucket whose grads all sit in their homes;
        returns the ``id``\\ s of the parameters whose grads that zeroed."""
        zeroed: set[int] = set()
        for bucket in self.buckets:
            homes = zip(bucket.params, bucket.grad_homes, strict=True)
            if all(p.grad is home for p, home in homes):
                bucket.grad_flat.zero_()
                zeroed.update(id(p) for p in bucket.params)
        return zeroed

    def load(
        self, loaded: Mapping[Tensor, tuple[float | None, dict[str, float], HostArrays]]
    ) -> dict[Tensor, ParamState]:
        """Each loaded parameter's new state: for a placed parameter, views of its bucket's
        state buffers, every bucket's buffers overwritten (zeros where nothing was
        loaded); for any other, new device copies."""
        by_bucket: dict[FlatBucket, dict[int, HostArrays]] = {}
        for p, (_, _, arrays) in loaded.items():
            placed = self._placements.get(p)
            if placed is not None:
                by_bucket.setdefault(placed.bucket, {})[placed.position] = arrays
        for bucket in self.buckets:
            for name, image in bucket.state_images(by_bucket.get(bucket, {})).items():
                bucket.load_state(name, image)
        states: dict[Tensor, ParamState] = {}
        for p, (step, scalars, arrays) in loaded.items():
            placed = self._placements.get(p)
            if placed is None:
                buffers = {name: from_numpy(a, p.device) for name, a in arrays.items()}
            else:
                buffers = {name: placed.bucket.state_view(name, placed.position) for name in arrays}
            states[p] = ParamState(buffers, step, scalars)
        return states


def _bucket(params: list[Tensor], spec: StateSpec) -> FlatBucket:
    starts: list[int] = []
    total = 0
    for p in params:
        starts.append(total)
        total += p.size
    first = params[0]
    param_flat = _view_if_tiled([(p.buffer, p.offset, p.size) for p in params], first, total)
    if param_flat is None:
        param_flat = empty((total,), first.dtype, first.device)
        for p, start in zip(params, starts, strict=True):
            _copy_into(param_flat, start, p)
            p.buffer, p.offset = param_flat.buffer, param_flat.offset + start
            p.strides = contiguous_strides(p.shape)
    homes = [p.grad_home for p in params]
    if all(home is not None for home in homes):
        placed = [(h.buffer, h.offset, h.size) for h in homes if h is not None]
        grad_flat = _view_if_tiled(placed, first, total)
        if grad_flat is not None:
            # Keep the homes themselves: a step recognises a grad in place by identity,
            # so new home objects would push the other optimizer onto its slow path.
            return FlatBucket(params, starts, total, param_flat, grad_flat,
                              [h for h in homes if h is not None], spec=spec)
    # Uninitialised: a range is read only after its parameter's grad was stored there.
    grad_flat = empty((total,), first.dtype, first.device)
    grad_homes = []
    for p, start in zip(params, starts, strict=True):
        home = Tensor(grad_flat.buffer, p.shape, p.dtype, p.device,
                      offset=grad_flat.offset + start)
        p.set_grad_home(home)  # copies a grad p already has
        grad_homes.append(home)
    return FlatBucket(params, starts, total, param_flat, grad_flat, grad_homes, spec=spec)


def _view_if_tiled(
    ranges: Sequence[tuple[Any, int, int]], like: Tensor, total: int
) -> Tensor | None:
    """A flat view when ``ranges`` (buffer, offset, size) already tile one buffer in
    order (a second optimizer over arranged parameters, or a model's own flat
    storage), so nothing is copied; else None."""
    buffer, offset = ranges[0][0], ranges[0][1]
    at = offset
    for other_buffer, other_offset, size in ranges:
        if other_buffer is not buffer or other_offset != at:
            return None
        at += size
    return Tensor(buffer, (total,), like.dtype, like.device, offset=offset)


def _span(flat: Tensor, first: int, stop: int) -> Tensor:
    """Elements ``first:stop`` of 1-D ``flat`` (``flat`` itself when that is all of it)."""
    if first == 0 and stop == flat.size:
        return flat
    return Tensor(flat.buffer, (stop - first,), flat.dtype, flat.device,
                  offset=flat.offset + first)


def _copy_into(flat: Tensor, start: int, p: Tensor) -> None:
    """Enqueue a device copy of contiguous ``p`` into ``flat`` from element ``start``."""
    if not p.size:
        return
    itemsize = p.itemsize
    transfer(
        flat.queue, flat.buffer, p.buffer, byte_count=p.size * itemsize,
        src_offset=p.offset * itemsize, dst_offset=(flat.offset + start) * itemsize,
    )


def _write(view: Tensor, host: np.ndarray[Any, Any]) -> None:
    """Copy contiguous ``host`` into contiguous ``view`` (blocking: the caller may drop it)."""
    transfer(
        view.queue, view.buffer, np.ascontiguousarray(host, view.dtype),
        dst_offset=view.offset * view.itemsize, is_blocking=True,
    )
