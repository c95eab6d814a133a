"""Adam and AdamW as functions over lists of arrays (the layer under the classes).

``adam`` checks its arguments and hands them to ``adam_per_tensor``: one
kernel launch per array. The optimizer classes' fused path calls it too, with
each array a view over a whole run of parameters of a flat layout, so one
launch steps many parameters (see :mod:`netcl.optim.flat`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from netcl.optim import hyperparameters as check
from netcl.optim.functional.kernels import launch_step
from netcl.optim.functional.operands import ArrayLike, Span, check_param, spans


@dataclass(frozen=True)
class AdamHyperparameters:
    """One param group's Adam hyperparameters, checked."""

    lr: float
    beta1: float
    beta2: float
    eps: float
    weight_decay: float
    amsgrad: bool
    maximize: bool
    decoupled: bool

    @classmethod
    def checked(
        cls, owner: str, *, lr: float, beta1: float, beta2: float, eps: float,
        weight_decay: float, amsgrad: bool, maximize: bool, decoupled: bool,
    ) -> AdamHyperparameters:
        return cls(
            lr=check.non_negative(owner, "lr", lr),
            beta1=check.unit_interval(owner, "beta1", beta1, closed=False),
            beta2=check.unit_interval(owner, "beta2", beta2, closed=False),
            eps=check.non_negative(owner, "eps", eps),
            weight_decay=check.non_negative(owner, "weight_decay", weight_decay),
            amsgrad=check.flag(owner, "amsgrad", amsgrad),
            maximize=check.flag(owner, "maximize", maximize),
            decoupled=check.flag(owner, "decoupled", decoupled),
        )

    def kernel_scalars(self, step: float) -> tuple[np.float32, ...]:
        """The kernel's ADAM_HYPERPARAMETERS for a parameter at ``step`` (t >= 1).

        Bias corrections are computed here in double, as PyTorch's single-tensor
        path does, and rounded to float once: step_size = lr / (1 - beta1^t) and
        sqrt(1 - beta2^t).
        """
        bias_correction1 = 1.0 - self.beta1**step
        bias_correction2 = 1.0 - self.beta2**step
        coupled = 0.0 if self.decoupled else self.weight_decay
        decay = 1.0 - self.lr * self.weight_decay if self.decoupled else 1.0
        return (
            np.float32(-1.0 if self.maximize else 1.0),
            np.float32(coupled),
            np.float32(decay),
            np.float32(1.0 - self.beta1),
            np.float32(self.beta2),
            np.float32(1.0 - self.beta2),
            np.float32(-(self.lr / bias_correction1)),
            np.float32(bias_correction2**0.5),
            np.float32(self.eps),
        )


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
) -> None:
    """One Adam (``decoupled=False``) or AdamW step on every parameter, in place.

    For each parameter p with gradient g, first moment m, second moment v (and
    v_max with ``amsgrad``), at step t = ``steps[i]`` (1 on its first update; the
    caller counts)::

        g = -g if maximize
        p = p * (1 - lr * weight_decay)          if decoupled (AdamW)
        g = g + weight_decay * p                 otherwise (coupled L2)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        v_max = max(v_max, v)                    if amsgrad, and v_max replaces v below
        p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    Every array is a netcl Tensor, a ``pyopencl.array.Array`` or a
    :class:`~netcl.optim.functional.operands.DeviceArray`, contiguous. ``params``
    and ``grads`` are float32 or float16 (the same per parameter); the state is
    float32 (arithmetic is float32 throughout). ``max_exp_avg_sqs`` may be None
    unless ``amsgrad``. Work is enqueued on each parameter's queue; nothing waits.
    Everything is checked before anything is enqueued.
    """
    hyper = AdamHyperparameters.checked(
        "adam", lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay,
        amsgrad=amsgrad, maximize=maximize, decoupled=decoupled,
    )
    n = len(params)
    p, g = spans(params, "params", n), spans(grads, "grads", n)
    m, v = spans(exp_avgs, "exp_avgs", n), spans(exp_avg_sqs, "exp_avg_sqs", n)
    vmax = spans(max_exp_avg_sqs or [], "max_exp_avg_sqs", n) if amsgrad else None
    if len(steps) != n:
        raise ValueError(f"steps has {len(steps)} entries, expected {n} (one per param)")
    for i in range(n):
        extra = {"max_exp_avg_sqs": vmax[i]} if vmax is not None else {}
        check_param(i, p[i], g[i], exp_avgs=m[i], exp_avg_sqs=v[i], **extra)
        if not steps[i] >= 1:
            raise ValueError(f"steps[{i}] is {steps[i]!r}; a step count is >= 1")
    adam_per_tensor(p, g, m, v, vmax, steps, hyper)


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
) -> None:
    """:func:`adam` with ``decoupled=True``: AdamW's p *= 1 - lr * weight_decay."""
    adam(
        params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, lr=lr, beta1=beta1,
        beta2=beta2, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize,
        decoupled=True,
    )


def adam_per_tensor(
    params: list[Span],
    grads: list[Span],
    exp_avgs: list[Span],
    exp_avg_sqs: list[Span],
    max_exp_avg_sqs: list[Span] | None,
    steps: Sequence[float],
    hyper: AdamHyperparameters,
) -> None:
    """One ``adam_step`` launch per parameter (operands already checked)."""
    flags = {"DECOUPLED": int(hyper.decoupled), "AMSGRAD": int(hyper.amsgrad)}
    for i, p in enumerate(params):
        g, m, v = grads[i], exp_avgs[i], exp_avg_sqs[i]
        # Without amsgrad the kernel never touches vmax; any buffer fills the slot.
        vmax = max_exp_avg_sqs[i] if max_exp_avg_sqs is not None else m
        launch_step(
            "adam.cl", "adam_step", flags, (p, g, m, v, vmax), hyper.kernel_scalars(steps[i])
        )
