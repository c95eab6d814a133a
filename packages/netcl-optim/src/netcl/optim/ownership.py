"""Which optimizers update which parameter: catching a parameter given to two of them.

A parameter in two optimizers is stepped twice per iteration, with two sets of
moments; almost always a bug (the documentation warns that it "requires care"). Each
optimizer claims its parameters at construction, and a claim on a parameter
that another live optimizer still holds is refused unless ``allow_shared``.

The registry is keyed by ``id(param)``, and must not outlive the parameter: a
new tensor can reuse a dead one's id and would then look taken. So each entry
carries a ``weakref.finalize`` that drops it when its parameter dies, and holds
its optimizers weakly (a dead optimizer claims nothing). ``WeakSet`` and
``WeakKeyDictionary`` are not usable here: they compare keys with ``==``, and a
Tensor's ``==`` is elementwise and returns a Tensor.
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


def _drop(key: int) -> None:
    _entries.pop(key, None)


def _holds(owner: Owner, param: Tensor) -> bool:
    # Identity, never ``in``: Tensor == Tensor is elementwise.
    return any(q is param for group in owner.param_groups for q in group["params"])


def owner_of(param: Tensor, besides: object = None) -> Owner | None:
    """A live optimizer other than ``besides`` that still holds ``param``, if any."""
    entry = _entries.get(id(param))
    if entry is None:
        return None
    for ref in entry.owners:
        owner = ref()
        # An optimizer whose param_groups were edited since may no longer hold it.
        if owner is not None and owner is not besides and _holds(owner, param):
            return owner  # type: ignore[no-any-return]
    return None


def claim(params: Sequence[Tensor], optimizer: Owner, allow_shared: bool) -> None:
    """Record ``optimizer`` as an owner of every one of ``params``, or claim none.

    Raises ValueError naming the first parameter another live optimizer holds,
    unless ``allow_shared``.
    """
    if not allow_shared:
        for index, param in enumerate(params):
            other = owner_of(param, besides=optimizer)
            if other is not None:
                raise ValueError(
                    f"{type(optimizer).__name__}: parameter {index} (shape {param.shape}) is "
                    f"already updated by {type(other).__name__} at {id(other):#x}; two "
                    "optimizers would both step it every iteration. Pass allow_shared=True "
                    "if that is intended, or drop the other optimizer first."
                )
    for param in params:
        entry = _entries.get(id(param))
        if entry is None:
            finalizer = weakref.finalize(param, _drop, id(param))
            finalizer.atexit = False  # nothing to tidy when the interpreter exits
            entry = _Entry(finalizer)
            _entries[id(param)] = entry
        entry.owners = [ref for ref in entry.owners if ref() is not None]
        entry.owners.append(weakref.ref(optimizer))


def tracks(param_id: int) -> bool:
    """Whether the registry has an entry for this ``id()`` (tests check it is dropped)."""
    return param_id in _entries
