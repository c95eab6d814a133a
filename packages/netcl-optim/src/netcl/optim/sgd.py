"""SGD: stochastic gradient descent with optional momentum, PyTorch's ``SGD``."""

from __future__ import annotations

from netcl.optim.flat_layout import StepBatch
from netcl.optim.functional.sgd import (
    MOMENTUM_MATH,
    MomentumHyperparameters,
    MomentumState,
    sgd_step,
)
from netcl.optim.optimizer import COMMON_ARGS_DOC, PARAMS_DOC, Optimizer, ParamsLike

# PyTorch's defaults: momentum 0 is plain SGD.
_DEFAULT = MomentumHyperparameters(momentum=0.0)


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with momentum: PyTorch's ``SGD``.
    {MOMENTUM_MATH}
    The buffer b (``momentum_buffer``, float32) is created on a parameter's
    first step. ``momentum=0`` (the default) is plain SGD and keeps no buffer.

    Args:
        {PARAMS_DOC}
        lr: learning rate, >= 0.
        momentum: momentum factor, >= 0.
        dampening: dampening of the gradient's contribution to b.
        weight_decay: L2 coefficient, >= 0.
        nesterov: Nesterov momentum (needs momentum > 0 and dampening 0).
        maximize: ascend instead of descend.
        {COMMON_ARGS_DOC}

    >>> import numpy as np
    >>> from netcl.core.tensor import Parameter, from_numpy
    >>> w = Parameter(from_numpy(np.ones(2, np.float32)))
    >>> optimizer = SGD([w], lr=0.25)
    >>> w.grad = from_numpy(np.array([1.0, -2.0], np.float32))
    >>> optimizer.step()
    >>> w.numpy()
    array([0.75, 1.5 ], dtype=float32)
    >>> w = Parameter(from_numpy(np.zeros(1, np.float32)))
    >>> optimizer = SGD([w], lr=1.0, momentum=0.5)
    >>> for _ in range(2):  # b = 1, then b = 0.5 * 1 + 1
    ...     w.grad = from_numpy(np.ones(1, np.float32))
    ...     optimizer.step()
    >>> w.numpy()
    array([-2.5], dtype=float32)
    """

    __doc__ = str(__doc__).format(
        MOMENTUM_MATH=MOMENTUM_MATH, PARAMS_DOC=PARAMS_DOC, COMMON_ARGS_DOC=COMMON_ARGS_DOC
    )
    hyperparameters = MomentumHyperparameters

    def __init__(
        self,
        params: ParamsLike,
        lr: float = _DEFAULT.lr,
        momentum: float = _DEFAULT.momentum,
        dampening: float = _DEFAULT.dampening,
        weight_decay: float = _DEFAULT.weight_decay,
        nesterov: bool = _DEFAULT.nesterov,
        *,
        maximize: bool = _DEFAULT.maximize,
        allow_shared: bool = False,
        fused: bool | None = None,
        master_weights: bool = True,
    ) -> None:
        defaults = {
            "lr": lr, "momentum": momentum, "dampening": dampening, "nesterov": nesterov,
            "weight_decay": weight_decay, "maximize": maximize,
        }
        super().__init__(params, defaults, allow_shared=allow_shared, fused=fused,
                         master_weights=master_weights)

    def _update(self, hyper: MomentumHyperparameters, batch: StepBatch) -> None:
        # With momentum 0 a step is plain SGD: no buffer (PyTorch keeps none either).
        buffers = batch.named(MomentumState).momentum_buffer if hyper.momentum != 0 else None
        sgd_step(hyper, batch.params, batch.grads, buffers, batch.first_steps, batch.live)
