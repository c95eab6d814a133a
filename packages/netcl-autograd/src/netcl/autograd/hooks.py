"""Post-accumulate-grad hooks: told when a leaf's gradient for one backward pass is in place.

A data-parallel wrapper needs to know, during backward, when the gradients
of a group of parameters are complete, so that it can start sending them
while the rest of backward still runs (PyTorch's
``Tensor.register_post_accumulate_grad_hook`` serves the same purpose).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

from netcl.core.tensor import Tensor

PostAccumulateGradHook = Callable[[Tensor], None]

# Keyed by id(leaf): a WeakKeyDictionary would compare tensors with ==, which is elementwise.
# A weakref.finalize per leaf drops its entry, so a reused id never finds old hooks.
_hooks: dict[int, list[PostAccumulateGradHook]] = {}


class RemovableHandle:
    """Returned by ``register_post_accumulate_grad_hook``; ``remove()`` unregisters the hook."""

    def __init__(self, leaf_id: int, hook: PostAccumulateGradHook) -> None:
        self._leaf_id = leaf_id
        self._hook = hook

    def remove(self) -> None:
        hooks = _hooks.get(self._leaf_id)
        if hooks is not None and self._hook in hooks:
            hooks.remove(self._hook)


def register_post_accumulate_grad_hook(
    leaf: Tensor, hook: PostAccumulateGradHook
) -> RemovableHandle:
    """Call ``hook(leaf)`` each time a backward pass has finished accumulating into ``leaf.grad``.

    ``Tape.backward`` accumulates a leaf's gradient as soon as no op left in
    the reverse walk can add to it, then calls its hooks, in the order they
    were registered, with no recorder installed. A leaf the output does not
    depend on gets no call. Only leaves that require grad can have hooks.
    """
    if not isinstance(leaf, Tensor):
        raise TypeError(f"register_post_accumulate_grad_hook: expected a Tensor, got "
                        f"{type(leaf).__name__}")
    if not (leaf.is_leaf and leaf.requires_grad):
        raise ValueError(
            f"register_post_accumulate_grad_hook: the tensor (shape {leaf.shape}) must be a "
            "leaf that requires grad: only those accumulate a .grad"
        )
    if not callable(hook):
        raise TypeError(f"register_post_accumulate_grad_hook: hook is not callable: {hook!r}")
    key = id(leaf)
    if key not in _hooks:
        _hooks[key] = []
        weakref.finalize(leaf, _hooks.pop, key, None)
    _hooks[key].append(hook)
    return RemovableHandle(key, hook)


def run_post_accumulate_grad_hooks(leaf: Tensor) -> None:
    """Call ``leaf``'s hooks (the Tape does, right after accumulating into it)."""
    for hook in list(_hooks.get(id(leaf), ())):
        hook(leaf)
