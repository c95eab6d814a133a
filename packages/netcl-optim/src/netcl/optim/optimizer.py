"""Optimizer: what every netcl optimizer shares (param groups, lazy state, state dicts).

An algorithm is a small subclass: it names its hyperparameter dataclass
(``hyperparameters``, which checks every group and names its state) and
launches one group's step through its functional form (``_update``, which
:meth:`Optimizer.step` and :meth:`Optimizer.step_param` call for each
:class:`GroupStep`).
Everything else lives here once, with PyTorch's behaviour:
``torch/optim/optimizer.py`` is the reference for the contract, not for the code.

Following ``Adam.step()`` to the kernel, each call going down (4 files, 6 hops;
``tests/netcl-optim/test_optim_launch.py`` pins it): ``Adam.step`` (``adam.py``,
written there rather than inherited, so no call goes up into the subclass) takes
each checked group from :meth:`Optimizer._group_steps` and calls ``update_group``
(``adam.py``, which ``Adam._update`` calls too, for ``step_param``) with the
group's hyperparameters as values; it calls
:func:`~netcl.optim.functional.adam_step` (``functional/adam.py``: Adam's host
math), which calls ``launch_step`` (``functional/kernels.py``: the kernel
variant), which calls ``launch``, ``enqueue`` and ``enqueue_prepared``
(``netcl.core.tensor.launch``).
"""

from __future__ import annotations

import abc
import dataclasses
import functools
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, ClassVar, TypeAlias

from netcl.core.tensor import Tensor, bfloat16, float16, float32, ops
from netcl.core.tensor.launch import current_observer, host_effect
from netcl.core.tensor.replay_state import grads_restorer, tensor_guard
from netcl.optim import ownership
from netcl.optim.flat_layout import FlatLayout, GroupLaunches, StepBatch, unmovable_reason
from netcl.optim.functional.kernels import GradScaling, LiveGroup, checked_grad_scaling
from netcl.optim.hyperparameters import Hyperparameters
from netcl.optim.param_state import ParamState
from netcl.optim.state_dict import pack_state, unpack_groups, unpack_state

ParamGroup: TypeAlias = dict[str, Any]
ParamsLike: TypeAlias = "Iterable[Tensor] | Iterable[Mapping[str, Any]]"

# Argument docs every optimizer class shares (joined into each class's docstring).
PARAMS_DOC = """params: Tensors, or param-group dicts (see :class:`Optimizer`)."""
COMMON_ARGS_DOC = """allow_shared: step a parameter together with the optimizers already
            built over it. By default the newest optimizer built over a
            parameter owns it, and an older one that steps it raises.
        fused: None (the default) updates the parameters of each param group
            that share a dtype and device with one kernel launch per step,
            through a flat layout (:mod:`netcl.optim.flat_layout`) made here, at
            construction; parameters that cannot be moved into one (not
            contiguous, or another framework's memory) are stepped one by
            one. True: the same, but such a parameter is an error. False: one
            launch per parameter, nothing moved (the reference path).
        master_weights: True (the default) steps each float16/bfloat16 parameter
            through a float32 master copy kept in its state (``master_param``),
            so an update under half a unit of its dtype is not lost; False
            rounds the parameter at every step and keeps no copy."""


