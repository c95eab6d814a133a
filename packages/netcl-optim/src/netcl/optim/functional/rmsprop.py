"""RMSProp as a function over lists of arrays.

``rmsprop`` checks its arguments and hands them to ``rmsprop_per_tensor`` (one
``rmsprop_step`` launch per array; with the classes' flat layout an array spans
many parameters, see :mod:`netcl.optim.flat`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from netcl.optim import hyperparameters as check
from netcl.optim.functional.kernels import launch_step
from netcl.optim.functional.operands import ArrayLike, Span, check_param, spans


@dataclass(frozen=True)
class RMSPropHyperparameters:
    """One param group's RMSProp hyperparameters, checked."""

    lr: float
    alpha: float
    eps: float
    weight_decay: float
    momentum: float
    centered: bool
    maximize: bool

    @classmethod
    def checked(
        cls, owner: str, *, lr: float, alpha: float, eps: float, weight_decay: float,
        momentum: float, centered: bool, maximize: bool,
    ) -> RMSPropHyperparameters:
        return cls(
            lr=check.non_negative(owner, "lr", lr),
            alpha=check.unit_interval(owner, "alpha", alpha, closed=True),
            eps=check.non_negative(owner, "eps", eps),
            weight_decay=check.non_negative(owner, "weight_decay", weight_decay),
            momentum=check.non_negative(owner, "momentum", momentum),
            centered=check.flag(owner, "centered", centered),
            maximize=check.flag(owner, "maximize", maximize),
        )

    def kernel_scalars(self) -> tuple[np.float32, ...]:
        """The kernel's RMSPROP_HYPERPARAMETERS."""
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
    """One RMSProp step on every parameter, in place (PyTorch's rule)::

        g = -g if maximize
        g = g + weight_decay * p
        s = alpha * s + (1 - alpha) * g * g
        a = alpha * a + (1 - alpha) * g;  d = sqrt(s - a * a) + eps    if centered
        d = sqrt(s) + eps                                               otherwise
        buf = momentum * buf + g / d;  p = p - lr * buf                 if momentum > 0
        p = p - lr * g / d                                              otherwise

    ``grad_avgs`` (a) are needed only when ``centered``, ``momentum_buffers``
    only when ``momentum > 0``; both start at zero. State is float32.
    """
    hyper = RMSPropHyperparameters.checked(
        "rmsprop", lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
        momentum=momentum, centered=centered, maximize=maximize,
    )
    n = len(params)
    p, g = spans(params, "params", n), spans(grads, "grads", n)
    sq = spans(square_avgs, "square_avgs", n)
    avg = spans(grad_avgs or [], "grad_avgs", n) if centered else None
    buf = spans(momentum_buffers or [], "momentum_buffers", n) if momentum > 0 else None
    for i in range(n):
        extra = {"grad_avgs": avg[i]} if avg is not None else {}
        if buf is not None:
            extra["momentum_buffers"] = buf[i]
        check_param(i, p[i], g[i], square_avgs=sq[i], **extra)
    rmsprop_per_tensor(p, g, sq, avg, buf, hyper)


def rmsprop_per_tensor(
    params: list[Span],
    grads: list[Span],
    square_avgs: list[Span],
    grad_avgs: list[Span] | None,
    momentum_buffers: list[Span] | None,
    hyper: RMSPropHyperparameters,
) -> None:
    """One ``rmsprop_step`` launch per parameter (operands already checked)."""
    flags = {"CENTERED": int(grad_avgs is not None), "MOMENTUM": int(momentum_buffers is not None)}
    scalars = hyper.kernel_scalars()
    for i, p in enumerate(params):
        g, sq = grads[i], square_avgs[i]
        # Buffers a variant does not use are never touched; any buffer fills the slot.
        avg = grad_avgs[i] if grad_avgs is not None else sq
        buf = momentum_buffers[i] if momentum_buffers is not None else sq
        launch_step("rmsprop.cl", "rmsprop_step", flags, (p, g, sq, avg, buf), scalars)
