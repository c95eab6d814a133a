"""NAdam: the hyperparameters, the host half of the math, and the functional form.

The element-wise half is ``nadam.cl`` beside this file (one kernel, ``nadam_step``).
:class:`netcl.optim.NAdam` calls :func:`nadam_step` with a group's checked
hyperparameters; another framework calls :func:`nadam`.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableSequence, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import numpy as np

from netcl.optim import hyperparameters as check
from netcl.optim.functional.device_arrays import ArrayLike
from netcl.optim.functional.elementwise import elementwise_step
from netcl.optim.functional.kernels import LiveGroup
from netcl.optim.functional.radam import weight_decay_scalars
from netcl.optim.hyperparameters import Hyperparameters, hyperparameter

# The update in words, shared by :func:`nadam`'s and :class:`netcl.optim.NAdam`'s docstrings.
NADAM_MATH = """
    For each parameter p with gradient g, moments m and v and momentum product P,
    at its step t (PyTorch's rule; Dozat, 2016)::

        g = -g                                   if maximize
        p = p * (1 - lr * weight_decay)          if decoupled_weight_decay
        g = g + weight_decay * p                 otherwise (coupled L2)
        mu_t = beta1 * (1 - 0.5 * 0.96^(t * momentum_decay))
        P = P * mu_t
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        d = sqrt(v / (1 - beta2^t)) + eps
        p = p - lr * (1 - mu_t) / (1 - P) * g / d - lr * mu_{t+1} / (1 - P mu_{t+1}) * m / d

    State: ``exp_avg`` m and ``exp_avg_sq`` v (float32, zero at the start), and
    ``mu_product`` P, a number kept in float32 as PyTorch keeps it (1 at the start).
"""


class NAdamState(NamedTuple):
    """NAdam's per-parameter buffers, by name (PyTorch's): two float32 buffers. The third
    piece of state, ``mu_product``, is a number (:attr:`NAdamHyperparameters.scalar_state`)."""

    exp_avg: Any
    exp_avg_sq: Any


@dataclass(frozen=True)
class NAdamHyperparameters(Hyperparameters):
    """NAdam's hyperparameters, with PyTorch's names and defaults.

    >>> NAdamHyperparameters().advance_scalars(1.0, {"mu_product": 1.0})  # mu_1, in float32
    {'mu_product': 0.4500734806060791}
    """

    scalar_state: ClassVar[Mapping[str, float]] = {"mu_product": 1.0}

    lr: float = hyperparameter(2e-3, check.non_negative)
    betas: tuple[float, float] = hyperparameter((0.9, 0.999), check.betas)
    eps: float = hyperparameter(1e-8, check.non_negative)
    weight_decay: float = hyperparameter(0.0, check.non_negative)
    momentum_decay: float = hyperparameter(4e-3, check.non_negative)
    decoupled_weight_decay: bool = hyperparameter(False, check.flag)
    maximize: bool = hyperparameter(False, check.flag)

    def state_names(self) -> tuple[str, ...]:
        return NAdamState._fields

    def mu(self, step: float) -> float:
        """The momentum schedule's mu at ``step``."""
        return float(self.betas[0] * (1.0 - 0.5 * (0.96 ** (step * self.momentum_decay))))

    def advance_scalars(self, step: float, scalars: Mapping[str, float]) -> dict[str, float]:
        # PyTorch keeps mu_product as a float32 tensor and multiplies it by a float32 mu.
        product = np.float32(scalars["mu_product"]) * np.float32(self.mu(step))
        return {"mu_product": float(product)}

    def kernel_scalars(self, step: float, mu_product: float) -> tuple[np.float32, ...]:
        """``nadam.cl``'s NADAM_HYPERPARAMETERS for a parameter at ``step`` (t >= 1) whose
        momentum product (this step's mu included) is ``mu_product``; in double, as
        PyTorch computes them."""
        beta1, beta2 = self.betas
        coupled, decay = weight_decay_scalars(
            self.lr, self.weight_decay, self.decoupled_weight_decay
        )
        mu, mu_next = self.mu(step), self.mu(step + 1.0)
        return tuple(np.float32(x) for x in (
            -1.0 if self.maximize else 1.0, coupled, decay, 1.0 - beta1, beta2, 1.0 - beta2,
            1.0 - beta2**step, self.eps,
            -self.lr * (1.0 - mu) / (1.0 - mu_product),
            (-self.lr * mu_next) / (1.0 - mu_product * mu_next),
        ))


def nadam(
    params: Sequence[ArrayLike],
    grads: Sequence[ArrayLike],
    exp_avgs: Sequence[ArrayLike],
    exp_avg_sqs: Sequence[ArrayLike],
    mu_products: MutableSequence[float],
    steps: Sequence[float],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    momentum_decay: float,
    decoupled_weight_decay: bool,
    maximize: bool,
) -> None:
    """One NAdam step on every parameter, in place.

    The caller owns the state: the buffers (zeros at the start), the step counts
    (``steps[i]`` is 1 on a parameter's first update) and ``mu_products`` (1.0 at
    the start), which this call multiplies by this step's mu, in place, as
    PyTorch's ``nadam`` does its 0-d tensors. Arrays as for
    :func:`~netcl.optim.functional.adam`.
    """
    hyper = NAdamHyperparameters.checked("nadam", {
        "lr": lr, "betas": (beta1, beta2), "eps": eps, "weight_decay": weight_decay,
        "momentum_decay": momentum_decay, "decoupled_weight_decay": decoupled_weight_decay,
        "maximize": maximize,
    })
    if len(mu_products) != len(params):
        raise ValueError(
            f"mu_products has {len(mu_products)} entries, expected {len(params)} (one per param)"
        )
    advanced = [
        hyper.advance_scalars(steps[i], {"mu_product": mu_products[i]})["mu_product"]
        for i in range(len(params))
    ]
    nadam_step(hyper, params, grads, exp_avgs, exp_avg_sqs, advanced, steps)
    mu_products[:] = advanced


nadam.__doc__ = f"{nadam.__doc__}{NADAM_MATH}"


def nadam_step(
    hyper: NAdamHyperparameters,
    params: Sequence[ArrayLike],
    grads: Sequence[ArrayLike],
    exp_avgs: Sequence[ArrayLike],
    exp_avg_sqs: Sequence[ArrayLike],
    mu_products: Sequence[float],
    steps: Sequence[float],
    live: LiveGroup | None = None,
) -> None:
    """:func:`nadam` with checked hyperparameters and ``mu_products`` already advanced to
    this step: one ``nadam_step`` launch per array, after every array is checked.
    ``live``: see :func:`~netcl.optim.functional.adam_step` (an optimizer class then
    passes ``mu_products`` that read each parameter's state when indexed)."""
    elementwise_step(
        ("nadam.cl", "nadam_step"), {}, hyper, params, grads,
        {"exp_avgs": exp_avgs, "exp_avg_sqs": exp_avg_sqs}, steps,
        lambda h, t, i: h.kernel_scalars(t[i], mu_products[i]), live,
    )
