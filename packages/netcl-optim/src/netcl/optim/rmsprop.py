"""RMSProp (Hinton, 2012; centred form after Graves, 2013)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from netcl.optim import functional as F
from netcl.optim.optimizer import Optimizer, ParamGroup, ParamsLike, StepBatch


class RMSProp(Optimizer):
    """RMSProp: divide the gradient by a running root mean square, with PyTorch's semantics::

        g     = -g                                        if maximize
        g     = g + weight_decay * theta                  (coupled L2)
        s     = alpha * s + (1 - alpha) * g ** 2
        a     = alpha * a + (1 - alpha) * g               if centered
        d     = sqrt(s - a ** 2) + eps                    if centered, else sqrt(s) + eps
        b     = momentum * b + g / d;  theta -= lr * b    if momentum > 0
        theta = theta - lr * g / d                        otherwise

    State (float32, zero at the start): ``square_avg`` s, ``grad_avg`` a when
    centered, ``momentum_buffer`` b when momentum > 0, and ``step``.

    Args:
        params: Tensors, or param-group dicts (see :class:`Optimizer`).
        lr: learning rate, >= 0.
        alpha: smoothing constant, in [0, 1].
        eps: added to the denominator, >= 0.
        weight_decay: L2 coefficient, >= 0.
        momentum: momentum factor, >= 0.
        centered: normalise by the estimated variance instead of the raw second moment.
        maximize: ascend instead of descend.
        allow_shared: allow parameters another optimizer already updates.
        fused: one launch per param group and dtype through a flat layout (None:
            wherever it applies; True: required; False: one launch per
            parameter). See :class:`Optimizer`.
    """

    def __init__(
        self,
        params: ParamsLike,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        *,
        maximize: bool = False,
        allow_shared: bool = False,
        fused: bool | None = None,
    ) -> None:
        defaults = {
            "lr": lr, "alpha": alpha, "eps": eps, "weight_decay": weight_decay,
            "momentum": momentum, "centered": centered, "maximize": maximize,
        }
        super().__init__(params, defaults, allow_shared=allow_shared, fused=fused)

    def check_group(self, group: Mapping[str, Any], owner: str) -> None:
        F.RMSPropHyperparameters.checked(
            owner, lr=group["lr"], alpha=group["alpha"], eps=group["eps"],
            weight_decay=group["weight_decay"], momentum=group["momentum"],
            centered=group["centered"], maximize=group["maximize"],
        )

    def state_keys(self, group: Mapping[str, Any]) -> tuple[str, ...]:
        keys = ["square_avg"]
        if group["momentum"] > 0:
            keys.append("momentum_buffer")
        if group["centered"]:
            keys.append("grad_avg")
        return tuple(keys)

    def _update(self, group: ParamGroup, batch: StepBatch) -> None:
        centered, momentum = group["centered"], group["momentum"]
        states = batch.states
        F.rmsprop(
            batch.params,
            batch.grads,
            [st.buffers["square_avg"] for st in states],
            [st.buffers["grad_avg"] for st in states] if centered else None,
            [st.buffers["momentum_buffer"] for st in states] if momentum > 0 else None,
            lr=group["lr"], alpha=group["alpha"], eps=group["eps"],
            weight_decay=group["weight_decay"], momentum=momentum, centered=centered,
            maximize=group["maximize"],
        )
