"""AdamW (Loshchilov and Hutter, 2019): Adam with decoupled weight decay."""

from __future__ import annotations

from typing import ClassVar

from netcl.optim.adam import _DEFAULT, Adam, AdamArguments
from netcl.optim.functional.adam import AdamWHyperparameters
from netcl.optim.optimizer import ParamsLike


class AdamWArguments(AdamArguments):
    """AdamW's constructor: Adam's with PyTorch's ``weight_decay=1e-2``; AdamW8bit shares it."""

    def __init__(
        self,
        params: ParamsLike,
        lr: float = _DEFAULT.lr,
        betas: tuple[float, float] = _DEFAULT.betas,
        eps: float = _DEFAULT.eps,
        weight_decay: float = 1e-2,
        amsgrad: bool = _DEFAULT.amsgrad,
        *,
        maximize: bool = _DEFAULT.maximize,
        allow_shared: bool = False,
        fused: bool | None = None,
        master_weights: bool = True,
    ) -> None:
        super().__init__(
            params, lr, betas, eps, weight_decay, amsgrad,
            maximize=maximize, allow_shared=allow_shared, fused=fused,
            master_weights=master_weights,
        )


class AdamW(Adam, AdamWArguments):
    """Adam whose weight decay shrinks the parameter instead of entering the moments.

    Per step, before Adam's update (see :class:`Adam`)::

        p = p * (1 - lr * weight_decay)

    and no L2 term is added to the gradient. Everything else, including the
    kernel (``adam.cl`` built with ``DECOUPLED``), is Adam's. Defaults to
    ``weight_decay=1e-2``, as PyTorch does.

    >>> import numpy as np
    >>> from netcl.core.tensor import Parameter, from_numpy
    >>> w = Parameter(from_numpy(np.ones(2, np.float32)))
    >>> optimizer = AdamW([w], lr=0.1, weight_decay=0.5)
    >>> w.grad = from_numpy(np.zeros(2, np.float32))
    >>> optimizer.step()  # a zero gradient: only the decay, p * (1 - 0.1 * 0.5)
    >>> w.numpy()
    array([0.95, 0.95], dtype=float32)
    """

    decoupled: ClassVar[bool] = True
    hyperparameters = AdamWHyperparameters
