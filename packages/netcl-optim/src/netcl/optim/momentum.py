"""Momentum: :class:`~netcl.optim.SGD` with netcl's older signature and momentum 0.9."""

from __future__ import annotations

from netcl.optim.functional.sgd import MomentumHyperparameters
from netcl.optim.optimizer import COMMON_ARGS_DOC, PARAMS_DOC, ParamsLike
from netcl.optim.sgd import SGD

_DEFAULT = MomentumHyperparameters()


class Momentum(SGD):
    """SGD with momentum: :class:`SGD` (same update, state and state dicts, which load
    into either class) whose momentum defaults to 0.9 and whose positional order is
    ``(params, lr, momentum, dampening, nesterov, weight_decay)``.

    Args:
        {PARAMS_DOC}
        lr, momentum, dampening, nesterov, weight_decay, maximize: as :class:`SGD`.
        {COMMON_ARGS_DOC}

    >>> import numpy as np
    >>> from netcl.core.tensor import Parameter, from_numpy
    >>> w = Parameter(from_numpy(np.zeros(1, np.float32)))
    >>> group = Momentum([w], 0.1).param_groups[0]
    >>> group["momentum"], group["nesterov"]
    (0.9, False)
    >>> group = Momentum([w], 0.1, 0.9, 0, True).param_groups[0]  # SGD(..., 0.1, 0.9, 0, 0, True)
    >>> group["nesterov"], group["weight_decay"]
    (True, 0.0)
    """

    __doc__ = str(__doc__).format(PARAMS_DOC=PARAMS_DOC, COMMON_ARGS_DOC=COMMON_ARGS_DOC)

    def __init__(
        self,
        params: ParamsLike,
        lr: float = _DEFAULT.lr,
        momentum: float = _DEFAULT.momentum,
        dampening: float = _DEFAULT.dampening,
        nesterov: bool = _DEFAULT.nesterov,
        weight_decay: float = _DEFAULT.weight_decay,
        *,
        maximize: bool = _DEFAULT.maximize,
        allow_shared: bool = False,
        fused: bool | None = None,
        master_weights: bool = True,
    ) -> None:
        super().__init__(params, lr, momentum, dampening, weight_decay, nesterov,
                         maximize=maximize, allow_shared=allow_shared, fused=fused,
                         master_weights=master_weights)
