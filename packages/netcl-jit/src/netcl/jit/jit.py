"""``@jit``: run a function eagerly, capture its launches, then replay them.

A capture is keyed by the call's signature (the Tensor arguments' shapes,
dtypes, strides, offsets and devices, and the other arguments' values) and by
its guards (see :mod:`netcl.jit.guards`: the parameters, grads, ``training``
flags and optimizer state the function reads). The first call of a key that
returns normally runs eagerly (a warm-up: a call that raises does not count);
the next one of that key runs eagerly too and is captured, unless it changed
what a replay cannot repeat (an optimizer's first step creates state: the
state is then part of the next call's guards, so that one warms up a new key).
Every later call of the key replays the capture: the recorded launches with
the Tensor arguments' buffers swapped in, their ``Live`` scalars re-read,
their host work (an optimizer counting its steps, a device-side check
reported) repeated, and the grads put back as the captured call left them;
the function's Python does not run.

A Tensor a capture or a replay returns lives in memory the next replay of that
capture overwrites: reading it after that raises RuntimeError (read or copy it
first). Up to CACHE_SIZE keys are kept per function; calls of a further key
run eagerly, with one warning.
"""

from __future__ import annotations

import functools
import warnings
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, ParamSpec, TypeVar

import numpy as np

from netcl.core.device import Device
from netcl.core.tensor import Tensor
from netcl.core.tensor.launch import observing
from netcl.jit.capture import Capture, CaptureError, held_buffers
from netcl.jit.guards import Guarded, guarded, roots
from netcl.jit.program import Launch, Program, build

P = ParamSpec("P")
R = TypeVar("R")

# Captures kept per jitted function, least recently used dropped first.
CACHE_SIZE = 8


@dataclass(frozen=True)
class Launches:
    """Kernel launches of one replay: ``fused`` as it runs, ``unfused`` as captured."""

    fused: int
    unfused: int


@dataclass
class _Entry:
    #: A call of this key returned normally: the next one is captured.
    warmed_up: bool = False
    program: Program | None = None
    outputs: Any = None
    launches: Launches | None = None
    #: Host work run after each replay's launches (the guarded objects' ``jit_exit``).
    exits: list[Callable[[], None]] = field(default_factory=list)
    #: Replays so far: what a returned Tensor's expiry compares against.
    generation: int = 0


class Jitted(Generic[P, R]):
    """A function that replays its captured launches (see :func:`jit`)."""

    def __init__(self, fn: Callable[P, R], fuse: bool) -> None:
        self.fn = fn
        self.fuse = fuse
        self._name = getattr(fn, "__qualname__", repr(fn))
        self._cache: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._last: _Entry | None = None
        self._warned_full = False
        functools.update_wrapper(self, fn)

    @property
    def launches(self) -> Launches:
        """The launches of one replay of the most recent capture, with and without fusion."""
        if self._last is None or self._last.launches is None:
            raise RuntimeError(
                f"jit({self._name}): nothing captured yet (it captures on a key's second call)")
        return self._last.launches

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        key, tensors, objects, entry_guards = self.key(args, kwargs)
        entry = self._cache.get(key)
        if entry is None:
            entry = self._new_entry(key)
            if entry is None:
                return self.fn(*args, **kwargs)
        else:
            self._cache.move_to_end(key)
        if entry.program is not None:
            entry.program.run([t.buffer for t in tensors])
            for effect in entry.exits:
                effect()
            entry.generation += 1
            return _rebuild(entry.outputs, tensors, self._expiry(entry))  # type: ignore[no-any-return]
        capture = Capture(self._name)
        with observing(capture):
            result = self.fn(*args, **kwargs)
        if not entry.warmed_up:
            entry.warmed_up = True
        elif capture.device is not None:
            self._keep(entry, capture, tensors, result, objects, entry_guards)
        return result

    def key(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Hashable, list[Tensor], list[Guarded], tuple[Hashable, ...]]:
        """The cache key of a call with ``args`` and ``kwargs`` (its signature and guards),
        its Tensor arguments, the guarded objects and their guards: every check a replay
        makes before it runs (``tools/bench/train_step.py`` times it)."""
        signature, tensors = self._signature(args, kwargs)
        objects = guarded([*roots(self.fn), *args, *kwargs.values()])
        entry_guards = tuple(o.jit_guard() for o in objects)
        return (signature, tuple(map(id, objects)), entry_guards), tensors, objects, entry_guards

    def _new_entry(self, key: Hashable) -> _Entry | None:
        """A cache entry for ``key``; with the cache full, the least recently used one that
        captured nothing is dropped, and without one, None (the call runs eagerly)."""
        if len(self._cache) >= CACHE_SIZE:
            idle = next((k for k, e in self._cache.items() if e.program is None), None)
            if idle is None:
                if not self._warned_full:
                    self._warned_full = True
                    warnings.warn(
                        f"jit({self._name}): {CACHE_SIZE} captures kept; calls with other "
                        "argument shapes or other guards (replaced parameters, grads present "
                        "or not, train/eval, optimizer state) run eagerly from now on",
                        RuntimeWarning, stacklevel=3)
                return None
            del self._cache[idle]
        entry = self._cache[key] = _Entry()
        return entry

    def _expiry(self, entry: _Entry) -> Callable[[], None]:
        """What a Tensor returned now checks before it is read: no replay of ``entry`` since."""
        generation = entry.generation
        name = self._name

        def check() -> None:
            if entry.generation != generation:
                raise RuntimeError(
                    f"jit({name}): this Tensor was returned by a call of {name} whose memory "
                    f"a later replay ({entry.generation - generation} since) has overwritten. "
                    "Read it (.item(), .numpy()) or copy it (.clone()) before the next call."
                )

        return check

    def _keep(
        self,
        entry: _Entry,
        capture: Capture,
        tensors: list[Tensor],
        result: Any,
        objects: list[Guarded],
        entry_guards: tuple[Hashable, ...],
    ) -> None:
        """Build the replay program of ``capture``, unless a guarded object says the call
        changed what a replay cannot repeat (then the next call of this key tries again)."""
        exits = [o.jit_exit(g) for o, g in zip(objects, entry_guards, strict=True)]
        kept = [effect for effect in exits if effect is not None]
        if len(kept) < len(exits):
            return
        held = held_buffers()
        inputs = [t.buffer for t in tensors]
        assert capture.device is not None
        program = build(capture.device, capture.items, inputs, lambda b: id(b) in held, self.fuse)
        unfused = sum(isinstance(item, Launch) for item in capture.items)
        entry.program = program
        entry.outputs = _template(result, inputs)
        entry.launches = Launches(fused=program.launches, unfused=unfused)
        entry.exits = kept
        self._last = entry
        # The first replay overwrites what this call returned.
        _expire(result, inputs, self._expiry(entry))

    def _signature(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Hashable, list[Tensor]]:
        tensors: list[Tensor] = []
        parts: list[Hashable] = []
        for name, value in [*enumerate(args), *sorted(kwargs.items())]:
            if isinstance(value, Tensor):
                # Which earlier argument shares its memory, if one does: a capture that saw
                # two arguments in one buffer cannot tell their launches apart.
                alias = next((i for i, t in enumerate(tensors) if t.buffer is value.buffer), None)
                tensors.append(value)
                parts.append((name, value.shape, value.dtype.str, value.strides, value.offset,
                              id(value.device), alias))
                continue
            try:
                hash(value)
            except TypeError:
                raise TypeError(
                    f"jit({self._name}): argument {name!r} is a {type(value).__name__}, which is "
                    "neither a Tensor nor hashable; a jitted function takes Tensors (swapped in "
                    "at replay) and hashable values (part of the capture's key)"
                ) from None
            parts.append((name, value))
        return tuple(parts), tensors


