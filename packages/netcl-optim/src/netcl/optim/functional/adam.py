"""Adam and AdamW: the hyperparameters, the host half of the math, and the functional form.

The element-wise half of the math is ``adam.cl`` beside this file (one kernel,
``adam_step``; AdamW is its ``DECOUPLED`` define). The host half is
:meth:`AdamHyperparameters.kernel_scalars`: the bias corrections, in double.
:class:`netcl.optim.Adam` calls :func:`adam_step` with a group's checked
hyperparameters; another framework calls :func:`adam` with plain arguments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import numpy as np

from netcl.core.tensor import Tensor, ops
from netcl.optim import hyperparameters as check
from netcl.optim.functional.device_arrays import ArrayLike, check_operands, spans
from netcl.optim.functional.kernels import (
    GradScaling,
    LiveGroup,
    checked_grad_scaling,
    launch_step,
    scaled_scalars,
    scaling_flags,
    step_scalars,
)
from netcl.optim.hyperparameters import Hyperparameters, hyperparameter

# Adam's update in words, shared by :func:`adam`'s and :class:`netcl.optim.Adam`'s docstrings.
ADAM_MATH = """
    For each parameter p with gradient g, first moment m, second moment v (and
    v_max with ``amsgrad``), at its step t (counted per parameter, from 1)::

        g = -g                                   if maximize
        p = p * (1 - lr * weight_decay)          if decoupled (AdamW)
        g = g + weight_decay * p                 otherwise (coupled L2)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        v_max = max(v_max, v)                    if amsgrad; v_max replaces v below
        p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    As in PyTorch, eps is added to sqrt(v) / sqrt(1 - beta2^t). State is float32
    whatever the parameter's dtype: a 16-bit parameter is updated in float32
    and rounded once on store (through its float32 master copy, where one is
    given: :func:`~netcl.optim.functional.with_master`).
"""


class AdamState(NamedTuple):
    """Adam's per-parameter state, by name (PyTorch's): float32 buffers, the last only with
    amsgrad. The optimizer class reads each field as the list of its launches' buffers."""

    exp_avg: Any
    exp_avg_sq: Any
    max_exp_avg_sq: Any = None


@dataclass(frozen=True)
class AdamHyperparameters(Hyperparameters):
    """Adam's (and AdamW's) hyperparameters, with PyTorch's names and defaults.

    >>> AdamHyperparameters.checked("Adam", {"lr": 0.01, "betas": (0.9, 0.99), "eps": 1e-8,
    ...                                      "weight_decay": 0.0, "amsgrad": True,
    ...                                      "maximize": False}).state_names()
    ('exp_avg', 'exp_avg_sq', 'max_exp_avg_sq')
    """

    #: torch's Adam and AdamW share one group key for what netcl makes two classes.
    torch_keys: ClassVar[Mapping[str, object]] = {"decoupled_weight_decay": False}

    lr: float = hyperparameter(1e-3, check.non_negative)
    betas: tuple[float, float] = hyperparameter((0.9, 0.999), check.betas)
    eps: float = hyperparameter(1e-8, check.non_negative)
    weight_decay: float = hyperparameter(0.0, check.non_negative)
    amsgrad: bool = hyperparameter(False, check.flag)
    maximize: bool = hyperparameter(False, check.flag)

    def state_names(self) -> tuple[str, ...]:
        return AdamState._fields if self.amsgrad else AdamState._fields[:2]

    def step_doubles(self, step: float) -> tuple[float, ...]:
        return (step, self.lr, *self.betas)

    def kernel_scalars(self, step: float, decoupled: bool) -> tuple[np.float32, ...]:
        """``adam.cl``'s ADAM_HYPERPARAMETERS for a parameter at ``step`` (t >= 1).

        Bias corrections are computed here in double, as PyTorch's single-tensor
        path does, and rounded to float once: step_size = lr / (1 - beta1^t) and
        sqrt(1 - beta2^t).
        """
        beta1, beta2 = self.betas
        bias_correction1 = 1.0 - beta1**step
        bias_correction2 = 1.0 - beta2**step
        coupled = 0.0 if decoupled else self.weight_decay
        decay = 1.0 - self.lr * self.weight_decay if decoupled else 1.0
        return (
            np.float32(-1.0 if self.maximize else 1.0),
            np.float32(coupled),
            np.float32(decay),
            np.float32(1.0 - beta1),
            np.float32(beta2),
            np.float32(1.0 - beta2),
            np.float32(-(self.lr / bias_correction1)),
            np.float32(bias_correction2**0.5),
            np.float32(self.eps),
        )


@dataclass(frozen=True)
class AdamWHyperparameters(AdamHyperparameters):
    """AdamW's: Adam's, with the value of torch's ``decoupled_weight_decay`` that means AdamW."""

    torch_keys: ClassVar[Mapping[str, object]] = {"decoupled_weight_decay": True}


