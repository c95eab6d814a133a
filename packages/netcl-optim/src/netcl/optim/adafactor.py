"""Adafactor (Shazeer and Stern, 2018): second moments factored into rows and columns."""

from __future__ import annotations

from netcl.core.tensor import float32, zeros
from netcl.optim.flat_layout import StepBatch
from netcl.optim.functional.adafactor import (
    ADAFACTOR_MATH,
    AdafactorHyperparameters,
    adafactor_step,
)
from netcl.optim.optimizer import PARAMS_DOC, Optimizer, ParamsLike

_DEFAULT = AdafactorHyperparameters()


class Adafactor(Optimizer):
    """Adafactor: Adam-like steps with O(rows + cols) state per matrix, with PyTorch's semantics.
    {ADAFACTOR_MATH}
    Each parameter is stepped on its own (its factored moments are row and column
    reductions of its own shape), so Adafactor keeps no flat layout. Its step's
    scalars (1 - beta2_t, the relative step size) follow the step count on the
    host, so a ``netcl.jit`` capture of it replays the first step's; step it eagerly.

    Args:
        {PARAMS_DOC}
        lr: learning rate, >= 0 (the relative step size is min(lr, 1 / sqrt(t))).
        beta2_decay: the exponent of 1 - beta2_t = t^beta2_decay, <= 0.
        eps: (eps1, eps2): eps1 floors the variance estimate (None: the dtype's machine
            epsilon), eps2 the parameter's RMS in the step size.
        d: the update's RMS is clipped to d, >= 1.
        weight_decay: decoupled coefficient, >= 0.
        maximize: ascend instead of descend.
        allow_shared: as for every optimizer (see :class:`Optimizer`).

    >>> import numpy as np
    >>> from netcl.core.tensor import Parameter, from_numpy
    >>> w = Parameter(from_numpy(np.ones((3, 4), np.float32)))
    >>> optimizer = Adafactor([w], lr=0.1)
    >>> w.grad = from_numpy(np.full((3, 4), 2.0, np.float32))
    >>> optimizer.step()  # alpha = 1 * 0.1, and the update's RMS is 1
    >>> w.numpy()[0], [b.shape for b in optimizer.state[w].buffers.values()]
    (array([0.9, 0.9, 0.9, 0.9], dtype=float32), [(3, 1), (1, 4)])
    """

    __doc__ = str(__doc__).format(ADAFACTOR_MATH=ADAFACTOR_MATH, PARAMS_DOC=PARAMS_DOC)
    hyperparameters = AdafactorHyperparameters
    #: It reduces over whole rows and columns: a shard of elements is not a share of its step.
    shards_elementwise = False
    _supports_master_weights = False  # its step is several launches, not one kernel

    def __init__(
        self,
        params: ParamsLike,
        lr: float = _DEFAULT.lr,
        beta2_decay: float = _DEFAULT.beta2_decay,
        eps: tuple[float | None, float] = _DEFAULT.eps,
        d: float = _DEFAULT.d,
        weight_decay: float = _DEFAULT.weight_decay,
        *,
        maximize: bool = _DEFAULT.maximize,
        allow_shared: bool = False,
    ) -> None:
        defaults = {
            "lr": lr, "beta2_decay": beta2_decay, "eps": eps, "d": d,
            "weight_decay": weight_decay, "maximize": maximize,
        }
        super().__init__(params, defaults, allow_shared=allow_shared, fused=False)

    def _update(self, hyper: AdafactorHyperparameters, batch: StepBatch) -> None:
        # The state's shapes are not the parameter's, so it is made here, not by the layout.
        for p, state in zip(batch.params, batch.states, strict=True):
            for name, shape in hyper.state_shapes(p.shape).items():
                if name not in state:
                    state[name] = zeros(shape, float32, device=p.device)
        adafactor_step(hyper, batch.params, batch.grads, batch.states, batch.steps)
