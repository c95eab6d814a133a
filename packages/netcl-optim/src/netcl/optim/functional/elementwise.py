"""The checked launch loop of an element-wise algorithm (NAdam, RAdam, Adagrad, Adamax, Lion).

Each of those algorithms is one kernel over a parameter, its gradient and a few
float32 state buffers of the parameter's size, with scalars from the host.
:func:`elementwise_step` checks every array of every entry first, then launches
the kernel once per entry: one call, whatever the algorithm.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from netcl.optim.functional.device_arrays import ArrayLike, check_operands, spans
from netcl.optim.functional.kernels import (
    GradScaling,
    LiveGroup,
    Scalars,
    launch_step,
    scaled_scalars,
    scaling_flags,
    step_scalars,
)


def elementwise_step(
    kernel: tuple[str, str],
    flags: Mapping[str, int],
    hyper: Any,
    params: Sequence[ArrayLike],
    grads: Sequence[ArrayLike],
    state: Mapping[str, Sequence[ArrayLike]],
    steps: Sequence[float] | None,
    compute: Scalars,
    live: LiveGroup | None,
    grad_scaling: GradScaling | None = None,
) -> None:
    """Launch ``kernel`` (file, kernel name) over every entry, after checking them all.

    ``state`` maps each state argument's name (as errors name it, ``"exp_avgs"``) to
    one array per entry, in the kernel's argument order. ``steps`` (None for an
    algorithm that counts none) must be >= 1. ``compute(hyper, steps, i)`` gives
    entry i's kernel scalars, live ones when an optimizer class passes ``live``. Under a
    GradScaler (``grad_scaling``) the kernel's GRAD_SCALING variant takes its buffers and
    ``hyper.step_doubles``: unscale, skip and step in the one launch.
    """
    n = len(params)
    p, g = spans(params, "params", n), spans(grads, "grads", n)
    buffers = {name: spans(arrays, name, n) for name, arrays in state.items()}
    if steps is not None and len(steps) != n:
        raise ValueError(f"steps has {len(steps)} entries, expected {n} (one per param)")
    for i in range(n):
        check_operands(i, p[i], g[i], **{name: b[i] for name, b in buffers.items()})
        if steps is not None and not steps[i] >= 1:
            raise ValueError(f"steps[{i}] is {steps[i]!r}; a step count is >= 1")
    file, name = kernel
    flags, scaler_buffers = scaling_flags(flags, grad_scaling)
    compute = scaled_scalars(compute, grad_scaling)
    for i in range(n):
        scalars = step_scalars(hyper, steps or (), i, compute, live)
        operands = (p[i], g[i], *(b[i] for b in buffers.values()))
        launch_step(file, name, flags, operands, (*scaler_buffers, *scalars))
