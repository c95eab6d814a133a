"""NAdam (Dozat, 2016): Adam with Nesterov momentum and a momentum schedule."""

from __future__ import annotations

from collections.abc import Sequence
from typing import overload

from netcl.optim.flat_layout import StepBatch
from netcl.optim.functional.nadam import NADAM_MATH, NAdamHyperparameters, NAdamState, nadam_step
from netcl.optim.optimizer import COMMON_ARGS_DOC, PARAMS_DOC, Optimizer, ParamsLike
from netcl.optim.param_state import ParamState

_DEFAULT = NAdamHyperparameters()


class NAdam(Optimizer):
    """NAdam: Adam whose step looks ahead along the momentum, with PyTorch's semantics.
    {NADAM_MATH}
    Args:
        {PARAMS_DOC}
        lr: learning rate, >= 0.
        betas: (beta1, beta2), each in [0, 1).
        eps: added to the denominator, >= 0.
        weight_decay: L2 coefficient, >= 0.
        momentum_decay: the momentum schedule's psi, >= 0.
        decoupled_weight_decay: shrink p by lr * weight_decay (AdamW's way, NAdamW)
            instead of adding weight_decay * p to the gradient.
        maximize: ascend instead of descend.
        {COMMON_ARGS_DOC}

    >>> import numpy as np
    >>> from netcl.core.tensor import Parameter, from_numpy
    >>> w = Parameter(from_numpy(np.ones(2, np.float32)))
    >>> optimizer = NAdam([w], lr=0.1)
    >>> w.grad = from_numpy(np.full(2, 3.0, np.float32))
    >>> optimizer.step()  # as torch.optim.NAdam: mu_1 = 0.9 * (1 - 0.5 * 0.96^0.004)
    >>> round(optimizer.state[w]["mu_product"], 4), w.numpy().round(4)
    (0.4501, array([0.8944, 0.8944], dtype=float32))
    """

    __doc__ = str(__doc__).format(
        NADAM_MATH=NADAM_MATH, PARAMS_DOC=PARAMS_DOC, COMMON_ARGS_DOC=COMMON_ARGS_DOC
    )
    hyperparameters = NAdamHyperparameters

    def __init__(
        self,
        params: ParamsLike,
        lr: float = _DEFAULT.lr,
        betas: tuple[float, float] = _DEFAULT.betas,
        eps: float = _DEFAULT.eps,
        weight_decay: float = _DEFAULT.weight_decay,
        momentum_decay: float = _DEFAULT.momentum_decay,
        decoupled_weight_decay: bool = _DEFAULT.decoupled_weight_decay,
        *,
        maximize: bool = _DEFAULT.maximize,
        allow_shared: bool = False,
        fused: bool | None = None,
        master_weights: bool = True,
    ) -> None:
        defaults = {
            "lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay,
            "momentum_decay": momentum_decay, "decoupled_weight_decay": decoupled_weight_decay,
            "maximize": maximize,
        }
        super().__init__(params, defaults, allow_shared=allow_shared, fused=fused,
                         master_weights=master_weights)

    def _update(self, hyper: NAdamHyperparameters, batch: StepBatch) -> None:
        state = batch.named(NAdamState)
        nadam_step(hyper, batch.params, batch.grads, state.exp_avg, state.exp_avg_sq,
                   _MuProducts(batch.counters), batch.steps, batch.live)


class _MuProducts(Sequence[float]):
    """Each launch's ``mu_product``, read from its state when indexed: a captured step's
    replay (which advances the states first) reads the new values."""

    def __init__(self, counters: list[ParamState]) -> None:
        self._counters = counters

    def __len__(self) -> int:
        return len(self._counters)

    @overload
    def __getitem__(self, i: int) -> float: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[float]: ...
    def __getitem__(self, i: int | slice) -> float | Sequence[float]:
        if isinstance(i, slice):
            return [st.scalars["mu_product"] for st in self._counters[i]]
        return self._counters[i].scalars["mu_product"]
