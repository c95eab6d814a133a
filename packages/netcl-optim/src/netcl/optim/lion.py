"""Lion (Chen et al., 2023): the sign of an interpolated momentum, found by program search."""

from __future__ import annotations

from netcl.optim.flat_layout import StepBatch
from netcl.optim.functional.lion import LION_MATH, LionHyperparameters, LionState, lion_step
from netcl.optim.optimizer import COMMON_ARGS_DOC, PARAMS_DOC, Optimizer, ParamsLike

_DEFAULT = LionHyperparameters()


class Lion(Optimizer):
    """Lion (EvoLved Sign Momentum): every element steps by lr in the direction of a sign.
    {LION_MATH}
    PyTorch has no Lion; the update and the defaults are the paper's (Chen et al.,
    2023, "Symbolic Discovery of Optimization Algorithms", Algorithm 2). State per
    parameter: ``exp_avg``; no step count.

    Args:
        {PARAMS_DOC}
        lr: learning rate, >= 0.
        betas: (beta1, beta2), each in [0, 1): beta1 interpolates the update's
            direction, beta2 the momentum.
        weight_decay: decoupled coefficient, >= 0.
        maximize: ascend instead of descend.
        {COMMON_ARGS_DOC}

    >>> import numpy as np
    >>> from netcl.core.tensor import Parameter, from_numpy
    >>> w = Parameter(from_numpy(np.array([1.0, 1.0, 1.0], np.float32)))
    >>> optimizer = Lion([w], lr=0.25)
    >>> w.grad = from_numpy(np.array([-3.0, 0.0, 1e-3], np.float32))
    >>> optimizer.step()  # each element moves by lr against the sign of its gradient
    >>> w.numpy()
    array([1.25, 1.  , 0.75], dtype=float32)
    """

    __doc__ = str(__doc__).format(
        LION_MATH=LION_MATH, PARAMS_DOC=PARAMS_DOC, COMMON_ARGS_DOC=COMMON_ARGS_DOC
    )
    hyperparameters = LionHyperparameters
    #: Under a GradScaler its kernel unscales, skips and steps in one launch (as Adam's).
    _step_supports_amp_scaling = True

    def __init__(
        self,
        params: ParamsLike,
        lr: float = _DEFAULT.lr,
        betas: tuple[float, float] = _DEFAULT.betas,
        weight_decay: float = _DEFAULT.weight_decay,
        *,
        maximize: bool = _DEFAULT.maximize,
        allow_shared: bool = False,
        fused: bool | None = None,
        master_weights: bool = True,
    ) -> None:
        defaults = {"lr": lr, "betas": betas, "weight_decay": weight_decay, "maximize": maximize}
        super().__init__(params, defaults, allow_shared=allow_shared, fused=fused,
                         master_weights=master_weights)

    def _update(self, hyper: LionHyperparameters, batch: StepBatch) -> None:
        lion_step(hyper, batch.params, batch.grads, batch.named(LionState).exp_avg, batch.live,
                  grad_scaling=batch.grad_scaling)