def adam(
    params: Sequence[ArrayLike],
    grads: Sequence[ArrayLike],
    exp_avgs: Sequence[ArrayLike],
    exp_avg_sqs: Sequence[ArrayLike],
    max_exp_avg_sqs: Sequence[ArrayLike] | None,
    steps: Sequence[float],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    amsgrad: bool,
    maximize: bool,
    decoupled: bool = False,
    grad_scale: Tensor | None = None,
    found_inf: Tensor | None = None,
    skipped_steps: Tensor | None = None,
) -> None:
    """One Adam (``decoupled=False``) or AdamW step on every parameter, in place.

    The caller owns the state and counts the steps (``steps[i]`` is 1 on a
    parameter's first update). Every array is a netcl Tensor, a
    ``pyopencl.array.Array`` or a :class:`~netcl.optim.functional.DeviceArray`,
    contiguous. ``params`` and ``grads`` are float32 or float16 (the same per
    parameter); the state is float32. ``max_exp_avg_sqs`` may be None unless
    ``amsgrad``. Everything is checked before anything is enqueued; work goes
    on each parameter's queue and nothing waits.

    Under a GradScaler (PyTorch's fused ``grad_scale`` and ``found_inf``, each a
    one-element float32 device tensor): each gradient is divided by ``grad_scale``,
    and while ``found_inf`` is nonzero the call changes nothing; all in the same
    launches, nothing read back. ``skipped_steps`` (a one-element float32 device
    tensor, optional) counts the calls ``found_inf`` skipped: the bias corrections
    use ``steps[i]`` less it, and the call adds ``found_inf`` to it, as PyTorch's
    fused Adam subtracts ``found_inf`` from its step tensors. Without it ``steps``
    are used as given.
    """
    hyper = AdamHyperparameters.checked("adam", {
        "lr": lr, "betas": (beta1, beta2), "eps": eps, "weight_decay": weight_decay,
        "amsgrad": amsgrad, "maximize": maximize,
    })
    scaling = checked_grad_scaling("adam", grad_scale, found_inf, skipped_steps)
    adam_step(hyper, params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps,
              decoupled=check.flag("adam", "decoupled", decoupled), grad_scaling=scaling)
    if scaling is not None and skipped_steps is not None:
        ops.add_(skipped_steps, scaling.found_inf)


adam.__doc__ = f"{adam.__doc__}{ADAM_MATH}"


def adamw(
    params: Sequence[ArrayLike],
    grads: Sequence[ArrayLike],
    exp_avgs: Sequence[ArrayLike],
    exp_avg_sqs: Sequence[ArrayLike],
    max_exp_avg_sqs: Sequence[ArrayLike] | None,
    steps: Sequence[float],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    amsgrad: bool,
    maximize: bool,
    grad_scale: Tensor | None = None,
    found_inf: Tensor | None = None,
    skipped_steps: Tensor | None = None,
) -> None:
    """:func:`adam` with ``decoupled=True``: AdamW's p *= 1 - lr * weight_decay."""
    adam(
        params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, lr=lr, beta1=beta1,
        beta2=beta2, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize,
        decoupled=True, grad_scale=grad_scale, found_inf=found_inf, skipped_steps=skipped_steps,
    )


def adam_step(
    hyper: AdamHyperparameters,
    params: Sequence[ArrayLike],
    grads: Sequence[ArrayLike],
    exp_avgs: Sequence[ArrayLike],
    exp_avg_sqs: Sequence[ArrayLike],
    max_exp_avg_sqs: Sequence[ArrayLike] | None,
    steps: Sequence[float],
    *,
    decoupled: bool,
    live: LiveGroup | None = None,
    grad_scaling: GradScaling | None = None,
) -> None:
    """:func:`adam` with its hyperparameters checked already: one ``adam_step`` launch per
    array, after every array is checked. An optimizer class's fused path passes, as
    one array, a view over a whole range of a flat bucket (many parameters), and
    ``live`` (its hyperparameters and step counts, re-read by a replay); under a
    GradScaler, ``grad_scaling`` (see ``adam.cl``'s GRAD_SCALING)."""
    n = len(params)
    p, g = spans(params, "params", n), spans(grads, "grads", n)
    m, v = spans(exp_avgs, "exp_avgs", n), spans(exp_avg_sqs, "exp_avg_sqs", n)
    vmax = spans(max_exp_avg_sqs or [], "max_exp_avg_sqs", n) if hyper.amsgrad else None
    if len(steps) != n:
        raise ValueError(f"steps has {len(steps)} entries, expected {n} (one per param)")
    for i in range(n):
        extra = {"max_exp_avg_sqs": vmax[i]} if vmax is not None else {}
        check_operands(i, p[i], g[i], exp_avgs=m[i], exp_avg_sqs=v[i], **extra)
        if not steps[i] >= 1:
            raise ValueError(f"steps[{i}] is {steps[i]!r}; a step count is >= 1")
    flags, buffers = scaling_flags({"DECOUPLED": int(decoupled), "AMSGRAD": int(hyper.amsgrad)},
                                   grad_scaling)
    compute = scaled_scalars(
        lambda h, t, j: h.kernel_scalars(t[j], decoupled), grad_scaling)
    for i in range(n):
        # Without amsgrad the kernel never touches vmax; any buffer fills the slot.
        vmax_i = vmax[i] if vmax is not None else m[i]
        scalars = step_scalars(hyper, steps, i, compute, live)
        launch_step("adam.cl", "adam_step", flags, (p[i], g[i], m[i], v[i], vmax_i),
                    (*buffers, *scalars))
