"""Adamax: the hyperparameters, the host half of the math, and the functional form.

The element-wise half is ``adamax.cl`` beside this file (one kernel, ``adamax_step``).
:class:`netcl.optim.Adamax` calls :func:`adamax_step` with a group's checked
hyperparameters; another framework calls :func:`adamax`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from netcl.optim import hyperparameters as check
from netcl.optim.functional.device_arrays import ArrayLike
from netcl.optim.functional.elementwise import elementwise_step
from netcl.optim.functional.kernels import GradScaling, LiveGroup
from netcl.optim.hyperparameters import Hyperparameters, hyperparameter

# The update in words, shared by :func:`adamax`'s and :class:`netcl.optim.Adamax`'s docstrings.
ADAMAX_MATH = """
    For each parameter p with gradient g, first moment m and infinity norm u, at
    its step t (PyTorch's rule; Kingma and Ba, 2014, section 7.1)::

        g = -g                                   if maximize
        g = g + weight_decay * p                 (coupled L2)
        m = beta1 * m + (1 - beta1) * g
        u = max(beta2 * u, |g| + eps)
        p = p - lr / (1 - beta1^t) * m / u

    State (float32, zero at the start): ``exp_avg`` m and ``exp_inf`` u.
"""


class AdamaxState(NamedTuple):
    """Adamax's per-parameter state, by name (PyTorch's): two float32 buffers."""

    exp_avg: Any
    exp_inf: Any


@dataclass(frozen=True)
class AdamaxHyperparameters(Hyperparameters):
    """Adamax's hyperparameters, with PyTorch's names and defaults.

    >>> AdamaxHyperparameters().lr, AdamaxHyperparameters().state_names()
    (0.002, ('exp_avg', 'exp_inf'))
    """

    lr: float = hyperparameter(2e-3, check.non_negative)
    betas: tuple[float, float] = hyperparameter((0.9, 0.999), check.betas)
    eps: float = hyperparameter(1e-8, check.non_negative)
    weight_decay: float = hyperparameter(0.0, check.non_negative)
    maximize: bool = hyperparameter(False, check.flag)

    def state_names(self) -> tuple[str, ...]:
        return AdamaxState._fields

    def step_doubles(self, step: float) -> tuple[float, ...]:
        return (step, self.lr, self.betas[0])

    def kernel_scalars(self, step: float) -> tuple[np.float32, ...]:
        """``adamax.cl``'s ADAMAX_HYPERPARAMETERS for a parameter at ``step`` (t >= 1)."""
        beta1, beta2 = self.betas
        return (
            np.float32(-1.0 if self.maximize else 1.0),
            np.float32(self.weight_decay),
            np.float32(1.0 - beta1),
            np.float32(beta2),
            np.float32(self.eps),
            np.float32(-(self.lr / (1.0 - beta1**step))),
        )


def adamax(
    params: Sequence[ArrayLike],
    grads: Sequence[ArrayLike],
    exp_avgs: Sequence[ArrayLike],
    exp_infs: Sequence[ArrayLike],
    steps: Sequence[float],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    maximize: bool,
) -> None:
    """One Adamax step on every parameter, in place.

    The caller owns the state (zeros at the start) and counts the steps (``steps[i]``
    is 1 on a parameter's first update). Arrays as for
    :func:`~netcl.optim.functional.adam`.
    """
    hyper = AdamaxHyperparameters.checked("adamax", {
        "lr": lr, "betas": (beta1, beta2), "eps": eps, "weight_decay": weight_decay,
        "maximize": maximize,
    })
    adamax_step(hyper, params, grads, exp_avgs, exp_infs, steps)


adamax.__doc__ = f"{adamax.__doc__}{ADAMAX_MATH}"


def adamax_step(
    hyper: AdamaxHyperparameters,
    params: Sequence[ArrayLike],
    grads: Sequence[ArrayLike],
    exp_avgs: Sequence[ArrayLike],
    exp_infs: Sequence[ArrayLike],
    steps: Sequence[float],
    live: LiveGroup | None = None,
    grad_scaling: GradScaling | None = None,
) -> None:
    """:func:`adamax` with checked hyperparameters: one ``adamax_step`` launch per array,
    after every array is checked (``live``, ``grad_scaling``: see
    :func:`~netcl.optim.functional.adam_step`)."""
    elementwise_step(
        ("adamax.cl", "adamax_step"), {}, hyper, params, grads,
        {"exp_avgs": exp_avgs, "exp_infs": exp_infs}, steps,
        lambda h, t, i: h.kernel_scalars(t[i]), live, grad_scaling,
    )
