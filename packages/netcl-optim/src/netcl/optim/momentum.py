"""Momentum: SGD with (heavy-ball or Nesterov) momentum, PyTorch's SGD(momentum > 0)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from netcl.optim import functional as F
from netcl.optim.optimizer import Optimizer, ParamGroup, ParamsLike, StepBatch


class Momentum(Optimizer):
    """SGD with momentum, with PyTorch's semantics::

        g     = -g                                     if maximize
        g     = g + weight_decay * theta               (coupled L2)
        b     = g                                      on the parameter's first step
        b     = momentum * b + (1 - dampening) * g     after
        theta = theta - lr * (g + momentum * b)        if nesterov
        theta = theta - lr * b                         otherwise

    The buffer b (``momentum_buffer``, float32) is created on a parameter's
    first step. ``momentum=0`` is plain SGD with a buffer that equals g.

    Args:
        params: Tensors, or param-group dicts (see :class:`Optimizer`).
        lr: learning rate, >= 0.
        momentum: momentum factor, >= 0.
        dampening: dampening of the gradient's contribution to b.
        nesterov: Nesterov momentum (needs momentum > 0 and dampening 0).
        weight_decay: L2 coefficient, >= 0.
        maximize: ascend instead of descend.
        allow_shared: allow parameters another optimizer already updates.
        fused: one launch per param group and dtype through a flat layout (None:
            wherever it applies; True: required; False: one launch per
            parameter). See :class:`Optimizer`.
    """

    counts_steps: ClassVar[bool] = False  # PyTorch's SGD keeps no step count

    def __init__(
        self,
        params: ParamsLike,
        lr: float = 1e-3,
        momentum: float = 0.9,
        dampening: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
        allow_shared: bool = False,
        fused: bool | None = None,
    ) -> None:
        defaults = {
            "lr": lr, "momentum": momentum, "dampening": dampening, "nesterov": nesterov,
            "weight_decay": weight_decay, "maximize": maximize,
        }
        super().__init__(params, defaults, allow_shared=allow_shared, fused=fused)

    def check_group(self, group: Mapping[str, Any], owner: str) -> None:
        F.SGDHyperparameters.checked(
            owner, lr=group["lr"], weight_decay=group["weight_decay"],
            maximize=group["maximize"], momentum=group["momentum"],
            dampening=group["dampening"], nesterov=group["nesterov"],
        )

    def state_keys(self, group: Mapping[str, Any]) -> tuple[str, ...]:
        # PyTorch keeps no buffer while momentum is 0 (the step is then plain SGD).
        return ("momentum_buffer",) if group["momentum"] != 0 else ()

    def _update(self, group: ParamGroup, batch: StepBatch) -> None:
        if group["momentum"] == 0:
            F.sgd(
                batch.params, batch.grads, lr=group["lr"], weight_decay=group["weight_decay"],
                maximize=group["maximize"],
            )
            return
        F.momentum(
            batch.params, batch.grads,
            [st.buffers["momentum_buffer"] for st in batch.states], batch.first_steps,
            lr=group["lr"], momentum=group["momentum"], dampening=group["dampening"],
            nesterov=group["nesterov"], weight_decay=group["weight_decay"],
            maximize=group["maximize"],
        )
