"""Losses: cross-entropy, mean squared error, binary cross-entropy on logits.

Each takes torch's arguments in torch's order, with torch's defaults, so a
positional call means what it means in torch. ``reduction``: "mean" (the
default) averages the per-element losses, "sum" adds them, "none" returns
them unreduced. torch's deprecated ``size_average`` and ``reduce`` keep their
places, but only None is taken: ``reduction`` says the same.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from netcl.autograd import no_grad
from netcl.core.tensor import Tensor, dtypes, from_numpy, ops
from netcl.core.tensor.autocast import to_float32
from netcl.core.tensor.ops.elementwise import elementwise
from netcl.core.tensor.tensor import Shape
from netcl.nn.functional.activations import log_softmax

TargetLike = Tensor | np.ndarray[Any, Any]

_REDUCTIONS = ("mean", "sum", "none")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return ops.mean(loss)
    if reduction == "sum":
        return ops.sum(loss)
    return loss


def check_reduction(
    op: str, reduction: str, size_average: bool | None = None, reduce: bool | None = None
) -> None:
    """ValueError naming ``op``, the ``reduction`` given and the ones there are;
    NotImplementedError naming torch's deprecated ``size_average`` or ``reduce`` if either is
    given (not None), pointing to ``reduction``."""
    for argument, value in (("size_average", size_average), ("reduce", reduce)):
        if value is not None:
            raise NotImplementedError(
                f"{op}: {argument}={value!r} is torch's deprecated form of reduction and is not "
                "supported; pass reduction='mean', 'sum' or 'none'"
            )
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _classes_last(x: Tensor) -> Tensor:
    """(N, C, d1, ...) as (N * d1 * ..., C): classes on the last axis, one row per sample."""
    if x.ndim == 2:
        return x
    order = (0, *range(2, x.ndim), 1)
    return ops.reshape(ops.permute(x, order), (-1, x.shape[1]))


def _class_weight(op: str, weight: Tensor | None, classes: int) -> Tensor | None:
    """``weight`` checked to be one float per class, as float32 (autocast's float32 list)."""
    if weight is None:
        return None
    if weight.shape != (classes,) or not dtypes.is_floating(weight.dtype):
        raise ValueError(
            f"{op}: weight must be a float tensor of shape ({classes},), one per class, got "
            f"{weight.dtype} of shape {weight.shape}"
        )
    (weight,) = to_float32(weight)
    return weight


class _ClassTargets(NamedTuple):
    loss: Tensor  # -w[y_i] logp[i, y_i] per row (w = 1 without weights); junk where not counted
    counted: Tensor  # bool: the row's target is a class, not ignore_index
    weight: Tensor | None  # w[y_i] per row, None without weights


def _class_targets(
    op: str, logp: Tensor, targets: Tensor, ignore_index: int, weight: Tensor | None
) -> _ClassTargets:
    """Each row i of ``logp`` (M, C) against its class target ``y_i``, weighted by ``weight``.

    A row whose target is ``ignore_index`` is not counted. Targets are checked
    on the device, not read back (no wait for the queue in the training loop):
    one outside ``[0, C)`` that is not ``ignore_index`` makes the next read from
    the device raise ValueError naming it (``netcl.core.tensor.deferred``); until
    then its row is not counted either.
    """
    if targets.dtype not in (dtypes.int32, dtypes.int64):
        raise TypeError(f"{op}: class targets must be int32 or int64, got {targets.dtype}")
    classes = logp.shape[1]
    column = ops.reshape(targets, (-1, 1))

    def describe(target: int) -> str:
        return (
            f"{op}: target {target} is out of range for {classes} classes (valid: 0 to "
            f"{classes - 1}, or ignore_index={ignore_index})"
        )

    safe = ops.checked_indices(op, column, classes, describe, allowed=ignore_index)
    counted = ops.reshape(
        elementwise(op, "(a >= 0 && a < b && a != c)", [column, classes, ignore_index],
                    out_dtype=dtypes.bool_),
        (-1,),
    )
    loss = ops.neg(ops.reshape(ops.take_along_axis(logp, safe, 1), (-1,)))
    if weight is None:
        return _ClassTargets(loss, counted, None)
    # torch's nll_loss: w[y_i] scales row i's loss, and a mean divides by the sum of them.
    row_weight = ops.index_select(weight, 0, ops.reshape(safe, (-1,)))
    return _ClassTargets(ops.mul(loss, row_weight), counted, row_weight)


def _reduce_counted(loss: Tensor, rows: _ClassTargets, reduction: str, shape: Shape) -> Tensor:
    """Zero where not counted, then reduced; "mean" divides by the rows counted, or by their
    weights' sum, as torch."""
    loss = ops.where(rows.counted, loss, 0.0)
    if reduction == "none":
        return ops.reshape(loss, shape)
    total = ops.sum(loss)
    if reduction == "sum":
        return total
    if rows.weight is None:
        return ops.div(total, ops.sum(ops.cast(rows.counted, loss.dtype)))
    return ops.div(total, ops.sum(ops.where(rows.counted, rows.weight, 0.0)))


def cross_entropy(
    input: Tensor,
    target: TargetLike,
    weight: Tensor | None = None,
    size_average: bool | None = None,
    ignore_index: int = -100,
    reduce: bool | None = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Cross-entropy of logits ``input`` (N, C) or (N, C, d1, ...) against ``target``.

    With integer class targets (N) or (N, d1, ...) (int64 or int32, a
    Tensor or a numpy array), the loss of sample i is
    ``-(1 - s) * w[y_i] logp[i, y_i] - s * mean_c w[c] logp[i, c]``, ``s`` the
    ``label_smoothing``, ``w`` the class ``weight`` (C,) (all 1 by default);
    "mean" divides the sum by ``sum_i w[y_i]`` over the samples counted, as
    torch. Samples whose target is ``ignore_index`` count zero
    and are left out of the mean (which is NaN if every one is ignored, as in
    torch). A target outside ``[0, C)`` otherwise is an error, found on the
    device and raised as ValueError at the next read from it (the loss's
    ``item()``, say): checking on the host would wait for the queue each step.
    With float targets of the input's shape (class probabilities) it is
    ``-sum_c w[c] q[i, c] logp[i, c]`` with ``q = (1 - s) * target + s / C``,
    and "mean" divides by the number of samples.
    ``logp = log_softmax(input)`` over the class axis, through logsumexp, so
    large logits do not overflow.
    """
    check_reduction("cross_entropy", reduction, size_average, reduce)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    if input.ndim < 2:
        raise ValueError(f"cross_entropy: input must be (N, C, ...), got shape {input.shape}")
    if not isinstance(target, Tensor):
        target = from_numpy(np.asarray(target), input.device)
    classes = input.shape[1]
    weight = _class_weight("cross_entropy", weight, classes)
    (input,) = to_float32(input)  # PyTorch's autocast float32 list
    if dtypes.is_floating(target.dtype):
        (target,) = to_float32(target)
    logp = log_softmax(_classes_last(input), axis=-1)  # (M, C)
    sample_shape = (input.shape[0], *input.shape[2:])

    if dtypes.is_floating(target.dtype):
        if target.shape != input.shape:
            raise ValueError(
                f"cross_entropy: probability targets must have the input's shape {input.shape}, "
                f"got {target.shape}"
            )
        q = _classes_last(target)
        if label_smoothing:
            q = ops.add(ops.mul(q, 1.0 - label_smoothing), label_smoothing / classes)
        if weight is not None:
            q = ops.mul(q, weight)
        loss = ops.neg(ops.sum(ops.mul(q, logp), -1))
        if reduction == "none":
            return ops.reshape(loss, sample_shape)
        return _reduce(loss, reduction)
    if target.shape != sample_shape:
        raise ValueError(
            f"cross_entropy: class targets for an input of shape {input.shape} must have "
            f"shape {sample_shape}, got {target.shape}"
        )
    rows = _class_targets("cross_entropy", logp, target, ignore_index, weight)
    loss = rows.loss
    if label_smoothing:
        smooth = ops.neg(ops.mean(logp if weight is None else ops.mul(logp, weight), -1))
        loss = ops.add(ops.mul(loss, 1.0 - label_smoothing), ops.mul(smooth, label_smoothing))
    return _reduce_counted(loss, rows, reduction, sample_shape)


def nll_loss(
    input: Tensor,
    target: TargetLike,
    weight: Tensor | None = None,
    size_average: bool | None = None,
    ignore_index: int = -100,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Tensor:
    """-w[y_i] input[i, y_i] for log-probabilities ``input`` (N, C) or (N, C, d1, ...) and
    class targets (N) or (N, d1, ...), ``w`` the class ``weight`` (C,) (all 1 by default).

    "mean" divides the sum by ``sum_i w[y_i]`` over the samples counted, as
    torch. Targets equal to ``ignore_index`` count zero and are left out of the
    mean; one outside ``[0, C)`` otherwise raises ValueError at the next read
    from the device, as in ``cross_entropy``.
    """
    check_reduction("nll_loss", reduction, size_average, reduce)
    (input,) = to_float32(input)
    if not isinstance(target, Tensor):
        target = from_numpy(np.asarray(target), input.device)
    sample_shape = (input.shape[0], *input.shape[2:]) if input.ndim >= 2 else None
    if target.shape != sample_shape:
        raise ValueError(
            f"nll_loss: expected log-probabilities (N, C, ...) and targets (N, ...), got "
            f"{input.shape} and {target.shape}"
        )
    weight = _class_weight("nll_loss", weight, input.shape[1])
    rows = _class_targets("nll_loss", _classes_last(input), target, ignore_index, weight)
    return _reduce_counted(rows.loss, rows, reduction, target.shape)


def mse_loss(
    input: Tensor,
    target: Tensor,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    weight: Tensor | None = None,
) -> Tensor:
    """w (input - target)^2 elementwise (broadcast), then reduced; ``weight`` (w, 1 by
    default) has the input's shape, and with it "mean" divides by ``sum(w)``, as torch."""
    check_reduction("mse_loss", reduction, size_average, reduce)
    input, target = to_float32(input, target)
    diff = ops.sub(input, target)
    loss = ops.mul(diff, diff)
    if weight is None:
        return _reduce(loss, reduction)
    if weight.shape != input.shape:
        raise ValueError(
            f"mse_loss: weight must have the input's shape {input.shape}, got {weight.shape}"
        )
    (weight,) = to_float32(weight)
    loss = ops.mul(loss, weight)
    if reduction == "mean":
        return ops.div(ops.sum(loss), ops.sum(weight))
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    pos_weight: Tensor | float | None = None,
) -> Tensor:
    """-w [p y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))] for logits x (``input``) and
    targets y in [0, 1].

    ``weight`` (w, 1 by default) scales each element's loss and broadcasts
    against the logits; ``pos_weight`` (p) scales the positive term, one per
    class on the last axis, as torch's.

    Written as ``(1 - y) x + (1 + (p - 1) y) softplus(-x)``, ``p`` the
    ``pos_weight`` (1 by default), with softplus(-x) = log(1 + exp(-x)) taken
    as ``m + log(exp(-m) + exp(-x - m))``, ``m = max(-x, 0)``: no exp
    overflows, and since the value does not depend on ``m``, ``m`` is held
    constant (computed under no_grad) and the gradient is exactly
    ``sigmoid(x) - y`` everywhere, x = 0 included.
    """
    check_reduction("binary_cross_entropy_with_logits", reduction, size_average, reduce)
    if target.shape != input.shape:
        raise ValueError(
            f"binary_cross_entropy_with_logits: target {target.shape} must have the input's "
            f"shape {input.shape}"
        )
    logits, target = to_float32(input, target)
    with no_grad():
        m = ops.maximum(ops.neg(logits), 0.0)
    softplus = ops.add(
        m, ops.log(ops.add(ops.exp(ops.neg(m)), ops.exp(ops.sub(ops.neg(logits), m))))
    )
    positive: Tensor | float = 1.0
    if pos_weight is not None:
        excess = ops.sub(pos_weight, 1.0) if isinstance(pos_weight, Tensor) else pos_weight - 1.0
        positive = ops.add(ops.mul(target, excess), 1.0)
    loss = ops.add(ops.mul(ops.sub(1.0, target), logits), ops.mul(softplus, positive))
    if weight is not None:
        loss = ops.mul(loss, weight)
    return _reduce(loss, reduction)
