"""AdamW (Loshchilov and Hutter, 2019): Adam with decoupled weight decay."""

from __future__ import annotations

from typing import ClassVar

from netcl.optim.adam import Adam
from netcl.optim.optimizer import ParamsLike


class AdamW(Adam):
    """Adam whose weight decay shrinks the parameter instead of entering the moments.

    Per step, before Adam's update (see :class:`Adam`)::

        theta = theta * (1 - lr * weight_decay)

    and no L2 term is added to the gradient. Everything else, including the
    kernel (``adam.cl`` built with ``DECOUPLED``), is Adam's. Defaults to
    ``weight_decay=1e-2``, as PyTorch does.
    """

    decoupled: ClassVar[bool] = True

    def __init__(
        self,
        params: ParamsLike,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        allow_shared: bool = False,
        fused: bool | None = None,
    ) -> None:
        super().__init__(
            params, lr, betas, eps, weight_decay, amsgrad,
            maximize=maximize, allow_shared=allow_shared, fused=fused,
        )
