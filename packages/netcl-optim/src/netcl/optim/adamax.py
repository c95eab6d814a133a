"""Adamax (Kingma and Ba, 2014, section 7.1): Adam with an infinity-norm second moment."""

from __future__ import annotations

from netcl.optim.flat_layout import StepBatch
from netcl.optim.functional.adamax import (
    ADAMAX_MATH,
    AdamaxHyperparameters,
    AdamaxState,
    adamax_step,
)
from netcl.optim.optimizer import COMMON_ARGS_DOC, PARAMS_DOC, Optimizer, ParamsLike

_DEFAULT = AdamaxHyperparameters()


class Adamax(Optimizer):
    """Adamax: Adam's first moment over a decaying maximum of |g|, with PyTorch's semantics.
    {ADAMAX_MATH}
    Args:
        {PARAMS_DOC}
        lr: learning rate, >= 0.
        betas: (beta1, beta2), each in [0, 1).
        eps: added to |g| before the maximum, >= 0.
        weight_decay: coupled L2 coefficient, >= 0.
        maximize: ascend instead of descend.
        {COMMON_ARGS_DOC}

    >>> import numpy as np
    >>> from netcl.core.tensor import Parameter, from_numpy
    >>> w = Parameter(from_numpy(np.ones(2, np.float32)))
    >>> optimizer = Adamax([w], lr=0.1)
    >>> w.grad = from_numpy(np.full(2, 4.0, np.float32))
    >>> optimizer.step()  # m = 0.4, u = 4, so p = 1 - 0.1 / 0.1 * 0.4 / 4
    >>> w.numpy()
    array([0.9, 0.9], dtype=float32)
    """

    __doc__ = str(__doc__).format(
        ADAMAX_MATH=ADAMAX_MATH, PARAMS_DOC=PARAMS_DOC, COMMON_ARGS_DOC=COMMON_ARGS_DOC
    )
    hyperparameters = AdamaxHyperparameters
    #: Under a GradScaler its kernel unscales, skips and steps in one launch (as Adam's).
    _step_supports_amp_scaling = True

    def __init__(
        self,
        params: ParamsLike,
        lr: float = _DEFAULT.lr,
        betas: tuple[float, float] = _DEFAULT.betas,
        eps: float = _DEFAULT.eps,
        weight_decay: float = _DEFAULT.weight_decay,
        *,
        maximize: bool = _DEFAULT.maximize,
        allow_shared: bool = False,
        fused: bool | None = None,
        master_weights: bool = True,
    ) -> None:
        defaults = {
            "lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay,
            "maximize": maximize,
        }
        super().__init__(params, defaults, allow_shared=allow_shared, fused=fused,
                         master_weights=master_weights)

    def _update(self, hyper: AdamaxHyperparameters, batch: StepBatch) -> None:
        state = batch.named(AdamaxState)
        adamax_step(hyper, batch.params, batch.grads, state.exp_avg, state.exp_inf,
                    batch.steps, batch.live, grad_scaling=batch.grad_scaling)
