"""RMSProp: the hyperparameters, the host half of the math, and the functional form.

The element-wise half is ``rmsprop.cl`` beside this file (one kernel,
``rmsprop_step``; ``CENTERED`` and ``MOMENTUM`` defines). :class:`netcl.optim.RMSProp`
calls :func:`rmsprop_step` with a group's checked hyperparameters; another
framework calls :func:`rmsprop`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from netcl.optim import hyperparameters as check
from netcl.optim.functional.device_arrays import ArrayLike, check_operands, spans
from netcl.optim.functional.kernels import LiveGroup, launch_step, step_scalars
from netcl.optim.hyperparameters import Hyperparameters, hyperparameter

# The update in words, shared by :func:`rmsprop`'s and :class:`netcl.optim.RMSProp`'s docstrings.
RMSPROP_MATH = """
    For each parameter p with gradient g (PyTorch's rule)::

        g = -g                                        if maximize
        g = g + weight_decay * p                      (coupled L2)
        s = alpha * s + (1 - alpha) * g * g
        a = alpha * a + (1 - alpha) * g               if centered
        d = sqrt(s - a * a) + eps                     if centered, else sqrt(s) + eps
        b = momentum * b + g / d;  p = p - lr * b     if momentum > 0
        p = p - lr * g / d                            otherwise

    State (float32, zero at the start): ``square_avg`` s, ``grad_avg`` a when
    centered, ``momentum_buffer`` b when momentum > 0.
"""


class RMSPropState(NamedTuple):
    """RMSProp's per-parameter state, by name (PyTorch's): float32 buffers, the momentum
    buffer only with momentum > 0, the mean gradient only when centered."""

    square_avg: Any
    momentum_buffer: Any = None
    grad_avg: Any = None


@dataclass(frozen=True)
class RMSPropHyperparameters(Hyperparameters):
    """RMSProp's hyperparameters, with PyTorch's names and defaults.

    >>> RMSPropHyperparameters(momentum=0.5, centered=True).state_names()
    ('square_avg', 'momentum_buffer', 'grad_avg')
    """

    lr: float = hyperparameter(1e-2, check.non_negative)
    alpha: float = hyperparameter(0.99, check.unit_interval)
    eps: float = hyperparameter(1e-8, check.non_negative)
    weight_decay: float = hyperparameter(0.0, check.non_negative)
    momentum: float = hyperparameter(0.0, check.non_negative)
    centered: bool = hyperparameter(False, check.flag)
    maximize: bool = hyperparameter(False, check.flag)

    def state_names(self) -> tuple[str, ...]:
        square_avg, momentum_buffer, grad_avg = RMSPropState._fields
        return (square_avg, *[momentum_buffer] * (self.momentum > 0),
                *[grad_avg] * self.centered)

    def kernel_scalars(self) -> tuple[np.float32, ...]:
        """``rmsprop.cl``'s RMSPROP_HYPERPARAMETERS."""
        return (
            np.float32(-1.0 if self.maximize else 1.0),
            np.float32(self.weight_decay),
            np.float32(-self.lr),
            np.float32(self.alpha),
            np.float32(1.0 - self.alpha),
            np.float32(self.eps),
            np.float32(self.momentum),
        )


def rmsprop(
    params: Sequence[ArrayLike],
    grads: Sequence[ArrayLike],
    square_avgs: Sequence[ArrayLike],
    grad_avgs: Sequence[ArrayLike] | None,
    momentum_buffers: Sequence[ArrayLike] | None,
    *,
    lr: float,
    alpha: float,
    eps: float,
    weight_decay: float,
    momentum: float,
    centered: bool,
    maximize: bool,
) -> None:
    """One RMSProp step on every parameter, in place.

    ``grad_avgs`` are needed only when ``centered``, ``momentum_buffers`` only
    when ``momentum > 0``; both start at zero. Arrays as for
    :func:`~netcl.optim.functional.adam`.
    """
    hyper = RMSPropHyperparameters.checked("rmsprop", {
        "lr": lr, "alpha": alpha, "eps": eps, "weight_decay": weight_decay,
        "momentum": momentum, "centered": centered, "maximize": maximize,
    })
    rmsprop_step(hyper, params, grads, square_avgs, grad_avgs, momentum_buffers)


rmsprop.__doc__ = f"{rmsprop.__doc__}{RMSPROP_MATH}"


def rmsprop_step(
    hyper: RMSPropHyperparameters,
    params: Sequence[ArrayLike],
    grads: Sequence[ArrayLike],
    square_avgs: Sequence[ArrayLike],
    grad_avgs: Sequence[ArrayLike] | None,
    momentum_buffers: Sequence[ArrayLike] | None,
    live: LiveGroup | None = None,
) -> None:
    """:func:`rmsprop` with checked hyperparameters: one ``rmsprop_step`` launch per
    array, after every array is checked. An optimizer class passes ``live`` (see
    :func:`~netcl.optim.functional.adam_step`)."""
    n = len(params)
    p, g = spans(params, "params", n), spans(grads, "grads", n)
    sq = spans(square_avgs, "square_avgs", n)
    avg = spans(grad_avgs or [], "grad_avgs", n) if hyper.centered else None
    buf = spans(momentum_buffers or [], "momentum_buffers", n) if hyper.momentum > 0 else None
    for i in range(n):
        extra = {"grad_avgs": avg[i]} if avg is not None else {}
        if buf is not None:
            extra["momentum_buffers"] = buf[i]
        check_operands(i, p[i], g[i], square_avgs=sq[i], **extra)
    flags = {"CENTERED": int(avg is not None), "MOMENTUM": int(buf is not None)}
    for i in range(n):
        # Buffers a variant does not use are never touched; any buffer fills the slot.
        avg_i = avg[i] if avg is not None else sq[i]
        buf_i = buf[i] if buf is not None else sq[i]
        scalars = step_scalars(hyper, (), i, lambda h, _, j: h.kernel_scalars(), live)
        launch_step("rmsprop.cl", "rmsprop_step", flags, (p[i], g[i], sq[i], avg_i, buf_i),
                    scalars)
