"""RAdam (Liu et al., 2020): Adam with the variance of its adaptive learning rate rectified."""

from __future__ import annotations

from netcl.optim.flat_layout import StepBatch
from netcl.optim.functional.radam import RADAM_MATH, RAdamHyperparameters, RAdamState, radam_step
from netcl.optim.optimizer import COMMON_ARGS_DOC, PARAMS_DOC, Optimizer, ParamsLike

_DEFAULT = RAdamHyperparameters()


class RAdam(Optimizer):
    """RAdam: momentum alone for the first steps, then Adam's step scaled by a rectification
    term, with PyTorch's semantics.
    {RADAM_MATH}
    Args:
        {PARAMS_DOC}
        lr: learning rate, >= 0.
        betas: (beta1, beta2), each in [0, 1).
        eps: added to the denominator, >= 0.
        weight_decay: L2 coefficient, >= 0.
        decoupled_weight_decay: shrink p by lr * weight_decay (AdamW's way) instead of
            adding weight_decay * p to the gradient.
        maximize: ascend instead of descend.
        {COMMON_ARGS_DOC}

    >>> import numpy as np
    >>> from netcl.core.tensor import Parameter, from_numpy
    >>> w = Parameter(from_numpy(np.ones(2, np.float32)))
    >>> optimizer = RAdam([w], lr=0.5)
    >>> w.grad = from_numpy(np.full(2, 3.0, np.float32))
    >>> optimizer.step()  # rho_1 <= 5: m / (1 - beta1) is g, so p = 1 - 0.5 * 3
    >>> w.numpy()
    array([-0.5, -0.5], dtype=float32)
    """

    __doc__ = str(__doc__).format(
        RADAM_MATH=RADAM_MATH, PARAMS_DOC=PARAMS_DOC, COMMON_ARGS_DOC=COMMON_ARGS_DOC
    )
    hyperparameters = RAdamHyperparameters
    #: Under a GradScaler its kernel unscales, skips and steps in one launch (as Adam's).
    _step_supports_amp_scaling = True

    def __init__(
        self,
        params: ParamsLike,
        lr: float = _DEFAULT.lr,
        betas: tuple[float, float] = _DEFAULT.betas,
        eps: float = _DEFAULT.eps,
        weight_decay: float = _DEFAULT.weight_decay,
        decoupled_weight_decay: bool = _DEFAULT.decoupled_weight_decay,
        *,
        maximize: bool = _DEFAULT.maximize,
        allow_shared: bool = False,
        fused: bool | None = None,
        master_weights: bool = True,
    ) -> None:
        defaults = {
            "lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay,
            "decoupled_weight_decay": decoupled_weight_decay, "maximize": maximize,
        }
        super().__init__(params, defaults, allow_shared=allow_shared, fused=fused,
                         master_weights=master_weights)

    def _update(self, hyper: RAdamHyperparameters, batch: StepBatch) -> None:
        state = batch.named(RAdamState)
        radam_step(hyper, batch.params, batch.grads, state.exp_avg, state.exp_avg_sq,
                   batch.steps, batch.live, grad_scaling=batch.grad_scaling)
