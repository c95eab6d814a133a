"""Adam (Kingma and Ba, 2014), the optimizer of netcl's documentation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from netcl.optim.flat_layout import StepBatch
from netcl.optim.functional.adam import ADAM_MATH, AdamHyperparameters, AdamState, adam_step
from netcl.optim.optimizer import COMMON_ARGS_DOC, PARAMS_DOC, Optimizer, ParamsLike

_DEFAULT = AdamHyperparameters()


class AdamArguments(Optimizer):
    """Adam's constructor (PyTorch's arguments and defaults), which Adam8bit shares."""

    def __init__(
        self,
        params: ParamsLike,
        lr: float = _DEFAULT.lr,
        betas: tuple[float, float] = _DEFAULT.betas,
        eps: float = _DEFAULT.eps,
        weight_decay: float = _DEFAULT.weight_decay,
        amsgrad: bool = _DEFAULT.amsgrad,
        *,
        maximize: bool = _DEFAULT.maximize,
        allow_shared: bool = False,
        fused: bool | None = None,
        master_weights: bool = True,
    ) -> None:
        defaults = {
            "lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay,
            "amsgrad": amsgrad, "maximize": maximize,
        }
        super().__init__(params, defaults, allow_shared=allow_shared, fused=fused,
                         master_weights=master_weights)


class Adam(AdamArguments):
    """Adam: per-parameter moment estimates with bias correction.
    {ADAM_MATH}
    One kernel launch updates every parameter of a param group that shares a
    dtype and device (``fused``, the default). State per parameter:
    ``exp_avg`` (m), ``exp_avg_sq`` (v), ``max_exp_avg_sq`` with amsgrad, ``step``.

    Args:
        {PARAMS_DOC}
        lr: learning rate, >= 0.
        betas: (beta1, beta2), each in [0, 1).
        eps: added to the denominator, >= 0.
        weight_decay: coupled L2 coefficient, >= 0 (see :class:`AdamW` for decoupled).
        amsgrad: use the running maximum of v (Reddi et al., 2018).
        maximize: ascend instead of descend.
        {COMMON_ARGS_DOC}

    >>> import numpy as np
    >>> from netcl.core.tensor import Parameter, from_numpy
    >>> w = Parameter(from_numpy(np.ones(3, np.float32)))
    >>> optimizer = Adam([w], lr=0.1)
    >>> w.grad = from_numpy(np.full(3, 2.0, np.float32))
    >>> optimizer.step()  # the first step moves each element by lr
    >>> w.numpy().round(6)
    array([0.9, 0.9, 0.9], dtype=float32)
    """

    __doc__ = str(__doc__).format(
        ADAM_MATH=ADAM_MATH, PARAMS_DOC=PARAMS_DOC, COMMON_ARGS_DOC=COMMON_ARGS_DOC
    )
    hyperparameters = AdamHyperparameters
    #: AdamW sets this: weight decay multiplies p by (1 - lr * wd) before the update.
    decoupled: ClassVar[bool] = False
    #: GradScaler hands this class its buffers (``grad_scale``, ``found_inf``) instead of
    #: reading found_inf on the host: unscale, skip and step are one launch.
    _step_supports_amp_scaling: ClassVar[bool] = True

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """:meth:`Optimizer.step`, written here so the path to the kernel only goes down."""
        # Each group's checked hyperparameters go to update_group as values, as PyTorch's
        # Adam.step hands its group's values to adam().
        loss = self._begin_step(closure)
        steps = self._group_steps()
        for group_step in steps:
            with group_step as batch:
                update_group(group_step.hyper, batch, decoupled=self.decoupled)
        self._end_step(steps)
        return loss

    def _update(self, hyper: AdamHyperparameters, batch: StepBatch) -> None:
        update_group(hyper, batch, decoupled=self.decoupled)  # step_param's group step


def update_group(hyper: AdamHyperparameters, batch: StepBatch, *, decoupled: bool) -> None:
    """One Adam step of a param group over ``batch`` (its checked hyperparameters ``hyper``):
    what :meth:`Adam.step` and :meth:`Adam.step_param` launch."""
    state = batch.named(AdamState)
    adam_step(hyper, batch.params, batch.grads, state.exp_avg, state.exp_avg_sq,
              state.max_exp_avg_sq, batch.steps, decoupled=decoupled, live=batch.live,
              grad_scaling=batch.grad_scaling)
