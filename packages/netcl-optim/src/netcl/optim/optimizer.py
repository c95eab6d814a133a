"""Optimizer: what every netcl optimizer shares (param groups, lazy state, state dicts).

An algorithm is a small subclass: it validates its hyperparameters
(``check_group``), names its state buffers (``state_keys``) and applies one
step to a group through its functional form (``_update``). Everything else
lives here once, with PyTorch's behaviour: ``torch/optim/optimizer.py`` is the
reference for the contract, not for the code.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple, TypeAlias

from netcl.core.tensor import Tensor, float16, float32, from_numpy, zeros
from netcl.optim import flat, ownership, step_plan
from netcl.optim.state_dict import pack_state, unpack_groups, unpack_state
from netcl.optim.step_plan import Plan, Slot

ParamGroup: TypeAlias = dict[str, Any]
ParamsLike: TypeAlias = "Iterable[Tensor] | Iterable[Mapping[str, Any]]"


@dataclass
class ParamState:
    """One parameter's state: float32 buffers on the parameter's device, and its step count.

    ``state[p]["exp_avg"]`` and ``state[p]["step"]`` read as in PyTorch. ``step``
    is None for optimizers that count no steps (SGD, Momentum).
    """

    buffers: dict[str, Tensor] = field(default_factory=dict)
    step: float | None = None

    def __getitem__(self, key: str) -> Tensor | float:
        if key == "step" and self.step is not None:
            return self.step
        return self.buffers[key]

    def __contains__(self, key: object) -> bool:
        return (key == "step" and self.step is not None) or key in self.buffers

    def keys(self) -> list[str]:
        return (["step"] if self.step is not None else []) + list(self.buffers)


class StepBatch(NamedTuple):
    """One step's launches for a group, entry i one launch: a parameter (or a run of a flat
    bucket, as one 1-D view), its grad, its state and whether that state was just created."""

    params: list[Tensor]
    grads: list[Tensor]
    states: list[ParamState]
    first_steps: list[bool]


class Optimizer(abc.ABC):
    """Base class: holds ``param_groups``, ``defaults`` and per-parameter ``state``.

    Args:
        params: an iterable of Tensors, or of dicts each with ``"params"`` (a
            list of Tensors) and any hyperparameters that override ``defaults``
            for that group.
        defaults: every hyperparameter with its default value.
        allow_shared: let a parameter that another live optimizer holds join
            this one (refused by default: both would step it).
        fused: None (the default) updates the parameters of each param group
            that share a dtype and device with one kernel launch per step,
            through a flat layout (see :mod:`netcl.optim.flat`) made here, at
            construction; parameters that cannot be moved into one (not
            contiguous, or another framework's memory) are stepped one by
            one. True: the same, but such a parameter is an error. False: one
            launch per parameter, nothing moved (the reference path).

    ``step()`` updates every parameter that has a ``grad`` and is a leaf; the
    rest are skipped. State is created on a parameter's first step: float32
    buffers on its device whatever its dtype, and its own step count, so a
    parameter whose first gradient arrives late starts bias correction at 1.

    The flat layout moves parameters: the same Tensor objects are rebound to
    views of one buffer, so a model's references keep working, but a view of
    a parameter taken *before* the optimizer was built keeps the old memory
    and no longer aliases it. Both paths compute the same per-element update
    with the same kernel; their results are bit-identical.
    """

    #: Whether each parameter's state counts its steps (``"step"`` in the state dict).
    counts_steps: ClassVar[bool] = True

    def __init__(
        self,
        params: ParamsLike,
        defaults: Mapping[str, Any],
        *,
        allow_shared: bool = False,
        fused: bool | None = None,
    ) -> None:
        if fused is not None and not isinstance(fused, bool):
            raise ValueError(
                f"{type(self).__name__}: invalid fused: {fused!r} (expected True, False or None)"
            )
        self.defaults: dict[str, Any] = dict(defaults)
        self.state: dict[Tensor, ParamState] = {}
        self.param_groups: list[ParamGroup] = []
        self.allow_shared = allow_shared
        self.fused = fused
        # Where each arranged parameter sits in the flat layout, and every bucket.
        self._slots: dict[Tensor, Slot] = {}
        self._buckets: list[flat.FlatBucket] = []
        # The defaults themselves, as PyTorch does: a bad default that every group
        # overrides would otherwise surface only at a later add_param_group.
        self.check_group(self.defaults, type(self).__name__)
        groups = self._groups_from(params)
        checked = [self._checked_group(group, i, len(groups)) for i, group in enumerate(groups)]
        self._check_duplicates(checked)
        self._check_fusable(checked, len(self.param_groups))
        ownership.claim([p for g in checked for p in g["params"]], self, allow_shared)
        self.param_groups.extend(checked)
        for group in checked:
            self._arrange(group)

    # -- what a subclass provides ----------------------------------------------------------
    @abc.abstractmethod
    def check_group(self, group: Mapping[str, Any], owner: str) -> None:
        """Raise ValueError, naming ``owner``, for any bad hyperparameter in ``group``."""

    def state_keys(self, group: Mapping[str, Any]) -> tuple[str, ...]:
        """The float32 buffers a parameter of ``group`` keeps (PyTorch's names)."""
        return ()

    @abc.abstractmethod
    def _update(self, group: ParamGroup, batch: StepBatch) -> None:
        """Apply one step to ``batch`` (one kernel launch per entry) of ``group``."""

    # -- groups --------------------------------------------------------------------------
    def add_param_group(self, param_group: Mapping[str, Any]) -> None:
        """Add a group; hyperparameters it does not give come from ``defaults``."""
        group = self._checked_group(param_group, len(self.param_groups), None)
        self._check_duplicates([group])
        self._check_fusable([group], len(self.param_groups))
        ownership.claim(group["params"], self, self.allow_shared)
        self.param_groups.append(group)
        self._arrange(group)

    def _groups_from(self, params: ParamsLike) -> list[Mapping[str, Any]]:
        name = type(self).__name__
        if isinstance(params, Tensor):
            raise TypeError(
                f"{name}: params must be an iterable of Tensors or of param-group dicts, "
                "got one Tensor; pass [tensor]"
            )
        try:
            items = list(params)
        except TypeError:
            raise TypeError(
                f"{name}: params must be an iterable of Tensors or of param-group dicts, "
                f"got {type(params).__name__}"
            ) from None
        if not items:
            raise ValueError(f"{name}: got an empty parameter list")
        if all(isinstance(item, Mapping) for item in items):
            return items  # type: ignore[return-value]
        if any(isinstance(item, Mapping) for item in items):
            raise TypeError(f"{name}: params mixes Tensors and param-group dicts")
        return [{"params": items}]

    def _checked_group(
        self, group: object, index: int, count: int | None
    ) -> ParamGroup:
        """``group`` with defaults filled in, its params a list of float Tensors, all checked."""
        name = type(self).__name__
        where = name if count == 1 else f"{name} param group {index}"
        if not isinstance(group, Mapping):
            raise TypeError(f"{where}: a param group is a dict, got {type(group).__name__}")
        if "params" not in group:
            raise ValueError(f"{where}: the group has no 'params'")
        params = group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set | frozenset):
            raise TypeError(f"{where}: params must be an ordered sequence, not a set")
        else:
            params = list(params)
        if not params:
            raise ValueError(f"{where}: got an empty parameter list")
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"{where}: params[{i}] is a {type(p).__name__}, not a Tensor")
            if p.dtype not in (float32, float16):
                raise TypeError(
                    f"{where}: params[{i}] has dtype {p.dtype}; optimizers take float32 or "
                    "float16 parameters"
                )
        checked: ParamGroup = {**self.defaults, **group, "params": params}
        self.check_group(checked, where)
        return checked

    def _check_duplicates(self, new_groups: Sequence[ParamGroup]) -> None:
        # ids are stable here: every parameter is referenced by a group.
        seen = {id(p) for group in self.param_groups for p in group["params"]}
        for g, group in enumerate(new_groups):
            for i, p in enumerate(group["params"]):
                if id(p) in seen:
                    raise ValueError(
                        f"{type(self).__name__}: parameter {i} of param group "
                        f"{len(self.param_groups) + g} (shape {p.shape}) appears more than "
                        "once in this optimizer; it would be stepped twice"
                    )
                seen.add(id(p))

    # -- the flat layout ----------------------------------------------------------------
    def _check_fusable(self, groups: Sequence[ParamGroup], first_index: int) -> None:
        """With ``fused=True``, refuse (before anything moves) a parameter that cannot be moved."""
        if self.fused is not True:
            return
        for g, group in enumerate(groups):
            for i, p in enumerate(group["params"]):
                reason = flat.unmovable_reason(p)
                if reason is not None:
                    raise ValueError(
                        f"{type(self).__name__}(fused=True): parameter {i} of param group "
                        f"{first_index + g} (shape {p.shape}) {reason}; it cannot join the "
                        "flat layout. Pass fused=None to step such parameters one by one."
                    )

    def _arrange(self, group: ParamGroup) -> None:
        """Lay the group's movable parameters out flat (unless ``fused=False``)."""
        if self.fused is False:
            return
        movable = [p for p in group["params"] if flat.unmovable_reason(p) is None]
        for bucket in flat.arrange(movable):
            self._buckets.append(bucket)
            for index, p in enumerate(bucket.params):
                self._slots[p] = Slot(bucket, index)
                # A parameter re-added after steps brings its state into the new bucket.
                st = self.state.get(p)
                if st is None:
                    continue
                for key, buffer in st.buffers.items():
                    view = bucket.state_view(key, index)
                    view.copy_(buffer)
                    st.buffers[key] = view
        # A bucket whose every parameter moved on steps nothing any more.
        self._buckets = [
            b for b in self._buckets
            if any(self._slots[p].bucket is b for p in b.params)
        ]

    def _state_tensor(self, p: Tensor, key: str) -> Tensor:
        """A zero float32 state buffer for ``p``: its view of the flat state if it has a slot.

        The view is zeroed: its range may hold the state of an earlier life
        (``optimizer.state`` cleared, a state dict loaded without this parameter).
        """
        slot = self._slots.get(p)
        if slot is None:
            return zeros(p.shape, float32, device=p.device)
        return slot.bucket.state_view(key, slot.position).fill_(0.0)

    # -- stepping ------------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop every parameter's grad (``set_to_none``) or fill it with zeros.

        A parameter whose grad is None keeps None either way (PyTorch's rule). With
        a flat layout, dropped grads come back into their home on the next
        assignment, and a bucket whose every grad is in its home is zeroed by one fill.
        """
        zeroed: set[int] = set()
        if not set_to_none:
            for bucket in self._buckets:
                homes = zip(bucket.params, bucket.grad_homes, strict=True)
                if all(p.grad is home for p, home in homes):
                    bucket.grad_flat.zero_()
                    zeroed.update(id(p) for p in bucket.params)
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None and id(p) not in zeroed:
                    p.grad.zero_()

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter with a grad; returns ``closure()``'s value if given.

        ``closure`` re-evaluates the model and its gradients (it runs first, so
        the update uses the grads it leaves).
        """
        loss = closure() if closure is not None else None
        # Check every group before touching any, so bad grads leave everything as it was.
        plans = [
            step_plan.plan(group["params"], self.state, self._slots, self._new_state,
                           self._check_grad)
            for group in self.param_groups
        ]
        for group, plan in zip(self.param_groups, plans, strict=True):
            self._apply(group, plan)
        return loss

    def _new_state(self) -> ParamState:
        return ParamState(step=0.0 if self.counts_steps else None)

    def _check_grad(self, p: Tensor, grad: Tensor) -> None:
        """Raise ValueError unless ``grad`` fits ``p`` (shape, dtype, OpenCL context) and both
        are contiguous: everything the kernels' launch would refuse, found before any launch."""
        if grad.shape != p.shape or grad.dtype != p.dtype:
            raise ValueError(
                f"{type(self).__name__}.step: a parameter of shape {p.shape} and dtype "
                f"{p.dtype} has a grad of shape {grad.shape} and dtype {grad.dtype}"
            )
        if grad.device.context != p.device.context:
            raise ValueError(
                f"{type(self).__name__}.step: a parameter of shape {p.shape} on "
                f"{p.device.name} has a grad in another OpenCL context ({grad.device.name})"
            )
        if not (p.is_contiguous and grad.is_contiguous):
            raise ValueError(
                f"{type(self).__name__}.step: parameters and grads must be contiguous "
                f"(shape {p.shape}: strides {p.strides}, grad strides {grad.strides})"
            )

    def _apply(self, group: ParamGroup, plan: Plan) -> None:
        """Create missing state, count the step and launch: one per loose entry and per run."""
        if not plan.loose and not plan.runs:
            return
        keys = self.state_keys(group)
        for entry in plan.loose:
            for key in keys:
                if key not in entry.state.buffers:
                    entry.state.buffers[key] = self._state_tensor(entry.param, key)
        for run in plan.runs:
            if run.created:  # one fill per key zeroes the whole run's fresh state
                for flat_state in run.bucket.run_views(run.start, run.stop, keys).state.values():
                    flat_state.fill_(0.0)
            for index, st in enumerate(run.states, run.start):
                for key in keys:
                    if key not in st.buffers:
                        view = run.bucket.state_view(key, index)
                        st.buffers[key] = view if run.created else view.fill_(0.0)
        states = plan.states()
        if self.counts_steps:
            for st in states:
                st.step = (st.step or 0.0) + 1.0
        batch = StepBatch(
            [entry.param for entry in plan.loose], [entry.grad for entry in plan.loose],
            [entry.state for entry in plan.loose], [entry.created for entry in plan.loose],
        )
        for run in plan.runs:
            views = run.bucket.run_views(run.start, run.stop, keys)
            batch.params.append(views.param)
            batch.grads.append(views.grad)
            # One state for the whole run: views of its range, its members' common step.
            batch.states.append(ParamState(views.state, run.states[0].step))
            batch.first_steps.append(run.created)
        try:
            self._update(group, batch)
        except BaseException:
            if self.counts_steps:
                for st in states:
                    st.step = (st.step or 1.0) - 1.0
            raise
        if keys or self.counts_steps:
            for p, st in plan.created():
                self.state[p] = st

    # -- state dicts ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The state as plain data, in PyTorch's layout.

        ``{"state": {index: {"step": float, "exp_avg": ndarray, ...}},
        "param_groups": [{hyperparameters..., "params": [index, ...]}]}``: indices
        count parameters across groups in order; arrays are float32 numpy copies.
        """
        return pack_state(self.param_groups, self.state)

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Take the state and hyperparameters of ``state_dict`` (from any device, or PyTorch).

        Everything is checked before anything changes: a wrong group count,
        group size, shape, key or dtype raises ValueError and leaves this
        optimizer exactly as it was. With a flat layout the values are copied
        into the flat state buffers, so the state tensors handed out before
        stay the live ones; a parameter the state dict has no state for
        starts from zero again, as a fresh one does.
        """
        where = f"{type(self).__name__}.load_state_dict"
        groups, id_map = unpack_groups(state_dict, self.param_groups, self.check_group, where)
        state = unpack_state(
            state_dict, id_map, groups, self.state_keys, self.counts_steps, where
        )
        for group, new in zip(self.param_groups, groups, strict=True):
            group.clear()
            group.update(new)
        # Only now, with everything valid, touch a device.
        in_buckets: dict[flat.FlatBucket, dict[int, dict[str, Any]]] = {}
        for p, (_, arrays) in state.items():
            slot = self._slots.get(p)
            if slot is not None:
                in_buckets.setdefault(slot.bucket, {})[slot.position] = arrays
        for bucket in self._buckets:
            for key, image in flat.stage(bucket, in_buckets.get(bucket, {})).items():
                bucket.load(key, image)
        self.state.clear()
        for p, (step, arrays) in state.items():
            slot = self._slots.get(p)
            if slot is None:
                buffers = {key: from_numpy(a, p.device) for key, a in arrays.items()}
            else:
                buffers = {key: slot.bucket.state_view(key, slot.position) for key in arrays}
            self.state[p] = ParamState(buffers, step)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join([*lines, ")"])
