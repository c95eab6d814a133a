"""Muon: the hyperparameters, the host half of the math, and the functional form.

The element-wise halves are ``muon.cl`` beside this file (``muon_momentum`` and
``muon_apply``); between them each matrix is orthogonalised by Newton-Schulz
iterations through netcl's matmul. :class:`netcl.optim.Muon` calls
:func:`muon_step` with a group's checked hyperparameters; another framework
calls :func:`muon`. Reference: torch 2.13's ``torch.optim.Muon`` (Jordan et al.,
2024, "Muon: An optimizer for hidden layers in neural networks"; the learning
rate adjustments of Liu et al., 2025, "Muon is Scalable for LLM Training").
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from netcl.core.tensor import Tensor, bfloat16, empty, float32, full, ops, recorder
from netcl.optim import hyperparameters as check
from netcl.optim.functional.device_arrays import ArrayLike, check_operands, span, spans
from netcl.optim.functional.kernels import (
    GradScaling,
    LiveGroup,
    launch_step,
    scaling_flags,
    step_scalars,
)
from netcl.optim.hyperparameters import Hyperparameters, hyperparameter

# The update in words, shared by :func:`muon`'s and :class:`netcl.optim.Muon`'s docstrings.
MUON_MATH = """
    For each matrix p (rows A, columns B) with gradient g and momentum buffer b
    (PyTorch's rule)::

        b = momentum * b + (1 - momentum) * g
        u = (1 - momentum) * g + momentum * b      if nesterov, else u = b
        X = u / max(||u||_F, eps), transposed when A > B (so X X^T is the small Gram)
        ns_steps times:  G = X X^T;  X = a X + (b G + c G G) X
        p = p * (1 - lr * weight_decay) - lr * s * X   (X transposed back)

    with (a, b, c) = ns_coefficients and s = sqrt(max(1, A / B)) (``adjust_lr_fn``
    None or "original") or 0.2 * sqrt(max(A, B)) ("match_rms_adamw"). State
    (float32, zero at the start): ``momentum_buffer`` b. The iterations round to
    bfloat16 as torch's do (``ns_dtype="bfloat16"``, the default), or run in float32.
"""


class MuonState(NamedTuple):
    """Muon's per-parameter state, by name (PyTorch's): one float32 buffer."""

    momentum_buffer: Any


@dataclass(frozen=True)
class MuonHyperparameters(Hyperparameters):
    """Muon's hyperparameters, with PyTorch's names and defaults.

    >>> MuonHyperparameters().lr_scale((1024, 256)), MuonHyperparameters().lr_scale((256, 1024))
    (2.0, 1.0)
    """

    counts_steps = False

    lr: float = hyperparameter(1e-3, check.non_negative)
    weight_decay: float = hyperparameter(0.1, check.non_negative)
    momentum: float = hyperparameter(0.95, check.non_negative)
    nesterov: bool = hyperparameter(True, check.flag)
    ns_coefficients: tuple[float, float, float] = hyperparameter(
        (3.4445, -4.775, 2.0315), check.finite_triple
    )
    eps: float = hyperparameter(1e-7, check.non_negative)
    # torch refuses 100 or more: they would cost far more than they could change.
    ns_steps: int = hyperparameter(5, check.count_below(100))
    adjust_lr_fn: str | None = hyperparameter(
        None, check.one_of(None, "original", "match_rms_adamw")
    )

    def state_names(self) -> tuple[str, ...]:
        return MuonState._fields

    def lr_scale(self, shape: Sequence[int]) -> float:
        """What lr is multiplied by for a matrix of ``shape`` (torch's ``_adjust_lr``)."""
        rows, cols = shape[0], shape[1]
        if self.adjust_lr_fn == "match_rms_adamw":
            return 0.2 * math.sqrt(max(rows, cols))
        return math.sqrt(max(1, rows / cols))

    def momentum_scalars(self) -> tuple[Any, ...]:
        """``muon_momentum``'s scalars."""
        return (np.float32(self.momentum), np.float32(1.0 - self.momentum),
                np.int32(self.nesterov))

    def apply_scalars(self, shape: Sequence[int]) -> tuple[np.float32, ...]:
        """``muon_apply``'s scalars for a matrix of ``shape``."""
        return (np.float32(1.0 - self.lr * self.weight_decay),
                np.float32(-(self.lr * self.lr_scale(shape))))


NS_DTYPES = ("bfloat16", "float32")


def orthogonalize(u: Tensor, hyper: MuonHyperparameters, ns_dtype: str = "bfloat16") -> Tensor:
    """The Newton-Schulz iterate of 2-D ``u`` (torch's ``_zeropower_via_newtonschulz``): a
    contiguous float32 matrix of ``u``'s shape whose singular values lie near 1.

    ``ns_dtype="bfloat16"`` rounds to bfloat16 where torch's iterations do (the input,
    the normalised matrix, and each product's result: torch's bf16 matmul and addmm
    accumulate in float32 and round once), the products themselves running in float32
    on the rounded operands; ``"float32"`` rounds nowhere but float32.
    """
    if ns_dtype not in NS_DTYPES:
        raise ValueError(f"Muon: invalid ns_dtype: {ns_dtype!r} (expected one of {NS_DTYPES})")
    a, b, c = hyper.ns_coefficients
    rounded = _bfloat16_rounding if ns_dtype == "bfloat16" else _unrounded
    wide = u.shape[0] <= u.shape[1]
    x = rounded(u if wide else u.T)
    norm = rounded(ops.sqrt(ops.sum(x * x)))
    x = rounded(x / ops.maximum(norm, rounded(full((), hyper.eps, float32, x.device))))
    for _ in range(hyper.ns_steps):
        gram = rounded(x @ x.T)
        x = rounded(x * a + rounded(gram * b + (gram @ gram) * c) @ x)
    return (x if wide else x.T).contiguous()


def _bfloat16_rounding(x: Tensor) -> Tensor:
    return x.astype(bfloat16).astype(float32)


def _unrounded(x: Tensor) -> Tensor:
    return x


def muon(
    params: Sequence[ArrayLike],
    grads: Sequence[ArrayLike],
    momentum_buffers: Sequence[ArrayLike],
    shapes: Sequence[tuple[int, int]],
    *,
    lr: float,
    weight_decay: float,
    momentum: float,
    nesterov: bool,
    ns_coefficients: tuple[float, float, float],
    eps: float,
    ns_steps: int,
    adjust_lr_fn: str | None,
    ns_dtype: str = "bfloat16",
) -> None:
    """One Muon step on every matrix, in place (``ns_dtype``: see :func:`orthogonalize`).

    ``shapes[i]`` is parameter i's (rows, columns): the arrays themselves are flat
    runs of elements, row-major. The caller owns the momentum buffers (zeros at
    the start). Arrays as for :func:`~netcl.optim.functional.adam`.
    """
    hyper = MuonHyperparameters.checked("muon", {
        "lr": lr, "weight_decay": weight_decay, "momentum": momentum, "nesterov": nesterov,
        "ns_coefficients": ns_coefficients, "eps": eps, "ns_steps": ns_steps,
        "adjust_lr_fn": adjust_lr_fn,
    })
    muon_step(hyper, params, grads, momentum_buffers, shapes, ns_dtype=ns_dtype)


muon.__doc__ = f"{muon.__doc__}{MUON_MATH}"


def muon_step(
    hyper: MuonHyperparameters,
    params: Sequence[ArrayLike],
    grads: Sequence[ArrayLike],
    momentum_buffers: Sequence[ArrayLike],
    shapes: Sequence[Sequence[int]],
    live: LiveGroup | None = None,
    *,
    ns_dtype: str = "bfloat16",
    grad_scaling: GradScaling | None = None,
) -> None:
    """:func:`muon` with checked hyperparameters, after every array is checked: per matrix,
    a ``muon_momentum`` launch, the iterations, a ``muon_apply`` launch (``live``,
    ``grad_scaling``: see :func:`~netcl.optim.functional.adam_step`)."""
    n = len(params)
    p, g = spans(params, "params", n), spans(grads, "grads", n)
    buf = spans(momentum_buffers, "momentum_buffers", n)
    if ns_dtype not in NS_DTYPES:
        raise ValueError(f"muon: invalid ns_dtype: {ns_dtype!r} (expected one of {NS_DTYPES})")
    if len(shapes) != n:
        raise ValueError(f"shapes has {len(shapes)} entries, expected {n} (one per param)")
    for i in range(n):
        check_operands(i, p[i], g[i], momentum_buffers=buf[i])
        if len(shapes[i]) != 2 or shapes[i][0] * shapes[i][1] != p[i].count:
            raise ValueError(
                f"shapes[{i}] is {tuple(shapes[i])}; Muon steps matrices, and params[{i}] "
                f"has {p[i].count} elements"
            )
    flags, scaler_buffers = scaling_flags({}, grad_scaling)
    with recorder.recording(None):  # an optimizer's update is no op of a model
        for i in range(n):
            rows, cols = shapes[i]
            u = empty((rows, cols), float32, p[i].device)
            momentum = step_scalars(hyper, (), i, lambda h, _, j: h.momentum_scalars(), live)
            launch_step("muon.cl", "muon_momentum", flags, (g[i], buf[i], span(u, "u")),
                        (*scaler_buffers, *momentum))
            o = orthogonalize(u, hyper, ns_dtype)
            apply = functools.partial(_apply_scalars, (rows, cols))
            applied = step_scalars(hyper, (), i, apply, live)
            launch_step("muon.cl", "muon_apply", flags, (p[i], span(o, "o")),
                        (*scaler_buffers, *applied))


def _apply_scalars(
    shape: tuple[int, int], hyper: MuonHyperparameters, steps: Sequence[float], i: int
) -> tuple[np.float32, ...]:
    return hyper.apply_scalars(shape)
