"""RMSProp (Hinton, 2012; centred form after Graves, 2013)."""

from __future__ import annotations

from netcl.optim.flat_layout import StepBatch
from netcl.optim.functional.rmsprop import (
    RMSPROP_MATH,
    RMSPropHyperparameters,
    RMSPropState,
    rmsprop_step,
)
from netcl.optim.optimizer import COMMON_ARGS_DOC, PARAMS_DOC, Optimizer, ParamsLike

_DEFAULT = RMSPropHyperparameters()


class RMSProp(Optimizer):
    """RMSProp: divide the gradient by a running root mean square, with PyTorch's semantics.
    {RMSPROP_MATH}
    Args:
        {PARAMS_DOC}
        lr: learning rate, >= 0.
        alpha: smoothing constant, in [0, 1].
        eps: added to the denominator, >= 0.
        weight_decay: L2 coefficient, >= 0.
        momentum: momentum factor, >= 0.
        centered: normalise by the estimated variance instead of the raw second moment.
        maximize: ascend instead of descend.
        {COMMON_ARGS_DOC}

    >>> import numpy as np
    >>> from netcl.core.tensor import Parameter, from_numpy
    >>> w = Parameter(from_numpy(np.ones(2, np.float32)))
    >>> optimizer = RMSProp([w], lr=0.01, alpha=0.75)
    >>> w.grad = from_numpy(np.full(2, 3.0, np.float32))
    >>> optimizer.step()  # s = 0.25 * 9, so p = 1 - 0.01 * 3 / 1.5
    >>> w.numpy()
    array([0.98, 0.98], dtype=float32)
    """

    __doc__ = str(__doc__).format(
        RMSPROP_MATH=RMSPROP_MATH, PARAMS_DOC=PARAMS_DOC, COMMON_ARGS_DOC=COMMON_ARGS_DOC
    )
    hyperparameters = RMSPropHyperparameters

    def __init__(
        self,
        params: ParamsLike,
        lr: float = _DEFAULT.lr,
        alpha: float = _DEFAULT.alpha,
        eps: float = _DEFAULT.eps,
        weight_decay: float = _DEFAULT.weight_decay,
        momentum: float = _DEFAULT.momentum,
        centered: bool = _DEFAULT.centered,
        *,
        maximize: bool = _DEFAULT.maximize,
        allow_shared: bool = False,
        fused: bool | None = None,
        master_weights: bool = True,
    ) -> None:
        defaults = {
            "lr": lr, "alpha": alpha, "eps": eps, "weight_decay": weight_decay,
            "momentum": momentum, "centered": centered, "maximize": maximize,
        }
        super().__init__(params, defaults, allow_shared=allow_shared, fused=fused,
                         master_weights=master_weights)

    def _update(self, hyper: RMSPropHyperparameters, batch: StepBatch) -> None:
        state = batch.named(RMSPropState)
        rmsprop_step(hyper, batch.params, batch.grads, state.square_avg, state.grad_avg,
                     state.momentum_buffer, batch.live)