def jit(fn: Callable[P, R] | None = None, *, fuse: bool = True) -> Any:
    """Capture ``fn``'s kernel launches once and replay them on later calls.

    ``fuse``: replace each run of elementwise launches whose intermediates
    nobody else reads with one generated kernel (bit-identical results).
    Usable as ``@jit`` or ``@jit(fuse=False)``. See :mod:`netcl.jit.jit`.
    """
    if fn is None:
        return lambda f: Jitted(f, fuse)
    return Jitted(fn, fuse)


@dataclass(frozen=True)
class _Returned:
    """A Tensor the captured call returned: in an argument's memory (``buffer`` is that
    argument's index) or in the capture's (``buffer`` is the buffer), and its layout."""

    buffer: Any
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    device: Device
    strides: tuple[int, ...]
    offset: int


def _map(value: Any, leaf: type, fn: Callable[[Any], Any]) -> Any:
    """``value`` with every ``leaf`` in it, inside tuples, lists and dicts, replaced by
    ``fn(leaf)``; anything else kept as it is."""
    if isinstance(value, leaf):
        return fn(value)
    if isinstance(value, tuple | list):
        return type(value)(_map(v, leaf, fn) for v in value)
    if isinstance(value, dict):
        return {k: _map(v, leaf, fn) for k, v in value.items()}
    return value


def _template(value: Any, inputs: list[Any]) -> Any:
    """What a replay returns, described: each Tensor as a :class:`_Returned`."""

    def describe(t: Tensor) -> _Returned:
        index = next((i for i, b in enumerate(inputs) if b is t.buffer), None)
        return _Returned(t.buffer if index is None else index, t.shape, t.dtype, t.device,
                         t.strides, t.offset)

    return _map(value, Tensor, describe)


def _rebuild(template: Any, tensors: list[Tensor], expiry: Callable[[], None]) -> Any:
    """A replay's result from its template; Tensors in the capture's memory get ``expiry``."""

    def build(r: _Returned) -> Tensor:
        if isinstance(r.buffer, int):
            return Tensor(tensors[r.buffer].buffer, r.shape, r.dtype, r.device, r.strides,
                          r.offset)
        t = Tensor(r.buffer, r.shape, r.dtype, r.device, r.strides, r.offset)
        t.expiry = expiry
        return t

    return _map(template, _Returned, build)


def _expire(value: Any, inputs: list[Any], expiry: Callable[[], None]) -> None:
    """Give every Tensor in ``value`` not in an argument's memory ``expiry``."""

    def mark(t: Tensor) -> None:
        if not any(t.buffer is b for b in inputs):
            t.expiry = expiry

    _map(value, Tensor, mark)


__all__ = ["CaptureError", "Jitted", "Launches", "jit"]