class Optimizer(abc.ABC):
    """Base class: holds ``param_groups``, ``defaults``, per-parameter ``state`` and the
    ``flat_layout``.

    Args:
        params: an iterable of Tensors, or of dicts each with ``"params"`` (a
            list of Tensors) and any hyperparameters that override ``defaults``
            for that group.
        defaults: every hyperparameter with its default value (checked).
        {COMMON_ARGS_DOC}

    ``step()`` updates every parameter that has a ``grad`` and is a leaf; the
    rest are skipped. State is created on a parameter's first step: float32
    buffers on its device whatever its dtype, and its own step count, so a
    parameter whose first gradient arrives late starts bias correction at 1.

    A float16 or bfloat16 parameter also gets a float32 master copy, state
    ``"master_param"`` (made from the parameter on its first step): the step
    kernel updates the master and stores it, rounded, into the parameter, in the
    same launch, so updates smaller than half a unit of the parameter's dtype
    add up instead of being rounded away. PyTorch's optimizers keep no master;
    netcl keeps it per parameter beside ``exp_avg``, so ``state_dict()`` carries
    it (float32, the parameter's shape) and a checkpoint resumes exactly. A
    state dict without it (PyTorch's) loads: the master is made from the
    parameter at the next step. The master is the truth: to change a 16-bit
    parameter outside the optimizer after its first step, also drop or reload
    its master (``load_state_dict``). (Adafactor, whose step is not one kernel,
    keeps none.)

    The flat layout moves parameters: the same Tensor objects are rebound to
    views of one buffer, so a model's references keep working, but a view of
    a parameter taken *before* the optimizer was built keeps the old memory
    and no longer aliases it. Both paths compute the same per-element update
    with the same kernel; their results are bit-identical.

    >>> import numpy as np
    >>> from netcl.core.tensor import Parameter, from_numpy
    >>> from netcl.optim import SGD
    >>> w = Parameter(from_numpy(np.ones(4, np.float32)))
    >>> optimizer = SGD([w], lr=0.5)
    >>> w.grad = from_numpy(np.ones(4, np.float32))
    >>> optimizer.step()
    >>> w.numpy()
    array([0.5, 0.5, 0.5, 0.5], dtype=float32)
    """

    __doc__ = str(__doc__).format(COMMON_ARGS_DOC=COMMON_ARGS_DOC)

    #: The algorithm's hyperparameter dataclass: its defaults, checks and state names.
    hyperparameters: ClassVar[type[Hyperparameters]]
    #: Whether a step over any element range of the flat layout is that range's share of
    #: the whole step (every element-wise algorithm), so the state can be sharded (ZeRO-1).
    #: False for algorithms that need a whole matrix (Muon, Adafactor).
    shards_elementwise: ClassVar[bool] = True
    #: Whether the algorithm's kernel takes a GradScaler's ``grad_scale`` and ``found_inf``
    #: (then ``netcl.amp.GradScaler`` sets them around ``step()``, as PyTorch's does for
    #: its fused optimizers); otherwise the scaler reads found_inf on the host.
    _step_supports_amp_scaling: ClassVar[bool] = False
    #: Whether a float16/bfloat16 parameter can be stepped through a float32 master copy,
    #: state ``"master_param"`` (every algorithm whose step is one element-wise kernel
    #: launch); ``master_weights=False`` turns it off for one optimizer.
    _supports_master_weights: ClassVar[bool] = True

    def __init__(
        self,
        params: ParamsLike,
        defaults: Mapping[str, Any],
        *,
        allow_shared: bool = False,
        fused: bool | None = None,
        master_weights: bool = True,
    ) -> None:
        if fused is not None and not isinstance(fused, bool):
            raise ValueError(
                f"{type(self).__name__}: invalid fused: {fused!r} (expected True, False or None)"
            )
        if not isinstance(master_weights, bool):
            raise ValueError(f"{type(self).__name__}: invalid master_weights: "
                             f"{master_weights!r} (expected True or False)")
        #: Whether 16-bit parameters are stepped through float32 masters (see COMMON_ARGS_DOC).
        self.master_weights = master_weights and self._supports_master_weights
        # The defaults themselves are checked, as PyTorch does: a bad default that every
        # group overrides would otherwise surface only at a later add_param_group.
        self.defaults: dict[str, Any] = {
            **defaults, **self.check_group(defaults, type(self).__name__).as_group()
        }
        self.state: dict[Tensor, ParamState] = {}
        self.param_groups: list[ParamGroup] = []
        self.allow_shared = allow_shared
        self.fused = fused
        state_kinds = self.hyperparameters()  # state shapes and dtypes hang on no group's values
        self.flat_layout = FlatLayout(
            lambda name, shape: (state_kinds.state_shapes(shape).get(name, shape),
                                 state_kinds.state_dtype(name)))
        #: Set by a GradScaler around step(): 0-d float32 device tensors, the scale the
        #: grads carry and the flag its inf/NaN check raised (PyTorch's fused names).
        self.grad_scale: Tensor | None = None
        self.found_inf: Tensor | None = None
        # Steps the kernels skipped on the device (found_inf set), which their bias
        # corrections do not count; made on the first step under a GradScaler.
        self._skipped_steps: Tensor | None = None
        self._ownership_checked = ownership.generation()
        groups = self._groups_from(params)
        checked = [self._checked_group(group, i, len(groups)) for i, group in enumerate(groups)]
        self._check_duplicates(checked)
        self._check_fusable(checked, len(self.param_groups))
        ownership.claim([p for g in checked for p in g["params"]], self, allow_shared)
        self.param_groups.extend(checked)
        for group in checked:
            self._arrange(group)

    @property
    def counts_steps(self) -> bool:
        """Whether each parameter's state counts its steps (``"step"`` in the state dict)."""
        return self.hyperparameters.counts_steps

    def check_group(self, group: Mapping[str, Any], owner: str) -> Hyperparameters:
        """``group``'s hyperparameters, checked: ValueError naming ``owner`` if any is bad."""
        return self.hyperparameters.checked(owner, group)

    @abc.abstractmethod
    def _update(self, hyper: Any, batch: StepBatch) -> None:
        """Launch one step over ``batch`` (one launch per entry) of a group whose checked
        hyperparameters are ``hyper`` (an instance of ``self.hyperparameters``)."""

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

    def _where(self, index: int, count: int | None = None) -> str:
        """How errors name param group ``index`` (just the class when it is the only one)."""
        name = type(self).__name__
        return name if count == 1 else f"{name} param group {index}"

    def _checked_group(
        self, group: object, index: int, count: int | None
    ) -> ParamGroup:
        """``group`` with defaults filled in, its params a list of float Tensors, all checked."""
        where = self._where(index, count)
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
            if p.dtype not in (float32, float16, bfloat16):
                raise TypeError(
                    f"{where}: params[{i}] has dtype {p.dtype}; optimizers take float32, "
                    "float16 or bfloat16 parameters"
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
                reason = unmovable_reason(p)
                if reason is not None:
                    raise ValueError(
                        f"{type(self).__name__}(fused=True): parameter {i} of param group "
                        f"{first_index + g} (shape {p.shape}) {reason}; it cannot join the "
                        "flat layout. Pass fused=None to step such parameters one by one."
                    )

    def _arrange(self, group: ParamGroup) -> None:
        """Lay the group's movable parameters out flat (unless ``fused=False``)."""
        if self.fused is not False:
            self.flat_layout.arrange(group["params"], self.state)

    # -- stepping ------------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop every parameter's grad (``set_to_none``) or fill it with zeros.

        A parameter whose grad is None keeps None either way (PyTorch's rule). With
        a flat layout, dropped grads come back into their home on the next
        assignment, and a bucket whose every grad is in its home is zeroed by one fill.
        """
        zeroed = set() if set_to_none else self.flat_layout.zero_grads_in_homes()
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
        loss = self._begin_step(closure)
        steps = self._group_steps()
        for group_step in steps:
            with group_step as batch:
                self._update(group_step.hyper, batch)
        self._end_step(steps)
        return loss

    def step_param(self, param: Tensor) -> None:
        """Step ``param`` alone (if it has a grad), as :meth:`step` would step it.

        For a caller that learns of gradients one by one
        (:func:`netcl.optim.step_in_backward`); with ``fused=False`` the result is
        bit-identical to a :meth:`step` over every parameter.
        """
        self._check_ownership()
        for index, group in enumerate(self.param_groups):
            if any(p is param for p in group["params"]):
                group_step = GroupStep(self, group, *self._launches(index, group, [param]))
                if group_step.states:  # the parameter has a grad
                    with group_step as batch:
                        self._update(group_step.hyper, batch)
                return
        raise ValueError(
            f"{type(self).__name__}.step_param: the parameter (shape {param.shape}) is in no "
            "param group of this optimizer"
        )

    def _check_ownership(self) -> None:
        if self._ownership_checked != ownership.generation():
            ownership.check_owner(self)  # a newer optimizer may have taken a parameter
            self._ownership_checked = ownership.generation()

    def _begin_step(self, closure: Callable[[], Any] | None) -> Any:
        """What every ``step`` does first: refuse a parameter a newer optimizer took, then
        run ``closure``; returns its value (None without one)."""
        self._check_ownership()
        return closure() if closure is not None else None

    def _group_steps(self) -> list[GroupStep]:
        """Each param group with a grad to step, checked (hyperparameters, grads and any
        GradScaler buffers) before the first launch, so a bad one leaves everything as
        it was."""
        groups = [self._launches(index, group) for index, group in enumerate(self.param_groups)]
        scaling = self._grad_scaling()
        steps = [GroupStep(self, group, hyper, launches, scaling)
                 for group, (hyper, launches) in zip(self.param_groups, groups, strict=True)]
        return [group_step for group_step in steps if group_step.states]

    def _end_step(self, steps: Sequence[GroupStep]) -> None:
        """What every ``step`` does last, after ``steps`` (those of :meth:`_group_steps`)."""
        scaling = steps[0].scaling if steps else None
        if scaling is not None:
            # On the device: a skipped step adds 1, and later steps' bias corrections
            # subtract it. One launch, no host read.
            ops.add_(scaling.skipped_steps, scaling.found_inf)

    def _grad_scaling(self) -> GradScaling | None:
        """The GradScaler buffers set on this optimizer, checked, or None."""
        if self.found_inf is None and self.grad_scale is None:
            return None
        name = type(self).__name__
        if not self._step_supports_amp_scaling:
            raise ValueError(
                f"{name}.step: grad_scale/found_inf are set, but {name} reads no GradScaler "
                "buffers; step it through GradScaler.step(), which checks on the host")
        scaling = checked_grad_scaling(f"{name}.step", self.grad_scale, self.found_inf,
                                       self._skipped_steps)
        assert scaling is not None
        self._skipped_steps = scaling.skipped_steps  # made once, on the first such step
        return scaling

    def _launches(self, index: int, group: ParamGroup, params: Sequence[Tensor] | None = None
                  ) -> tuple[Hyperparameters, GroupLaunches]:
        """Group ``index``'s checked hyperparameters and the launches for ``params`` (all of
        the group's by default); changes nothing."""
        hyper = self.check_group(group, f"{type(self).__name__}.step: param group {index}")
        launches = self.flat_layout.group_launches(
            group["params"] if params is None else params, self.state, self._new_state,
            self._check_grad,
        )
        return hyper, launches

    def _live(self, group: ParamGroup, batch: StepBatch) -> LiveGroup:
        """``group``'s hyperparameters and ``batch``'s step counts as they are when read.

        Not checked again: a replay re-reads them as PyTorch's step reads an edited
        ``param_groups``, trusting the edit.
        """
        # The counters, not the batch: the batch holds this LiveGroup, and a reference
        # cycle would keep the batch's tensors from their pool until a collection.
        counters = batch.counters
        return LiveGroup(
            functools.partial(self._unchecked_hyperparameters, group),
            lambda: [st.step or 0.0 for st in counters],
        )

    def _unchecked_hyperparameters(self, group: ParamGroup) -> Hyperparameters:
        """``group``'s hyperparameters as they are now, trusted (see :meth:`_live`)."""
        names = [f.name for f in dataclasses.fields(self.hyperparameters)]
        return self.hyperparameters(**{name: group[name] for name in names})

    def _advance(self, states: list[ParamState], group: ParamGroup) -> None:
        """Count a step of each of ``states`` and move its ``scalar_state`` on to it."""
        self._count_steps(states, +1.0)
        if self.hyperparameters.scalar_state:
            hyper = self._unchecked_hyperparameters(group)
            # Computed once per distinct (step, numbers): a bucket's members share them. The
            # new dict may be shared too: a state's numbers are replaced, never edited.
            advanced: dict[tuple[Any, ...], dict[str, float]] = {}
            for st in states:
                key = (st.step, *st.scalars.items())
                new = advanced.get(key)
                if new is None:
                    new = advanced[key] = hyper.advance_scalars(st.step or 0.0, st.scalars)
                st.scalars = new

    def _count_steps(self, states: list[ParamState], by: float) -> None:
        if self.counts_steps:
            for st in states:
                st.step = (st.step or 0.0) + by

    def _new_state(self) -> ParamState:
        return ParamState(step=0.0 if self.counts_steps else None,
                          scalars=dict(self.hyperparameters.scalar_state))

    def _check_grad(self, p: Tensor, grad: Tensor) -> None:
        """Raise ValueError unless ``grad`` fits ``p`` (shape, dtype, OpenCL context): everything
        the kernels' launch would refuse, found before any launch. Strided parameters and
        grads are stepped through contiguous copies (``StepBatch.staged``)."""
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

    # -- what netcl.jit checks -----------------------------------------------------------
    def jit_guard(self) -> Hashable:
        """What a captured step (netcl.jit) assumes of this optimizer: its groups' parameters
        (memory, layout, grads) and which state each has, in which memory. Not the
        hyperparameters or step counts: a replay re-reads those (``Live``)."""
        return (self._state_guard(),
                tuple(tensor_guard(p) for g in self.param_groups for p in g["params"]))

    def _state_guard(self) -> Hashable:
        state = self.state
        parts: list[Hashable] = []
        for group in self.param_groups:
            for p in group["params"]:
                st = state.get(p)
                parts.append(None if st is None else (st.step is None, tuple(
                    (name, id(b.buffer), b.offset) for name, b in st.buffers.items())))
        return tuple(parts)

    def jit_exit(self, entry: Hashable) -> Callable[[], None] | None:
        """What a replay does after its launches: give every parameter the grad the
        captured step left it. None (the capture is not kept) if the step created or
        replaced state: a replay would create it again, zeroed, at every step."""
        assert isinstance(entry, tuple)
        if self._state_guard() != entry[0]:
            return None
        return grads_restorer(p for g in self.param_groups for p in g["params"])

    # -- state dicts ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The state as plain data, in PyTorch's layout.

        ``{"state": {index: {"step": float, "exp_avg": ndarray, ...}},
        "param_groups": [{hyperparameters..., "params": [index, ...]}]}``: indices
        count parameters across groups in order; arrays are float32 numpy copies.
        """
        packed = pack_state(self.param_groups, self.state)
        skipped = 0.0 if self._skipped_steps is None else float(self._skipped_steps.item())
        if skipped:
            # The steps the kernels took: a GradScaler's skipped steps are not counted
            # (PyTorch's fused step takes them back off its step tensors too).
            for entry in packed["state"].values():
                if "step" in entry:
                    entry["step"] = max(entry["step"] - skipped, 0.0)
        return packed

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
        groups, id_map = unpack_groups(
            state_dict, self.param_groups, self.check_group, where, self.hyperparameters
        )
        loaded = unpack_state(
            state_dict, id_map, groups,
            lambda group: self.check_group(group, where), self.counts_steps, where,
            tuple(self.hyperparameters.scalar_state), self.master_weights,
        )
        for group, new in zip(self.param_groups, groups, strict=True):
            group.clear()
            group.update(new)
        # Only now, with everything valid, touch a device.
        new_states = self.flat_layout.load(loaded)
        self.state.clear()
        self.state.update(new_states)
        if self._skipped_steps is not None:
            self._skipped_steps.fill_(0.0)  # the loaded steps are the ones taken

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join([*lines, ")"])


class GroupStep:
    """One param group's step, as an algorithm's ``step`` runs it::

        with group_step as batch:
            adam_step(group_step.hyper, batch.params, ...)

    Entering counts the group's steps (the kernels' bias corrections read the new
    count) and gives the :class:`~netcl.optim.flat_layout.StepBatch` to launch
    over; an error inside takes the counts back; leaving keeps the state made for
    this step. Values go down: the kernels' scalars are computed from ``hyper``
    and the counts as they are now. Only a capture (``netcl.jit``, an observer of
    the launches) needs them re-readable, so only then does the batch carry a
    ``LiveGroup``.
    """

    def __init__(self, optimizer: Optimizer, group: ParamGroup, hyper: Any,
                 launches: GroupLaunches, scaling: GradScaling | None = None) -> None:
        self.optimizer = optimizer
        self.group = group
        #: The group's checked hyperparameters (an instance of ``optimizer.hyperparameters``).
        self.hyper = hyper
        self.launches = launches
        self.scaling = scaling
        #: The states of the group's parameters with a grad (none: nothing to step).
        self.states = launches.states()
        self._before: list[Any] = []

    def __enter__(self) -> StepBatch:
        optimizer, hyper, states = self.optimizer, self.hyper, self.states
        # No copies: a state's numbers are replaced by _advance, never edited in place.
        self._before = [st.scalars for st in states] if hyper.scalar_state else []
        # A host effect: a captured step (netcl.jit) counts again at every replay, as
        # does each launch's LiveGroup.
        host_effect(functools.partial(optimizer._advance, states, self.group))
        try:
            batch = optimizer.flat_layout.batch(self.launches, hyper.state_names(),
                                                hyper.initial_value, optimizer.master_weights)
            if current_observer() is not None:
                batch.live = optimizer._live(self.group, batch)
            batch.grad_scaling = self.scaling
        except BaseException:
            self._take_back()
            raise
        self.batch = batch
        return batch

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if kind is not None:
            self._take_back()
            return
        try:
            self.batch.write_back()
        except BaseException:
            self._take_back()
            raise
        optimizer = self.optimizer
        created = self.launches.created()
        # Plain SGD keeps no entry, unless for a 16-bit parameter's master copy.
        if (self.hyper.state_names() or optimizer.counts_steps
                or any(st.buffers for _, st in created)):
            optimizer.state.update(created)

    def _take_back(self) -> None:
        self.optimizer._count_steps(self.states, -1.0)
        for st, scalars in zip(self.states, self._before, strict=False):  # [] without scalars
            st.scalars = scalars
