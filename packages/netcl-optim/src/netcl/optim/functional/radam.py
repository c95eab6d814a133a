"""RAdam: the hyperparameters, the host half of the math, and the functional form.

The element-wise half is ``radam.cl`` beside this file (one kernel, ``radam_step``).
:class:`netcl.optim.RAdam` calls :func:`radam_step` with a group's checked
hyperparameters; another framework calls :func:`radam`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from netcl.optim import hyperparameters as check
from netcl.optim.functional.device_arrays import ArrayLike
from netcl.optim.functional.elementwise import elementwise_step
from netcl.optim.functional.kernels import GradScaling, LiveGroup
from netcl.optim.hyperparameters import Hyperparameters, hyperparameter

# The update in words, shared by :func:`radam`'s and :class:`netcl.optim.RAdam`'s docstrings.
RADAM_MATH = """
    For each parameter p with gradient g, moments m and v, at its step t
    (PyTorch's rule; Liu et al., 2020)::

        g = -g                                   if maximize
        p = p * (1 - lr * weight_decay)          if decoupled_weight_decay
        g = g + weight_decay * p                 otherwise (coupled L2)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t)
        r = sqrt((rho_t - 4) (rho_t - 2) rho_inf / ((rho_inf - 4) (rho_inf - 2) rho_t))
        p = p - lr * m / (1 - beta1^t) * sqrt(1 - beta2^t) / (sqrt(v) + eps) * r
                                                 if rho_t > 5
        p = p - lr * m / (1 - beta1^t)           otherwise

    State (float32, zero at the start): ``exp_avg`` m and ``exp_avg_sq`` v.
"""


class RAdamState(NamedTuple):
    """RAdam's per-parameter state, by name (PyTorch's): two float32 buffers."""

    exp_avg: Any
    exp_avg_sq: Any


def weight_decay_scalars(lr: float, weight_decay: float, decoupled: bool) -> tuple[float, float]:
    """(coupled L2 coefficient, factor p is multiplied by) for one kernel serving both forms:
    (weight_decay, 1) coupled, (0, 1 - lr * weight_decay) decoupled (AdamW's)."""
    return (0.0, 1.0 - lr * weight_decay) if decoupled else (weight_decay, 1.0)


@dataclass(frozen=True)
class RAdamHyperparameters(Hyperparameters):
    """RAdam's hyperparameters, with PyTorch's names and defaults.

    >>> RAdamHyperparameters().rectification(5.0), RAdamHyperparameters().rectification(6.0) > 0
    (0.0, True)
    """

    lr: float = hyperparameter(1e-3, check.non_negative)
    betas: tuple[float, float] = hyperparameter((0.9, 0.999), check.betas)
    eps: float = hyperparameter(1e-8, check.non_negative)
    weight_decay: float = hyperparameter(0.0, check.non_negative)
    decoupled_weight_decay: bool = hyperparameter(False, check.flag)
    maximize: bool = hyperparameter(False, check.flag)

    def state_names(self) -> tuple[str, ...]:
        return RAdamState._fields

    def rectification(self, step: float) -> float:
        """The variance rectification term r at ``step``, 0 while rho_t <= 5 (no adaptive step)."""
        beta2 = self.betas[1]
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * step * (beta2**step) / (1 - beta2**step)
        if not rho_t > 5.0:
            return 0.0
        return math.sqrt(
            (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
        )

    def step_doubles(self, step: float) -> tuple[float, ...]:
        return (step, *self.betas)

    def kernel_scalars(self, step: float) -> tuple[np.float32, ...]:
        """``radam.cl``'s RADAM_HYPERPARAMETERS for a parameter at ``step`` (t >= 1), the
        bias corrections and r in double as PyTorch computes them."""
        beta1, beta2 = self.betas
        coupled, decay = weight_decay_scalars(
            self.lr, self.weight_decay, self.decoupled_weight_decay
        )
        return tuple(np.float32(x) for x in (
            -1.0 if self.maximize else 1.0, coupled, decay, 1.0 - beta1, beta2, 1.0 - beta2,
            1.0 - beta1**step, self.lr, (1.0 - beta2**step) ** 0.5, self.eps,
            self.rectification(step),
        ))


def radam(
    params: Sequence[ArrayLike],
    grads: Sequence[ArrayLike],
    exp_avgs: Sequence[ArrayLike],
    exp_avg_sqs: Sequence[ArrayLike],
    steps: Sequence[float],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    decoupled_weight_decay: bool,
    maximize: bool,
) -> None:
    """One RAdam step on every parameter, in place.

    The caller owns the state (zeros at the start) and counts the steps (``steps[i]``
    is 1 on a parameter's first update). Arrays as for
    :func:`~netcl.optim.functional.adam`.
    """
    hyper = RAdamHyperparameters.checked("radam", {
        "lr": lr, "betas": (beta1, beta2), "eps": eps, "weight_decay": weight_decay,
        "decoupled_weight_decay": decoupled_weight_decay, "maximize": maximize,
    })
    radam_step(hyper, params, grads, exp_avgs, exp_avg_sqs, steps)


radam.__doc__ = f"{radam.__doc__}{RADAM_MATH}"


def radam_step(
    hyper: RAdamHyperparameters,
    params: Sequence[ArrayLike],
    grads: Sequence[ArrayLike],
    exp_avgs: Sequence[ArrayLike],
    exp_avg_sqs: Sequence[ArrayLike],
    steps: Sequence[float],
    live: LiveGroup | None = None,
    grad_scaling: GradScaling | None = None,
) -> None:
    """:func:`radam` with checked hyperparameters: one ``radam_step`` launch per array,
    after every array is checked (``live``, ``grad_scaling``: see
    :func:`~netcl.optim.functional.adam_step`)."""
    elementwise_step(
        ("radam.cl", "radam_step"), {}, hyper, params, grads,
        {"exp_avgs": exp_avgs, "exp_avg_sqs": exp_avg_sqs}, steps,
        lambda h, t, i: h.kernel_scalars(t[i]), live, grad_scaling,
    )
