"""Gradient clipping: by global norm (clip_grad_norm_) and by value (clip_grad_value_)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from netcl.core.device import Device
from netcl.core.tensor import Tensor, float32
from netcl.core.tensor.dispatch import empty
from netcl.core.tensor.ops.elementwise import elementwise
from netcl.optim.functional.kernels import Layout, launch_over, optimizer_kernel, work_items
from netcl.optim.step_in_backward import stepped_in_backward

# Elements each work-item folds into one partial: enough that the partials read
# back to the host are few, small enough that a float partial stays accurate.
NORM_CHUNK = 1024
_NORM_LAYOUT = Layout(vec=1, chunk=NORM_CHUNK)


def _grads(parameters: Tensor | Iterable[Tensor]) -> list[Tensor]:
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    return [p.grad for p in params if p.grad is not None]


def _norm_kind(norm_type: float) -> int:
    """clip_grad.cl's NORM: 0 inf, 1 sum|g|, 2 sum g^2, 3 sum |g|^p, 4 -inf."""
    if norm_type == math.inf:
        return 0
    if norm_type == -math.inf:
        return 4
    if norm_type == 1:
        return 1
    if norm_type == 2:
        return 2
    if norm_type > 0:
        return 3
    raise ValueError(f"clip_grad_norm_: invalid norm_type: {norm_type!r} (expected > 0 or +-inf)")


def grad_norm(parameters: Tensor | Iterable[Tensor], norm_type: float = 2.0) -> float:
    """The ``norm_type``-norm of all gradients together, as one flat vector."""
    return _total_norm(_grads(parameters), norm_type)


def _total_norm(grads: list[Tensor], norm_type: float) -> float:
    kind = _norm_kind(float(norm_type))
    by_device: dict[Device, list[Tensor]] = {}
    for g in grads:
        if not g.is_contiguous:
            raise ValueError(f"clip_grad_norm_: a grad of shape {g.shape} is not contiguous")
        by_device.setdefault(g.device, []).append(g)
    partials: list[np.ndarray[Any, Any]] = []
    for device, on_device in by_device.items():
        partials.append(_partials(device, on_device, kind, float(norm_type)))
    values = np.concatenate(partials).astype(np.float64) if partials else np.zeros(0)
    if values.size == 0:
        return 0.0
    if kind == 0:
        return float(values.max())
    if kind == 4:
        return float(values.min())
    total = float(values.sum())
    return math.sqrt(total) if kind == 2 else total ** (1.0 / float(norm_type))


def _partials(
    device: Device, grads: list[Tensor], kind: int, norm_type: float
) -> np.ndarray[Any, Any]:
    """One float per NORM_CHUNK elements of every grad on ``device``, read back at once."""
    counts = [work_items(g.size, _NORM_LAYOUT) for g in grads]
    out = empty((sum(counts),), float32, device)
    start = 0
    for g, count in zip(grads, counts, strict=True):
        kernel, shape = optimizer_kernel(
            device, "clip_grad.cl", "norm_partials", g.dtype, {"NORM": kind}, _NORM_LAYOUT
        )
        launch_over(
            device, kernel, shape, g.size,
            g.buffer, np.int64(g.offset), out.buffer, np.int64(start), np.float32(norm_type),
        )
        start += count
    return out.numpy()


def clip_grad_norm_(
    parameters: Tensor | Iterable[Tensor],
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> float:
    """Scale every gradient in place so that their joint norm is at most ``max_norm``.

    total = ||(g_1, ..., g_n)||_p over all elements of all grads (p =
    ``norm_type``; inf is the largest |g|). If total > max_norm, every grad is
    multiplied by max_norm / (total + 1e-6), PyTorch's rule. Returns total, the
    norm before clipping, as a float (this reads one small buffer back).
    """
    if not math.isfinite(max_norm) or max_norm < 0:
        raise ValueError(f"clip_grad_norm_: invalid max_norm: {max_norm!r} (expected >= 0)")
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    for p in params:
        if stepped_in_backward(p):
            raise ValueError(
                f"clip_grad_norm_: a parameter of shape {p.shape} is stepped in backward "
                "(netcl.optim.step_in_backward), which applies and drops each gradient as soon "
                "as it is complete, before a norm over all of them exists; clip by value in "
                "the hook's place, or step after backward to clip by norm"
            )
    grads = _grads(params)
    total = _total_norm(grads, norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is "
            f"{total}; pass error_if_nonfinite=False to clip anyway"
        )
    coefficient = max_norm / (total + 1e-6)
    # PyTorch multiplies by min(coefficient, 1) always; times 1.0 changes nothing, so skip it.
    if coefficient < 1.0:
        for g in grads:
            g.mul_(coefficient)
    return total


def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float) -> None:
    """Clamp every gradient element into [-clip_value, clip_value], in place (nan stays nan)."""
    if not clip_value >= 0:
        raise ValueError(f"clip_grad_value_: invalid clip_value: {clip_value!r} (expected >= 0)")
    for g in _grads(parameters):
        # The bounds are kernel arguments, so a new clip_value builds nothing.
        elementwise(
            "clip_grad_value_", "(a < b ? b : (a > c ? c : a))",
            [g, -float(clip_value), float(clip_value)], out=g,
        )
