"""Muon: the hyperparameters, the host half of the math, and the functional form.

The element-wise halves are ``muon.cl`` beside this file (``muon_momentum`` and
``muon_apply``); between them the matrices, stacked by shape, are orthogonalised by
Newton-Schulz iterations through netcl's batched matmul and ``ns_combine``.
:class:`netcl.optim.Muon` calls :func:`muon_step` with a group's checked
hyperparameters; another framework calls :func:`muon`. Reference: torch 2.13's
``torch.optim.Muon`` (Jordan et al., 2024, "Muon: An optimizer for hidden layers in
neural networks"; the learning rate adjustments of Liu et al., 2025, "Muon is
Scalable for LLM Training").
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from netcl.core.tensor import Tensor, bfloat16, empty, float32, ops, recorder
from netcl.core.tensor.ops.matmul import matmul_with
from netcl.optim import hyperparameters as check
from netcl.optim.functional.device_arrays import ArrayLike, Span, check_operands, span, spans
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
    """The Newton-Schulz iterate of ``u`` (torch's ``_zeropower_via_newtonschulz``): a
    contiguous float32 tensor of ``u``'s shape whose singular values lie near 1. ``u`` is
    one matrix, or a stack of matrices of one shape (k, rows, cols), each orthogonalised
    on its own by the same launches.

    ``ns_dtype="bfloat16"`` rounds to bfloat16 where torch's iterations do (the input,
    the normalised matrix, and each product's result: torch's bf16 matmul and addmm
    accumulate in float32 and round once): the iterate is held in bfloat16 and every
    product reads bfloat16 operands; ``"float32"`` rounds nowhere but float32.
    """
    if ns_dtype not in NS_DTYPES:
        raise ValueError(f"Muon: invalid ns_dtype: {ns_dtype!r} (expected one of {NS_DTYPES})")
    a, b, c = hyper.ns_coefficients
    dtype = bfloat16 if ns_dtype == "bfloat16" else float32
    wide = u.shape[-2] <= u.shape[-1]
    x = (u if wide else u.transpose(-2, -1)).astype(dtype)
    exact = x.astype(float32) if dtype != float32 else x  # the norm's squares are float32
    norm = ops.sqrt(ops.sum(exact * exact, (-2, -1), keepdims=True))
    floor = float(np.array(hyper.eps, np.float32).astype(dtype))
    x = (exact / ops.maximum(_rounded(norm, dtype), floor)).astype(dtype)
    # matmul_with, not @: an autocast region around the step is the model's, not Muon's.
    for _ in range(hyper.ns_steps):
        gram = matmul_with(x, x.transpose(-2, -1))  # rounds once, to the iterate's dtype
        polynomial = _combine(gram, matmul_with(gram, gram, out_dtype=float32), b, c)
        x = _combine(x, matmul_with(polynomial, x, out_dtype=float32), a, 1.0)
    return (x if wide else x.transpose(-2, -1)).astype(float32).contiguous()


def _rounded(x: Tensor, dtype: np.dtype[Any]) -> Tensor:
    """float32 ``x`` rounded to ``dtype`` (bfloat16 or float32), held as float32."""
    return x.astype(dtype).astype(float32) if dtype != float32 else x


def _combine(x: Tensor, y: Tensor, alpha: float, beta: float) -> Tensor:
    """``alpha * x + beta * y`` of ``x``'s dtype (``y`` float32, unrounded): one launch."""
    out = empty(x.shape, x.dtype, x.device)
    launch_step("muon.cl", "ns_combine", {"GRAD_SCALING": 0},
                (span(out, "out"), span(x, "x"), span(y, "y")),
                (np.float32(alpha), np.float32(beta)))
    return out


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
    a ``muon_momentum`` launch into a stack of matrices of its shape, the iterations once
    per stack (see :func:`orthogonalize`), a ``muon_apply`` launch per matrix (``live``,
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
        for stack in _stacks(p, shapes):
            rows, cols = shapes[stack[0]]
            u = empty((len(stack), rows, cols), float32, p[stack[0]].device)
            for j, i in enumerate(stack):
                momentum = step_scalars(hyper, (), i, lambda h, _, j: h.momentum_scalars(), live)
                launch_step("muon.cl", "muon_momentum", flags, (g[i], buf[i], span(u[j], "u")),
                            (*scaler_buffers, *momentum))
            o = orthogonalize(u, hyper, ns_dtype)
            for j, i in enumerate(stack):
                apply = functools.partial(_apply_scalars, (rows, cols))
                applied = step_scalars(hyper, (), i, apply, live)
                launch_step("muon.cl", "muon_apply", flags, (p[i], span(o[j], "o")),
                            (*scaler_buffers, *applied))


# A stack's Newton-Schulz temporaries are a few times its size; past this many elements
# (64 MiB of float32) a stack gains nothing in launches worth that memory.
MAX_STACK_ELEMENTS = 1 << 24


def _stacks(params: Sequence[Span], shapes: Sequence[Sequence[int]]) -> list[list[int]]:
    """The parameters' indices in stacks of one device and shape, in order, each at most
    MAX_STACK_ELEMENTS (or one matrix): a stack is orthogonalised by one set of launches,
    as a batch of matrices, where each matrix alone would take as many again."""
    stacks: dict[tuple[Any, int, int], list[list[int]]] = {}
    for i, (rows, cols) in enumerate(shapes):
        runs = stacks.setdefault((params[i].device, rows, cols), [[]])
        if runs[-1] and (len(runs[-1]) + 1) * rows * cols > MAX_STACK_ELEMENTS:
            runs.append([])
        runs[-1].append(i)
    return [stack for runs in stacks.values() for stack in runs]


def _apply_scalars(
    shape: tuple[int, int], hyper: MuonHyperparameters, steps: Sequence[float], i: int
) -> tuple[np.float32, ...]:
    return hyper.apply_scalars(shape)
