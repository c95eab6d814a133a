"""Adagrad: the hyperparameters, the host half of the math, and the functional form.

The element-wise half is ``adagrad.cl`` beside this file (one kernel, ``adagrad_step``).
:class:`netcl.optim.Adagrad` calls :func:`adagrad_step` with a group's checked
hyperparameters; another framework calls :func:`adagrad`.
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

# The update in words, shared by :func:`adagrad`'s and :class:`netcl.optim.Adagrad`'s docstrings.
ADAGRAD_MATH = """
    For each parameter p with gradient g and sum of squares s, at its step t
    (PyTorch's rule; Duchi et al., 2011)::

        g = -g                                   if maximize
        g = g + weight_decay * p                 (coupled L2)
        s = s + g * g
        p = p - lr / (1 + (t - 1) * lr_decay) * g / (sqrt(s) + eps)

    State (float32): ``sum`` s, ``initial_accumulator_value`` at the start.
"""


class AdagradState(NamedTuple):
    """Adagrad's per-parameter state, by name (PyTorch's): one float32 buffer."""

    sum: Any


@dataclass(frozen=True)
class AdagradHyperparameters(Hyperparameters):
    """Adagrad's hyperparameters, with PyTorch's names and defaults.

    >>> AdagradHyperparameters(initial_accumulator_value=0.1).initial_value("sum")
    0.1
    """

    lr: float = hyperparameter(1e-2, check.non_negative)
    lr_decay: float = hyperparameter(0.0, check.non_negative)
    weight_decay: float = hyperparameter(0.0, check.non_negative)
    initial_accumulator_value: float = hyperparameter(0.0, check.non_negative)
    eps: float = hyperparameter(1e-10, check.non_negative)
    maximize: bool = hyperparameter(False, check.flag)

    def state_names(self) -> tuple[str, ...]:
        return AdagradState._fields

    def initial_value(self, name: str) -> float:
        return self.initial_accumulator_value

    def step_doubles(self, step: float) -> tuple[float, ...]:
        return (step, self.lr, self.lr_decay)

    def kernel_scalars(self, step: float) -> tuple[np.float32, ...]:
        """``adagrad.cl``'s ADAGRAD_HYPERPARAMETERS for a parameter at ``step`` (t >= 1)."""
        return (
            np.float32(-1.0 if self.maximize else 1.0),
            np.float32(self.weight_decay),
            np.float32(self.eps),
            np.float32(-(self.lr / (1.0 + (step - 1.0) * self.lr_decay))),
        )


def adagrad(
    params: Sequence[ArrayLike],
    grads: Sequence[ArrayLike],
    state_sums: Sequence[ArrayLike],
    steps: Sequence[float],
    *,
    lr: float,
    lr_decay: float,
    weight_decay: float,
    eps: float,
    maximize: bool,
) -> None:
    """One Adagrad step on every parameter, in place.

    The caller owns the sums (filled with the initial accumulator value at the
    start) and counts the steps (``steps[i]`` is 1 on a parameter's first update).
    Arrays as for :func:`~netcl.optim.functional.adam`.
    """
    hyper = AdagradHyperparameters.checked("adagrad", {
        "lr": lr, "lr_decay": lr_decay, "weight_decay": weight_decay,
        "initial_accumulator_value": 0.0, "eps": eps, "maximize": maximize,
    })
    adagrad_step(hyper, params, grads, state_sums, steps)


adagrad.__doc__ = f"{adagrad.__doc__}{ADAGRAD_MATH}"


def adagrad_step(
    hyper: AdagradHyperparameters,
    params: Sequence[ArrayLike],
    grads: Sequence[ArrayLike],
    state_sums: Sequence[ArrayLike],
    steps: Sequence[float],
    live: LiveGroup | None = None,
    grad_scaling: GradScaling | None = None,
) -> None:
    """:func:`adagrad` with checked hyperparameters: one ``adagrad_step`` launch per array,
    after every array is checked (``live``, ``grad_scaling``: see
    :func:`~netcl.optim.functional.adam_step`)."""
    elementwise_step(
        ("adagrad.cl", "adagrad_step"), {}, hyper, params, grads, {"state_sums": state_sums},
        steps, lambda h, t, i: h.kernel_scalars(t[i]), live, grad_scaling,
    )
