"""The optimizer step fused into backward: each parameter stepped as its gradient completes.

netcl-optim does not import autograd: the caller hands over the function that
registers a post-accumulate-grad hook (``netcl.autograd.register_post_accumulate_grad_hook``,
or another framework's equivalent), and this module only uses it.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Protocol

from netcl.core.tensor import Tensor
from netcl.optim.optimizer import Optimizer


class Removable(Protocol):
    """What a hook registration returns: ``remove()`` unregisters the hook."""

    def remove(self) -> None: ...


RegisterHook = Callable[[Tensor, Callable[[Tensor], None]], Removable]

# Parameters currently stepped in backward, by id (a weakref.finalize per entry drops it,
# so a reused id never finds an old entry): clip_grad_norm_ refuses them.
_stepped_in_backward: dict[int, int] = {}


def stepped_in_backward(param: Tensor) -> bool:
    """Whether ``param`` is stepped in backward (its gradient is gone once complete)."""
    return _stepped_in_backward.get(id(param), 0) > 0


class StepInBackward:
    """The hooks :func:`step_in_backward` registered; ``remove()`` unregisters them all."""

    def __init__(self, params: list[Tensor], handles: list[Removable]) -> None:
        self._params = [weakref.ref(p) for p in params]
        self._handles = handles

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        for ref in self._params:
            p = ref()
            if p is not None and id(p) in _stepped_in_backward:
                _stepped_in_backward[id(p)] -= 1
        self._handles, self._params = [], []


def step_in_backward(optimizer: Optimizer, register_hook: RegisterHook) -> StepInBackward:
    """Step every parameter of ``optimizer`` as soon as backward completes its gradient, and
    drop that gradient, so a backward pass never holds every gradient at once.

    ``register_hook(param, hook)`` must arrange ``hook(param)`` to be called once a
    backward pass has finished accumulating into ``param.grad`` (pass
    ``netcl.autograd.register_post_accumulate_grad_hook``). Each call steps the
    parameter alone (:meth:`Optimizer.step_param`) and sets its grad to None, which
    returns the gradient's memory to the pool for the gradients still to come.
    Do not call ``optimizer.step()`` or ``zero_grad()`` in the loop: a backward pass
    is the step. Parameters come out bit-identical to a step after backward.

    The optimizer must have no flat layout (``fused=False``): a flat layout keeps
    every gradient in one buffer for the whole run, so stepping in backward would
    free nothing. Clipping by global norm (``clip_grad_norm_``) needs every gradient
    before any step, so it refuses these parameters.

    Returns a handle whose ``remove()`` unregisters every hook.
    """
    name = type(optimizer).__name__
    if optimizer.flat_layout.buckets:
        raise ValueError(
            f"step_in_backward: this {name} has a flat layout, whose one grad buffer holds "
            "every gradient for the whole run, so stepping in backward would free nothing; "
            f"build it with fused=False"
        )
    params = [p for group in optimizer.param_groups for p in group["params"]]

    def hook(param: Tensor) -> None:
        optimizer.step_param(param)
        param.grad = None

    handles: list[Removable] = []
    try:
        for p in params:
            handles.append(register_hook(p, hook))
    except BaseException:
        for handle in handles:
            handle.remove()
        raise
    for p in params:
        if id(p) not in _stepped_in_backward:
            _stepped_in_backward[id(p)] = 0
            weakref.finalize(p, _stepped_in_backward.pop, id(p), None)
        _stepped_in_backward[id(p)] += 1
    return StepInBackward(params, handles)
