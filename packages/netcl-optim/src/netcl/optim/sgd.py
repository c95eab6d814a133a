"""SGD: plain stochastic gradient descent (see momentum.py for SGD with momentum)."""

from __future__ import annotations

from netcl.optim.flat_layout import StepBatch
from netcl.optim.functional.sgd import SGD_MATH, SGDHyperparameters, sgd_step
from netcl.optim.optimizer import COMMON_ARGS_DOC, PARAMS_DOC, Optimizer, ParamsLike

_DEFAULT = SGDHyperparameters()


class SGD(Optimizer):
    """Stochastic gradient descent, without state: PyTorch's ``SGD(momentum=0)``.
    {SGD_MATH}
    For momentum and Nesterov see :class:`Momentum`.

    Args:
        {PARAMS_DOC}
        lr: learning rate, >= 0.
        weight_decay: L2 coefficient, >= 0.
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
    """

    __doc__ = str(__doc__).format(
        SGD_MATH=SGD_MATH, PARAMS_DOC=PARAMS_DOC, COMMON_ARGS_DOC=COMMON_ARGS_DOC
    )
    hyperparameters = SGDHyperparameters

    def __init__(
        self,
        params: ParamsLike,
        lr: float = _DEFAULT.lr,
        weight_decay: float = _DEFAULT.weight_decay,
        *,
        maximize: bool = _DEFAULT.maximize,
        allow_shared: bool = False,
        fused: bool | None = None,
        master_weights: bool = True,
    ) -> None:
        defaults = {"lr": lr, "weight_decay": weight_decay, "maximize": maximize}
        super().__init__(params, defaults, allow_shared=allow_shared, fused=fused,
                         master_weights=master_weights)

    def _update(self, hyper: SGDHyperparameters, batch: StepBatch) -> None:
        sgd_step(hyper, batch.params, batch.grads, None, batch.first_steps, batch.live)
