"""Adam (Kingma and Ba, 2014), the optimizer of the seed page."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from netcl.optim import functional as F
from netcl.optim import hyperparameters as check
from netcl.optim.optimizer import Optimizer, ParamGroup, ParamsLike, StepBatch


class Adam(Optimizer):
    """Adam: per-parameter moment estimates with bias correction.

    For each parameter with gradient g_t at its step t (counted per parameter,
    from 1)::

        g_t   = -g_t                              if maximize
        g_t   = g_t + weight_decay * theta        (coupled L2; 0 by default)
        m_t   = beta1 * m_{t-1} + (1 - beta1) * g_t
        v_t   = beta2 * v_{t-1} + (1 - beta2) * g_t ** 2
        v_t   = max(v_max, v_t), kept as v_max   if amsgrad
        m_hat = m_t / (1 - beta1 ** t)
        v_hat = v_t / (1 - beta2 ** t)
        theta = theta - lr * m_hat / (sqrt(v_hat) + eps)

    As in PyTorch, eps is added to sqrt(v_t) / sqrt(1 - beta2 ** t). The state
    (``exp_avg`` m, ``exp_avg_sq`` v, ``max_exp_avg_sq`` with amsgrad, ``step``)
    is float32 whatever the parameter's dtype: fp16 parameters are updated in
    float32 and rounded once on store. One kernel launch updates every parameter
    of a param group that shares a dtype and device (``fused``, the default).

    Args:
        params: Tensors, or param-group dicts (see :class:`Optimizer`).
        lr: learning rate, >= 0.
        betas: (beta1, beta2), each in [0, 1).
        eps: added to the denominator, >= 0.
        weight_decay: coupled L2 coefficient, >= 0 (see :class:`AdamW` for decoupled).
        amsgrad: use the running maximum of v_t (Reddi et al., 2018).
        maximize: ascend instead of descend.
        allow_shared: allow parameters another optimizer already updates.
        fused: one launch per param group and dtype through a flat layout (None:
            wherever it applies; True: required; False: one launch per
            parameter). See :class:`Optimizer`.
    """

    #: AdamW sets this: weight decay multiplies theta by (1 - lr * wd) before the update.
    decoupled: ClassVar[bool] = False

    def __init__(
        self,
        params: ParamsLike,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        allow_shared: bool = False,
        fused: bool | None = None,
    ) -> None:
        defaults = {
            "lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay,
            "amsgrad": amsgrad, "maximize": maximize,
        }
        super().__init__(params, defaults, allow_shared=allow_shared, fused=fused)

    def check_group(self, group: Mapping[str, Any], owner: str) -> None:
        beta1, beta2 = check.betas(owner, group["betas"])
        F.AdamHyperparameters.checked(
            owner, lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
            weight_decay=group["weight_decay"], amsgrad=group["amsgrad"],
            maximize=group["maximize"], decoupled=self.decoupled,
        )

    def state_keys(self, group: Mapping[str, Any]) -> tuple[str, ...]:
        if group["amsgrad"]:
            return ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
        return ("exp_avg", "exp_avg_sq")

    def _update(self, group: ParamGroup, batch: StepBatch) -> None:
        beta1, beta2 = group["betas"]
        amsgrad = group["amsgrad"]
        states = batch.states
        F.adam(
            batch.params,
            batch.grads,
            [st.buffers["exp_avg"] for st in states],
            [st.buffers["exp_avg_sq"] for st in states],
            [st.buffers["max_exp_avg_sq"] for st in states] if amsgrad else None,
            [st.step or 0.0 for st in states],
            lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
            weight_decay=group["weight_decay"], amsgrad=amsgrad,
            maximize=group["maximize"], decoupled=self.decoupled,
        )
