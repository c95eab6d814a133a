"""gradcheck: a function's backward rules against central finite differences."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from netcl.autograd.grad_mode import no_grad
from netcl.autograd.tape import Tape
from netcl.core.tensor import Tensor, from_numpy

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
Outputs = Tensor | Sequence[Tensor]


class GradcheckError(AssertionError):
    """The analytic gradient and the finite-difference one disagree beyond the tolerances."""


def gradcheck(
    fn: Callable[..., Outputs],
    inputs: Sequence[Tensor],
    eps: float = 1e-3,
    atol: float = 1e-3,
    rtol: float = 1e-2,
    seed: int = 0,
    raise_exception: bool = True,
) -> bool:
    """Check the gradient of ``fn(*inputs)`` for every input with ``requires_grad``.

    ``fn`` returns a tensor or a sequence of tensors. It is reduced to one
    scalar, ``S = sum_j <out_j, v_j>`` with fixed random ``v_j`` (seeded by
    ``seed``), so one backward pass gives the gradient to check. For every
    element ``x_k`` of every checked input::

        analytic_k = dS/dx_k            (the Tape, seeded with v_j)
        numeric_k  = (S(x + h e_k) - S(x - h e_k)) / (2 h)

    and each pair must satisfy ``|analytic - numeric| <= atol + rtol * |numeric|``.

    The function runs where it lives, on the device in float32: netcl has no
    float64 tensors, and checking the kernels that really run is the point.
    The differencing is float64 on the host: outputs are read back and
    widened before ``S`` is formed, and ``2 h`` is the float64 difference of
    the two float32 perturbed values (``x + eps`` rounds when stored), so the
    only error left is float32 evaluation noise, about ``1e-7 |S| / eps``,
    plus the ``eps^2 f'''/6`` of central differences. The defaults fit that:
    ``eps=1e-3`` balances the two, and ``atol=1e-3``, ``rtol=1e-2`` sit well
    above both for values of order one while a wrong rule (a lost factor,
    a transposed axis, a missed broadcast) misses them by far. Keep inputs
    away from kinks (relu at 0, ties in max) by more than ``eps``.

    Returns True; on a mismatch raises ``GradcheckError`` listing the worst
    elements (or returns False when ``raise_exception`` is False).
    """
    checked = [i for i, x in enumerate(inputs) if x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad, so there is nothing to check")
    host = [x.numpy() for x in inputs]
    rng = np.random.default_rng(seed)

    with no_grad():
        outs = _as_list(fn(*inputs))
    # float32 so that the device's seed holds exactly the values S is formed with.
    weights = [rng.standard_normal(out.shape).astype(np.float32) for out in outs]

    analytic = _analytic(fn, inputs, host, checked, weights)
    failures: list[str] = []
    worst = 0.0
    for slot, i in enumerate(checked):
        numeric = _numeric(fn, inputs, host, i, weights, eps)
        error = np.abs(analytic[slot] - numeric)
        allowed = atol + rtol * np.abs(numeric)
        worst = max(worst, float(np.max(error / allowed, initial=0.0)))
        for flat in np.flatnonzero(error > allowed)[:5]:
            where = np.unravel_index(flat, numeric.shape)
            failures.append(
                f"input {i} (shape {inputs[i].shape}) at {tuple(int(w) for w in where)}: "
                f"analytic {analytic[slot].flat[flat]:.6g}, numeric {numeric.flat[flat]:.6g}"
            )
    if failures:
        if not raise_exception:
            return False
        raise GradcheckError(
            f"gradcheck failed (worst error {worst:.3g}x the tolerance atol={atol}, "
            f"rtol={rtol}, eps={eps}):\n  " + "\n  ".join(failures)
        )
    return True


def _as_list(outputs: Outputs) -> list[Tensor]:
    return [outputs] if isinstance(outputs, Tensor) else list(outputs)


def _fresh(inputs: Sequence[Tensor], arrays: Sequence[np.ndarray[Any, Any]]) -> list[Tensor]:
    """New leaf tensors holding ``arrays``, requiring grad where the inputs did."""
    return [
        from_numpy(array, x.device).requires_grad_(x.requires_grad)
        for x, array in zip(inputs, arrays, strict=True)
    ]


def _analytic(
    fn: Callable[..., Outputs],
    inputs: Sequence[Tensor],
    host: Sequence[np.ndarray[Any, Any]],
    checked: Sequence[int],
    weights: Sequence[np.ndarray[Any, Any]],
) -> list[FloatArray]:
    leaves = _fresh(inputs, host)
    with Tape() as tape:
        outs = _as_list(fn(*leaves))
    live = [(out, w) for out, w in zip(outs, weights, strict=True) if out.requires_grad]
    targets = [leaves[i] for i in checked]
    if not live:  # no output depends on a checked input: every gradient is 0
        return [np.zeros(x.shape) for x in targets]
    seeds = [from_numpy(w, out.device).astype(out.dtype) for out, w in live]
    grads = tape.grad([out for out, _ in live], targets, seeds, allow_unused=True)
    return [
        np.zeros(x.shape) if g is None else g.numpy().astype(np.float64)
        for x, g in zip(targets, grads, strict=True)
    ]


def _numeric(
    fn: Callable[..., Outputs],
    inputs: Sequence[Tensor],
    host: Sequence[np.ndarray[Any, Any]],
    i: int,
    weights: Sequence[np.ndarray[Any, Any]],
    eps: float,
) -> FloatArray:
    """Central differences of S along every element of input ``i``, in float64."""
    args = list(inputs)
    base = host[i]
    result = np.zeros(base.shape, dtype=np.float64)
    with no_grad():
        for flat in range(base.size):
            values = []
            for sign in (1.0, -1.0):
                shifted = base.copy()
                shifted.flat[flat] = base.flat[flat] + sign * eps  # rounds to the input's dtype
                args[i] = from_numpy(shifted, inputs[i].device)
                total = 0.0
                for out, w in zip(_as_list(fn(*args)), weights, strict=True):
                    total += float(np.sum(out.numpy().astype(np.float64) * w))
                values.append((total, float(shifted.flat[flat])))
            (s_plus, x_plus), (s_minus, x_minus) = values
            result.flat[flat] = (s_plus - s_minus) / (x_plus - x_minus)
    return result
