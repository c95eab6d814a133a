"""grad(outputs, inputs): gradients returned, not accumulated into ``.grad``."""

from __future__ import annotations

from collections.abc import Sequence

from netcl.autograd.tape import live_tape_for
from netcl.core.tensor import Tensor


def grad(
    outputs: Tensor | Sequence[Tensor],
    inputs: Tensor | Sequence[Tensor],
    grad_outputs: Tensor | Sequence[Tensor | None] | None = None,
    retain_graph: bool | None = None,
    allow_unused: bool = False,
) -> list[Tensor | None]:
    """d(outputs)/d(inputs) through the newest live Tape that recorded ``outputs``.

    A tape is live while it is referenced and its record not freed; the tape
    that closed last is kept referenced until another closes, so
    ``with Tape(): loss = f(x)`` followed by ``grad(loss, [x])`` works.

    The functional twin of ``Tape.backward``: ``grad_outputs`` seeds each
    output (left out for one-element outputs), the result holds one gradient
    per input in order (None for an unused input when ``allow_unused``), and
    no ``.grad`` attribute is read or written. Like ``backward`` it frees the
    tape's record unless ``retain_graph`` (or the tape's ``retain``) says not to.
    Raises ``ValueError`` when no live tape recorded the first output.
    """
    outs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    ins = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    seeds: Sequence[Tensor | None] | None
    seeds = [grad_outputs] if isinstance(grad_outputs, Tensor) else grad_outputs
    if not outs:
        raise ValueError("grad: needs at least one output")
    tape = live_tape_for(outs[0])
    if tape is None:
        raise ValueError(
            f"grad: the output (shape {outs[0].shape}) was not recorded by any live Tape; "
            "compute it inside `with netcl.autograd.Tape():` (and not under no_grad)"
        )
    return tape.grad(outs, ins, seeds, retain_graph, allow_unused)
