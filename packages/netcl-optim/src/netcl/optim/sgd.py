"""SGD: plain stochastic gradient descent (see momentum.py for SGD with momentum)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from netcl.optim import functional as F
from netcl.optim.optimizer import Optimizer, ParamGroup, ParamsLike, StepBatch


class SGD(Optimizer):
    """Stochastic gradient descent, without state::

        g     = -g                          if maximize
        g     = g + weight_decay * theta    (coupled L2)
        theta = theta - lr * g

    PyTorch's ``SGD(momentum=0)``. For momentum and Nesterov see :class:`Momentum`.

    Args:
        params: Tensors, or param-group dicts (see :class:`Optimizer`).
        lr: learning rate, >= 0.
        weight_decay: L2 coefficient, >= 0.
        maximize: ascend instead of descend.
        allow_shared: allow parameters another optimizer already updates.
        fused: one launch per param group and dtype through a flat layout (None:
            wherever it applies; True: required; False: one launch per
            parameter). See :class:`Optimizer`.
    """

    counts_steps: ClassVar[bool] = False

    def __init__(
        self,
        params: ParamsLike,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
        allow_shared: bool = False,
        fused: bool | None = None,
    ) -> None:
        defaults = {"lr": lr, "weight_decay": weight_decay, "maximize": maximize}
        super().__init__(params, defaults, allow_shared=allow_shared, fused=fused)

    def check_group(self, group: Mapping[str, Any], owner: str) -> None:
        F.SGDHyperparameters.checked(
            owner, lr=group["lr"], weight_decay=group["weight_decay"],
            maximize=group["maximize"],
        )

    def _update(self, group: ParamGroup, batch: StepBatch) -> None:
        F.sgd(
            batch.params, batch.grads, lr=group["lr"], weight_decay=group["weight_decay"],
            maximize=group["maximize"],
        )
