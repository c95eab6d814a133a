"""Guards: what a capture assumes of the Python state its function reads.

A replay runs none of the function's Python, so it is valid only while the
objects the function reads are as they were when it was captured. An object
takes part by having two methods (netcl's Module and Optimizer have them;
this package imports neither):

- ``jit_guard() -> Hashable``: what a capture assumes of it at a call's entry
  (a Module: its parameters' and buffers' memory, layout, ``requires_grad``
  and grads, its ``training`` flags; an Optimizer: its parameters and which
  state each has). Part of the capture's key: a call whose guards differ
  captures anew, as torch.compile recompiles.
- ``jit_exit(entry) -> Callable[[], None] | None``: called once a captured call
  has returned, with its entry guard: the host work a replay runs after its
  launches to leave the object as the captured call did (the grads it set or
  dropped), or None when the call changed something a replay cannot repeat
  (an optimizer's first step creates its state): that capture is not kept.

The objects checked are those the function can reach without running: its
``self`` (for a bound method), its closure's cells, its arguments' defaults
and the globals its code names, each with the attributes of a plain object among them one level down
(a Trainer's model and optimizer), and its arguments.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Hashable, Iterable
from typing import Any, Protocol, cast

import numpy as np

from netcl.core.tensor import Tensor


class Guarded(Protocol):
    def jit_guard(self) -> Hashable: ...

    def jit_exit(self, entry: Hashable) -> Callable[[], None] | None: ...


# Objects whose attributes are never searched: their attributes are not state a step reads.
_OPAQUE = (Tensor, np.ndarray, type, types.ModuleType, types.FunctionType,
           types.BuiltinFunctionType, types.MethodType, str, bytes, int, float, bool)


def roots(fn: Callable[..., Any]) -> list[object]:
    """What ``fn`` can read without arguments: ``self``, closure cells, defaults, globals it
    names."""
    found: list[object] = []
    owner = getattr(fn, "__self__", None)
    if owner is not None:
        found.append(owner)
    func = getattr(fn, "__func__", fn)
    for cell in getattr(func, "__closure__", None) or ():
        try:
            found.append(cell.cell_contents)
        except ValueError:  # a cell not filled yet
            continue
    found.extend(getattr(func, "__defaults__", None) or ())
    found.extend((getattr(func, "__kwdefaults__", None) or {}).values())
    code = getattr(func, "__code__", None)
    names = getattr(func, "__globals__", {})
    if code is not None:
        found.extend(names[name] for name in code.co_names if name in names)
    return found


def guarded(candidates: Iterable[object]) -> list[Guarded]:
    """The Guarded objects among ``candidates`` and among plain objects' attributes, once each."""
    seen: dict[int, Guarded] = {}

    def visit(value: object, depth: int) -> None:
        if isinstance(value, _OPAQUE):
            return
        kind = type(value)
        # Not isinstance(value, Guarded): a runtime Protocol check costs microseconds.
        if hasattr(kind, "jit_guard") and hasattr(kind, "jit_exit"):
            seen.setdefault(id(value), cast(Guarded, value))
        elif isinstance(value, list | tuple) and depth:
            for item in value:
                visit(item, depth - 1)
        elif depth and hasattr(value, "__dict__"):
            for item in vars(value).values():
                visit(item, depth - 1)

    for candidate in candidates:
        visit(candidate, 1)
    return list(seen.values())


__all__ = ["Guarded", "guarded", "roots"]
