"""What a captured call (netcl.jit) assumes of tensors held in Python state, and how a
replay leaves their gradients as the captured call left them.

A capture replays launches on the buffers it saw, so it is valid only while the
Python objects it read still hold those buffers, in the same layout, with the
same ``requires_grad`` and the same gradient (none, or one in the same buffer):
:func:`tensor_guard` is that, as a hashable value. A replay runs no Python, so a
gradient the captured call created or dropped (``p.grad = g``, ``zero_grad()``)
must be put back by the replay: :func:`grads_restorer`. Modules and optimizers
use both for their ``jit_guard``/``jit_exit`` (see :mod:`netcl.jit.guards`);
this layer knows nothing of either.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable

from netcl.core.tensor.tensor import Tensor


def tensor_guard(t: Tensor | None) -> Hashable:
    """``t``'s buffer, layout, ``requires_grad`` and gradient (None or its buffer and layout).

    id(buffer), not id(t): a replay reads the buffer, and a capture holds every buffer
    it saw, so its id cannot go to another buffer while the capture lives. Private
    fields, not the properties: this runs for every parameter at every replayed call.
    """
    if t is None:
        return None
    grad = t._grad
    return (id(t.buffer), t.offset, t.shape, t.strides, t.dtype, t._requires_grad,
            None if grad is None else (id(grad.buffer), grad.offset, grad.shape, grad.strides,
                                       grad.dtype))


def grads_restorer(tensors: Iterable[Tensor]) -> Callable[[], None]:
    """A callable that gives each of ``tensors`` back the grad it holds now (None or the
    same Tensor, whose buffer a replay rewrites)."""
    held = [(t, t.grad) for t in tensors]

    def restore() -> None:
        for t, grad in held:
            if t.grad is not grad:
                t.grad = grad

    return restore
