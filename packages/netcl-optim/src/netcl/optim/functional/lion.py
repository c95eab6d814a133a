"""Lion: the hyperparameters, the host half of the math, and the functional form.

The element-wise half is ``lion.cl`` beside this file (one kernel, ``lion_step``).
:class:`netcl.optim.Lion` calls :func:`lion_step` with a group's checked
hyperparameters; another framework calls :func:`lion`. PyTorch has no Lion: the
reference is the paper's Algorithm 2 (Chen et al., 2023, "Symbolic Discovery of
Optimization Algorithms"), and so are the defaults.
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

# The update in words, shared by :func:`lion`'s and :class:`netcl.optim.Lion`'s docstrings.
LION_MATH = """
    For each parameter p with gradient g and momentum m (the paper's Algorithm 2)::

        g = -g                                   if maximize
        c = beta1 * m + (1 - beta1) * g
        p = p - lr * (sign(c) + weight_decay * p)
        m = beta2 * m + (1 - beta2) * g

    Every element moves by exactly lr (or 0 where c is 0) besides the decay, so
    Lion wants an lr 3-10x smaller than AdamW's and a weight decay as much larger
    (the paper's advice). State (float32, zero at the start): ``exp_avg`` m.
"""


class LionState(NamedTuple):
    """Lion's per-parameter state, by name: one float32 buffer."""

    exp_avg: Any


@dataclass(frozen=True)
class LionHyperparameters(Hyperparameters):
    """Lion's hyperparameters, with the paper's defaults (lr 1e-4, betas (0.9, 0.99)).

    >>> LionHyperparameters().state_names()
    ('exp_avg',)
    """

    counts_steps = False

    lr: float = hyperparameter(1e-4, check.non_negative)
    betas: tuple[float, float] = hyperparameter((0.9, 0.99), check.betas)
    weight_decay: float = hyperparameter(0.0, check.non_negative)
    maximize: bool = hyperparameter(False, check.flag)

    def state_names(self) -> tuple[str, ...]:
        return LionState._fields

    def kernel_scalars(self) -> tuple[np.float32, ...]:
        """``lion.cl``'s LION_HYPERPARAMETERS."""
        beta1, beta2 = self.betas
        return tuple(np.float32(x) for x in (
            -1.0 if self.maximize else 1.0, 1.0 - self.lr * self.weight_decay,
            1.0 - beta1, 1.0 - beta2, -self.lr,
        ))


def lion(
    params: Sequence[ArrayLike],
    grads: Sequence[ArrayLike],
    exp_avgs: Sequence[ArrayLike],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    weight_decay: float,
    maximize: bool,
) -> None:
    """One Lion step on every parameter, in place.

    The caller owns the state (zeros at the start). Arrays as for
    :func:`~netcl.optim.functional.adam`.
    """
    hyper = LionHyperparameters.checked("lion", {
        "lr": lr, "betas": (beta1, beta2), "weight_decay": weight_decay, "maximize": maximize,
    })
    lion_step(hyper, params, grads, exp_avgs)


lion.__doc__ = f"{lion.__doc__}{LION_MATH}"


def lion_step(
    hyper: LionHyperparameters,
    params: Sequence[ArrayLike],
    grads: Sequence[ArrayLike],
    exp_avgs: Sequence[ArrayLike],
    live: LiveGroup | None = None,
    grad_scaling: GradScaling | None = None,
) -> None:
    """:func:`lion` with checked hyperparameters: one ``lion_step`` launch per array,
    after every array is checked (``live``, ``grad_scaling``: see
    :func:`~netcl.optim.functional.adam_step`)."""
    elementwise_step(
        ("lion.cl", "lion_step"), {}, hyper, params, grads, {"exp_avgs": exp_avgs}, None,
        lambda h, _, i: h.kernel_scalars(), live, grad_scaling,
    )
