"""Which optimizer updates a parameter: the newest one built over it.

A parameter in two optimizers is stepped twice per iteration, with two sets of
moments; almost always a bug. But building a second optimizer over the same
parameters is common and right: a notebook cell run again, a resume script,
``opt = Adam(params, lr=1e-4)`` replacing ``opt``. So the newest optimizer
built over a parameter takes it; an older optimizer that is still alive and
steps it afterwards raises ValueError naming both. ``allow_shared=True`` joins
a parameter's owners instead of replacing them (both step it).

The registry is keyed by ``id(param)``, and must not outlive the parameter: a
new tensor can reuse a dead one's id and would then look taken. So each entry
carries a ``weakref.finalize`` that drops it when its parameter dies, and holds
its optimizers weakly: the registry keeps no optimizer alive, and an optimizer
refers to it by nothing but its own id, so no reference cycle holds one either.
``WeakSet`` and ``WeakKeyDictionary`` are not usable here: they compare keys with
``==``, and a Tensor's ``==`` is elementwise and returns a Tensor.

A step asks ``check_owner`` only when a parameter changed hands since the
optimizer's last check (``generation``), so the usual step costs one comparison.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from netcl.core.tensor import Tensor


class Owner(Protocol):
    """An optimizer, as far as ownership goes: it lists its parameters in groups."""

    param_groups: list[dict[str, Any]]


@dataclass
class _Entry:
    finalizer: weakref.finalize[Any, Any]
    owners: list[weakref.ref[Any]] = field(default_factory=list)


_entries: dict[int, _Entry] = {}
_generation = 0  # bumped whenever a claim takes a parameter from a live optimizer


def _drop(key: int) -> None:
    _entries.pop(key, None)


def _holds(owner: Owner, param: Tensor) -> bool:
    # Identity, never ``in``: Tensor == Tensor is elementwise.
    return any(q is param for group in owner.param_groups for q in group["params"])


def generation() -> int:
    """Changes whenever some parameter changes hands; ``check_owner`` is needed only then."""
    return _generation


def claim(params: Sequence[Tensor], optimizer: Owner, allow_shared: bool) -> None:
    """Make ``optimizer`` the owner of every one of ``params``: the only one, unless
    ``allow_shared`` (then it joins the optimizers that already hold them)."""
    global _generation
    for param in params:
        entry = _entries.get(id(param))
        if entry is None:
            finalizer = weakref.finalize(param, _drop, id(param))
            finalizer.atexit = False  # nothing to tidy when the interpreter exits
            entry = _Entry(finalizer)
            _entries[id(param)] = entry
        others = [ref for ref in entry.owners if (o := ref()) is not None and o is not optimizer]
        if others and not allow_shared:
            _generation += 1
            others = []
        entry.owners = [*others, weakref.ref(optimizer)]


def check_owner(optimizer: Owner) -> None:
    """Raise ValueError, naming both, if a parameter ``optimizer`` holds was taken since by
    an optimizer built over it later (and still alive, and still holding it)."""
    for index, param in enumerate(p for group in optimizer.param_groups for p in group["params"]):
        entry = _entries.get(id(param))
        if entry is None or any(ref() is optimizer for ref in entry.owners):
            continue
        newer = [o for ref in entry.owners if (o := ref()) is not None and _holds(o, param)]
        if not newer:  # its taker is gone or let it go: it is this optimizer's again
            entry.owners.append(weakref.ref(optimizer))
            continue
        name = f"{type(optimizer).__name__} at {id(optimizer):#x}"
        raise ValueError(
            f"{name}: parameter {index} (shape {param.shape}) is now updated by "
            f"{type(newer[-1]).__name__} at {id(newer[-1]):#x}, built over it later; a "
            f"parameter belongs to the newest optimizer built over it. Step that one (and "
            "drop this one), or build both with allow_shared=True to step it with both."
        )


def tracks(param_id: int) -> bool:
    """Whether the registry has an entry for this ``id()`` (tests check it is dropped)."""
    return param_id in _entries
