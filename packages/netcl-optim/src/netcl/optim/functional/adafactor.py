"""Adafactor: the hyperparameters and the functional form, over netcl tensors.

Reference: torch 2.13's ``torch.optim.Adafactor`` (Shazeer and Stern, 2018,
"Adafactor: Adaptive Learning Rates with Sublinear Memory Cost", with torch's
choices: beta2_t = 1 - t^beta2_decay, the relative step size and the update
clipping by d). A matrix (or a stack of them) keeps the running mean of its
gradient's squares per row and per column only: O(rows + cols) state, whose
outer product, divided by the rows' mean, estimates the full second moment.

Each step reads two norms (the parameter's, the update's) and row and column
sums: netcl's reductions, kept on the device (torch reads both norms back to the
host); the element-wise rest is ``adafactor.cl``'s three kernels. One parameter at a
time (12 launches), so :class:`netcl.optim.Adafactor` keeps no flat layout.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from netcl.core.tensor import Tensor, empty, float32, ops, recorder
from netcl.optim import hyperparameters as check
from netcl.optim.functional.device_arrays import Span, span
from netcl.optim.functional.kernels import launch_step
from netcl.optim.hyperparameters import Hyperparameters, hyperparameter

# The update in words, shared by :func:`adafactor`'s and :class:`netcl.optim.Adafactor`'s
# docstrings.
ADAFACTOR_MATH = """
    For each parameter p of n elements with gradient g at its step t (PyTorch's rule)::

        g = -g                                     if maximize
        w = t^beta2_decay                          (1 - beta2_t)
        alpha = max(eps2, ||p|| / sqrt(n)) * min(lr, 1 / sqrt(t))
        p = p * (1 - lr * weight_decay)
        if p has 2 or more dimensions (rows R, columns C: the last two):
            r = (1 - w) r + w * mean(g^2 over columns)       (``row_var``, shape (..., R, 1))
            c = (1 - w) c + w * mean(g^2 over rows)          (``col_var``, shape (..., 1, C))
            v = r c / max(mean(r over rows), eps1)
        else:
            v = (1 - w) v + w * g^2                          (``variance``, p's shape)
        u = g / sqrt(max(v, eps1^2))
        p = p - alpha / max(1, ||u|| / (sqrt(n) d)) * u

    eps1 None means the machine epsilon of the parameter's dtype (torch's default).
    State (float32, zero at the start): ``row_var`` and ``col_var``, or ``variance``.
"""


def _optional_non_negative(owner: str, name: str, value: object) -> float | None:
    return None if value is None else check.non_negative(owner, name, value)


def _eps_pair(owner: str, name: str, value: object) -> tuple[float | None, float]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence) or len(value) != 2:
        raise ValueError(f"{owner}: invalid {name}: {value!r} (expected a pair (eps1, eps2))")
    return (_optional_non_negative(owner, f"eps1 ({name}[0])", value[0]),
            check.non_negative(owner, f"eps2 ({name}[1])", value[1]))


def _non_positive(owner: str, name: str, value: object) -> float:
    number = check.finite(owner, name, value)
    if number > 0:
        raise ValueError(f"{owner}: invalid {name}: {value!r} (expected a number <= 0)")
    return number


def _at_least_one(owner: str, name: str, value: object) -> float:
    number = check.finite(owner, name, value)
    if number < 1:
        raise ValueError(f"{owner}: invalid {name}: {value!r} (expected a number >= 1)")
    return number


@dataclass(frozen=True)
class AdafactorHyperparameters(Hyperparameters):
    """Adafactor's hyperparameters, with PyTorch's names and defaults.

    >>> AdafactorHyperparameters().state_shapes((4, 3, 5))
    {'row_var': (4, 3, 1), 'col_var': (4, 1, 5)}
    """

    lr: float = hyperparameter(1e-2, check.non_negative)
    beta2_decay: float = hyperparameter(-0.8, _non_positive)
    eps: tuple[float | None, float] = hyperparameter((None, 1e-3), _eps_pair)
    d: float = hyperparameter(1.0, _at_least_one)
    weight_decay: float = hyperparameter(0.0, check.non_negative)
    maximize: bool = hyperparameter(False, check.flag)

    def state_shapes(self, shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        if len(shape) < 2:
            return {"variance": shape}
        return {"row_var": (*shape[:-1], 1), "col_var": (*shape[:-2], 1, shape[-1])}


def adafactor(
    params: Sequence[Tensor],
    grads: Sequence[Tensor],
    states: Sequence[dict[str, Tensor]],
    steps: Sequence[float],
    *,
    lr: float,
    beta2_decay: float,
    eps1: float | None,
    eps2: float,
    d: float,
    weight_decay: float,
    maximize: bool,
) -> None:
    """One Adafactor step on every parameter, in place.

    ``states[i]`` holds parameter i's float32 state by name (see
    :meth:`AdafactorHyperparameters.state_shapes`; zeros at the start) and ``steps[i]``
    its step count (1 on its first update). Unlike the element-wise forms this one
    takes netcl Tensors (wrap another framework's buffer with
    ``netcl.core.tensor.from_buffer``): it runs reductions and a matmul on them.
    """
    hyper = AdafactorHyperparameters.checked("adafactor", {
        "lr": lr, "beta2_decay": beta2_decay, "eps": (eps1, eps2), "d": d,
        "weight_decay": weight_decay, "maximize": maximize,
    })
    adafactor_step(hyper, params, grads, states, steps)


adafactor.__doc__ = f"{adafactor.__doc__}{ADAFACTOR_MATH}"


def adafactor_step(
    hyper: AdafactorHyperparameters,
    params: Sequence[Tensor],
    grads: Sequence[Tensor],
    states: Sequence[dict[str, Tensor]],
    steps: Sequence[float],
) -> None:
    """:func:`adafactor` with checked hyperparameters, after every operand is checked."""
    n = len(params)
    for what, values in (("grads", grads), ("states", states), ("steps", steps)):
        if len(values) != n:
            raise ValueError(f"{what} has {len(values)} entries, expected {n} (one per param)")
    for i in range(n):
        p, g = params[i], grads[i]
        if g.shape != p.shape or g.dtype != p.dtype:
            raise ValueError(f"grads[{i}] has shape {g.shape} and dtype {g.dtype}; params[{i}] "
                             f"has {p.shape} and {p.dtype}")
        span(p, f"params[{i}]"), span(g, f"grads[{i}]")  # raise unless contiguous
        for name, shape in hyper.state_shapes(p.shape).items():
            buffer = states[i].get(name)
            if buffer is None or buffer.shape != shape or buffer.dtype != float32:
                raise ValueError(f"states[{i}] needs a float32 {name!r} of shape {shape}")
            span(buffer, f"states[{i}][{name!r}]")
        if not steps[i] >= 1:
            raise ValueError(f"steps[{i}] is {steps[i]!r}; a step count is >= 1")
    with recorder.recording(None):  # an optimizer's update is no op of a model
        for i in range(n):
            _step_one(hyper, params[i], grads[i], states[i], steps[i])


def _step_one(hyper: AdafactorHyperparameters, p: Tensor, g: Tensor,
              state: dict[str, Tensor], step: float) -> None:
    """One parameter's step: its sums of squares by netcl's reductions, the rest in
    adafactor.cl's three kernels (the moments' lerps, the update, the apply)."""
    g = g.astype(float32) if g.dtype != float32 else g
    p32 = p.astype(float32) if p.dtype != float32 else p
    eps1 = hyper.eps[0] if hyper.eps[0] is not None else float(np.finfo(p.dtype).eps)
    w = step**hyper.beta2_decay
    squared = g * g  # (-g)^2 = g^2: maximize's sign is taken in adafactor_update
    if len(p.shape) >= 2:
        row_var, col_var = state["row_var"], state["col_var"]
        _lerp_(row_var, ops.mean(squared, -1, True), w)
        _lerp_(col_var, ops.mean(squared, -2, True), w)
        variance, mean_r = row_var, ops.mean(row_var, -2, True)
        rows, cols = p.shape[-2:]
    else:
        variance = state["variance"]
        _lerp_(variance, squared, w)
        col_var = mean_r = variance  # read only when factored
        rows = cols = 1
    update = empty(p.shape, float32, p.device)
    launch_step("adafactor.cl", "adafactor_update", {},
                _spans(update, g, variance, col_var, mean_r),
                (np.int64(rows), np.int64(cols), np.int32(len(p.shape) >= 2),
                 np.int32(hyper.maximize), np.float32(eps1), np.float32(eps1 * eps1)))
    decay = 1.0 - hyper.lr * hyper.weight_decay
    launch_step("adafactor.cl", "adafactor_apply", {},
                _spans(p, update, ops.sum(p32 * p32), ops.sum(update * update)),
                (np.float32(1.0 / math.sqrt(p.size)), np.float32(hyper.eps[1]),
                 np.float32(min(hyper.lr, 1.0 / step**0.5)),
                 np.float32(1.0 / (math.sqrt(p.size) * hyper.d)), np.float32(decay),
                 np.int32(hyper.weight_decay != 0)))


def _lerp_(state: Tensor, x: Tensor, w: float) -> None:
    """``state`` = torch's lerp(state, x, w), in place: exact at w = 1, as its CPU kernel is."""
    launch_step("adafactor.cl", "adafactor_lerp", {}, _spans(state, x),
                (np.float32(w), np.float32(1.0 - w), np.int32(w < 0.5)))


def _spans(*tensors: Tensor) -> tuple[Span, ...]:
    return tuple(span(t, "adafactor") for t in tensors)
