"""SGD and SGD with momentum: the hyperparameters, the host half, the functional forms.

The element-wise half is ``sgd.cl`` beside this file (one kernel, ``sgd_step``;
momentum is its ``MOMENTUM`` define). :class:`netcl.optim.SGD` (and its subclass
:class:`netcl.optim.Momentum`) calls :func:`sgd_step` with a group's checked
hyperparameters; another framework calls :func:`sgd` or :func:`momentum`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import numpy as np

from netcl.optim import hyperparameters as check
from netcl.optim.functional.device_arrays import ArrayLike, check_operands, spans
from netcl.optim.functional.kernels import LiveGroup, launch_step, step_scalars
from netcl.optim.hyperparameters import Hyperparameters, hyperparameter

# The updates in words, shared by the functional forms' and the classes' docstrings.
SGD_MATH = """
    For each parameter p with gradient g::

        g = -g                          if maximize
        g = g + weight_decay * p        (coupled L2)
        p = p - lr * g
"""
MOMENTUM_MATH = """
    For each parameter p with gradient g and momentum buffer b (PyTorch's rule)::

        g = -g                                     if maximize
        g = g + weight_decay * p                   (coupled L2)
        b = g                                      on the parameter's first step
        b = momentum * b + (1 - dampening) * g     after
        p = p - lr * (g + momentum * b)            if nesterov
        p = p - lr * b                             otherwise
"""


class MomentumState(NamedTuple):
    """SGD with momentum's per-parameter state, by name (PyTorch's): one float32 buffer."""

    momentum_buffer: Any


@dataclass(frozen=True)
class SGDHyperparameters(Hyperparameters):
    """Plain SGD's hyperparameters, for :func:`sgd` (the classes use
    :class:`MomentumHyperparameters`, momentum 0 meaning plain SGD).

    >>> SGDHyperparameters.checked("SGD", {"lr": -1, "weight_decay": 0, "maximize": False})
    Traceback (most recent call last):
    ...
    ValueError: SGD: invalid lr: -1 (expected a finite number >= 0)
    """

    counts_steps = False

    lr: float = hyperparameter(1e-3, check.non_negative)
    weight_decay: float = hyperparameter(0.0, check.non_negative)
    maximize: bool = hyperparameter(False, check.flag)

    def kernel_scalars(self, first_step: bool) -> tuple[np.float32 | np.int32, ...]:
        """``sgd.cl``'s SGD_HYPERPARAMETERS, momentum 0."""
        return MomentumHyperparameters(
            self.lr, 0.0, 0.0, False, self.weight_decay, self.maximize
        ).kernel_scalars(first_step)


@dataclass(frozen=True)
class MomentumHyperparameters(Hyperparameters):
    """SGD's hyperparameters, PyTorch's ``SGD``'s (the field defaults are
    :class:`~netcl.optim.Momentum`'s, momentum 0.9; :class:`~netcl.optim.SGD`'s momentum
    defaults to 0, as torch's). With momentum 0 a step is plain SGD and keeps no buffer.

    >>> MomentumHyperparameters().state_names(), MomentumHyperparameters(momentum=0).state_names()
    (('momentum_buffer',), ())
    """

    counts_steps = False  # PyTorch's SGD keeps no step count
    # SGD's groups before it took momentum (netcl-optim 0.4.0 and earlier) were plain SGD's.
    absent_defaults: ClassVar[Mapping[str, object]] = {
        "momentum": 0.0, "dampening": 0.0, "nesterov": False}

    lr: float = hyperparameter(1e-3, check.non_negative)
    momentum: float = hyperparameter(0.9, check.non_negative)
    dampening: float = hyperparameter(0.0, check.finite)
    nesterov: bool = hyperparameter(False, check.flag)
    weight_decay: float = hyperparameter(0.0, check.non_negative)
    maximize: bool = hyperparameter(False, check.flag)

    def check_together(self, owner: str) -> None:
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError(
                f"{owner}: invalid nesterov: True with momentum={self.momentum!r} and "
                f"dampening={self.dampening!r} (Nesterov needs momentum > 0 and dampening 0)"
            )

    def state_names(self) -> tuple[str, ...]:
        return MomentumState._fields if self.momentum != 0 else ()

    def kernel_scalars(self, first_step: bool) -> tuple[np.float32 | np.int32, ...]:
        """``sgd.cl``'s SGD_HYPERPARAMETERS; ``first_step``: the buffer becomes the gradient."""
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
    """One SGD step on every parameter, in place.

    Arrays as for :func:`~netcl.optim.functional.adam` (contiguous; params and
    grads float32 or float16). Nothing waits for the device.
    """
    hyper = SGDHyperparameters.checked(
        "sgd", {"lr": lr, "weight_decay": weight_decay, "maximize": maximize}
    )
    sgd_step(hyper, params, grads, None, [False] * len(params))


sgd.__doc__ = f"{sgd.__doc__}{SGD_MATH}"


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
    """One step of SGD with momentum on every parameter, in place.

    ``momentum_buffers`` are float32; where ``first_steps[i]`` is True the buffer's
    old contents are ignored (a fresh buffer need not be zeroed).
    """
    hyper = MomentumHyperparameters.checked("momentum", {
        "lr": lr, "momentum": momentum, "dampening": dampening, "nesterov": nesterov,
        "weight_decay": weight_decay, "maximize": maximize,
    })
    sgd_step(hyper, params, grads, momentum_buffers, first_steps)


momentum.__doc__ = f"{momentum.__doc__}{MOMENTUM_MATH}"


def sgd_step(
    hyper: SGDHyperparameters | MomentumHyperparameters,
    params: Sequence[ArrayLike],
    grads: Sequence[ArrayLike],
    momentum_buffers: Sequence[ArrayLike] | None,
    first_steps: Sequence[bool],
    live: LiveGroup | None = None,
) -> None:
    """:func:`sgd` (``momentum_buffers`` None) or :func:`momentum` with checked
    hyperparameters: one ``sgd_step`` launch per array, after every array is checked.
    An optimizer class passes ``live`` (see :func:`~netcl.optim.functional.adam_step`)."""
    n = len(params)
    p, g = spans(params, "params", n), spans(grads, "grads", n)
    buf = spans(momentum_buffers, "momentum_buffers", n) if momentum_buffers is not None else None
    if len(first_steps) != n:
        raise ValueError(f"first_steps has {len(first_steps)} entries, expected {n}")
    for i in range(n):
        extra = {"momentum_buffers": buf[i]} if buf is not None else {}
        check_operands(i, p[i], g[i], **extra)
    flags = {"MOMENTUM": int(buf is not None)}
    for i in range(n):
        # Without momentum the kernel never touches the buffer; any buffer fills the slot.
        buf_i = buf[i] if buf is not None else g[i]
        scalars = step_scalars(
            hyper, (), i, lambda h, _, j: h.kernel_scalars(bool(first_steps[j])), live
        )
        launch_step("sgd.cl", "sgd_step", flags, (p[i], g[i], buf_i), scalars)
