"""Adagrad (Duchi et al., 2011): per-element learning rates from the sum of squared gradients."""

from __future__ import annotations

from netcl.optim.flat_layout import StepBatch
from netcl.optim.functional.adagrad import (
    ADAGRAD_MATH,
    AdagradHyperparameters,
    AdagradState,
    adagrad_step,
)
from netcl.optim.optimizer import COMMON_ARGS_DOC, PARAMS_DOC, Optimizer, ParamsLike

_DEFAULT = AdagradHyperparameters()


class Adagrad(Optimizer):
    """Adagrad: divide the gradient by the root of every squared gradient so far, with
    PyTorch's semantics.
    {ADAGRAD_MATH}
    Args:
        {PARAMS_DOC}
        lr: learning rate, >= 0.
        lr_decay: the learning rate at step t is lr / (1 + (t - 1) * lr_decay), >= 0.
        weight_decay: coupled L2 coefficient, >= 0.
        initial_accumulator_value: what ``sum`` starts from, >= 0. A param group's own
            value counts for its parameters (torch 2.13 fills every group's ``sum``
            from the constructor's value, whatever the group says).
        eps: added to the denominator, >= 0.
        maximize: ascend instead of descend.
        {COMMON_ARGS_DOC}

    >>> import numpy as np
    >>> from netcl.core.tensor import Parameter, from_numpy
    >>> w = Parameter(from_numpy(np.ones(2, np.float32)))
    >>> optimizer = Adagrad([w], lr=0.5, initial_accumulator_value=7.0)
    >>> w.grad = from_numpy(np.full(2, 3.0, np.float32))
    >>> optimizer.step()  # sum = 7 + 9, so p = 1 - 0.5 * 3 / 4
    >>> w.numpy()
    array([0.625, 0.625], dtype=float32)
    """

    __doc__ = str(__doc__).format(
        ADAGRAD_MATH=ADAGRAD_MATH, PARAMS_DOC=PARAMS_DOC, COMMON_ARGS_DOC=COMMON_ARGS_DOC
    )
    hyperparameters = AdagradHyperparameters
    #: Under a GradScaler its kernel unscales, skips and steps in one launch (as Adam's).
    _step_supports_amp_scaling = True

    def __init__(
        self,
        params: ParamsLike,
        lr: float = _DEFAULT.lr,
        lr_decay: float = _DEFAULT.lr_decay,
        weight_decay: float = _DEFAULT.weight_decay,
        initial_accumulator_value: float = _DEFAULT.initial_accumulator_value,
        eps: float = _DEFAULT.eps,
        *,
        maximize: bool = _DEFAULT.maximize,
        allow_shared: bool = False,
        fused: bool | None = None,
        master_weights: bool = True,
    ) -> None:
        defaults = {
            "lr": lr, "lr_decay": lr_decay, "weight_decay": weight_decay,
            "initial_accumulator_value": initial_accumulator_value, "eps": eps,
            "maximize": maximize,
        }
        super().__init__(params, defaults, allow_shared=allow_shared, fused=fused,
                         master_weights=master_weights)

    def _update(self, hyper: AdagradHyperparameters, batch: StepBatch) -> None:
        state = batch.named(AdagradState)
        adagrad_step(hyper, batch.params, batch.grads, state.sum, batch.steps, batch.live,
                     grad_scaling=batch.grad_scaling)
