"""SGD and SGD with momentum as functions over lists of arrays.

``sgd`` and ``momentum`` check their arguments and hand them to
``sgd_per_tensor`` (one ``sgd_step`` launch per array; with the classes' flat
layout an array spans many parameters, see :mod:`netcl.optim.flat`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from netcl.optim import hyperparameters as check
from netcl.optim.functional.kernels import launch_step
from netcl.optim.functional.operands import ArrayLike, Span, check_param, spans


@dataclass(frozen=True)
class SGDHyperparameters:
    """One param group's SGD hyperparameters, checked; momentum 0 is plain SGD."""

    lr: float
    weight_decay: float
    maximize: bool
    momentum: float = 0.0
    dampening: float = 0.0
    nesterov: bool = False

    @classmethod
    def checked(
        cls, owner: str, *, lr: float, weight_decay: float, maximize: bool,
        momentum: float = 0.0, dampening: float = 0.0, nesterov: bool = False,
    ) -> SGDHyperparameters:
        hyper = cls(
            lr=check.non_negative(owner, "lr", lr),
            weight_decay=check.non_negative(owner, "weight_decay", weight_decay),
            maximize=check.flag(owner, "maximize", maximize),
            momentum=check.non_negative(owner, "momentum", momentum),
            dampening=check.finite(owner, "dampening", dampening),
            nesterov=check.flag(owner, "nesterov", nesterov),
        )
        if hyper.nesterov and (hyper.momentum <= 0 or hyper.dampening != 0):
            raise ValueError(
                f"{owner}: invalid nesterov: True with momentum={momentum!r} and "
                f"dampening={dampening!r} (Nesterov needs momentum > 0 and dampening 0)"
            )
        return hyper

    def kernel_scalars(self, first_step: bool) -> tuple[np.float32 | np.int32, ...]:
        """The kernel's SGD_HYPERPARAMETERS; ``first_step``: the buffer becomes the gradient."""
        return (
            np.float32(-1.0 if self.maximize else 1.0),
            np.float32(self.weight_decay),
            np.float32(-self.lr),
            np.float32(self.momentum),
            np.float32(1.0 - self.dampening),
            np.int32(self.nesterov),
            np.int32(first_step),
        )


def sgd(
    params: Sequence[ArrayLike],
    grads: Sequence[ArrayLike],
    *,
    lr: float,
    weight_decay: float,
    maximize: bool,
) -> None:
    """One SGD step on every parameter, in place::

        g = -g if maximize
        g = g + weight_decay * p
        p = p - lr * g

    Arrays as for :func:`~netcl.optim.functional.adam` (contiguous; params and
    grads float32 or float16). Nothing waits for the device.
    """
    hyper = SGDHyperparameters.checked("sgd", lr=lr, weight_decay=weight_decay, maximize=maximize)
    n = len(params)
    p, g = spans(params, "params", n), spans(grads, "grads", n)
    for i in range(n):
        check_param(i, p[i], g[i])
    sgd_per_tensor(p, g, None, [False] * n, hyper)


def momentum(
    params: Sequence[ArrayLike],
    grads: Sequence[ArrayLike],
    momentum_buffers: Sequence[ArrayLike],
    first_steps: Sequence[bool],
    *,
    lr: float,
    momentum: float,
    dampening: float,
    nesterov: bool,
    weight_decay: float,
    maximize: bool,
) -> None:
    """One step of SGD with momentum on every parameter, in place (PyTorch's rule)::

        g = -g if maximize
        g = g + weight_decay * p
        buf = g                                              if first_steps[i]
        buf = momentum * buf + (1 - dampening) * g           otherwise
        p = p - lr * (g + momentum * buf if nesterov else buf)

    ``momentum_buffers`` are float32; where ``first_steps[i]`` is True the buffer's
    old contents are ignored (a fresh buffer need not be zeroed).
    """
    hyper = SGDHyperparameters.checked(
        "momentum", lr=lr, weight_decay=weight_decay, maximize=maximize,
        momentum=momentum, dampening=dampening, nesterov=nesterov,
    )
    n = len(params)
    p, g = spans(params, "params", n), spans(grads, "grads", n)
    buf = spans(momentum_buffers, "momentum_buffers", n)
    if len(first_steps) != n:
        raise ValueError(f"first_steps has {len(first_steps)} entries, expected {n}")
    for i in range(n):
        check_param(i, p[i], g[i], momentum_buffers=buf[i])
    sgd_per_tensor(p, g, buf, first_steps, hyper)


def sgd_per_tensor(
    params: list[Span],
    grads: list[Span],
    momentum_buffers: list[Span] | None,
    first_steps: Sequence[bool],
    hyper: SGDHyperparameters,
) -> None:
    """One ``sgd_step`` launch per parameter (operands already checked)."""
    flags = {"MOMENTUM": int(momentum_buffers is not None)}
    for i, p in enumerate(params):
        g = grads[i]
        # Without momentum the kernel never touches the buffer; any buffer fills the slot.
        buf = momentum_buffers[i] if momentum_buffers is not None else g
        launch_step(
            "sgd.cl", "sgd_step", flags, (p, g, buf), hyper.kernel_scalars(bool(first_steps[i]))
        )
