"""``@jit``: run a function eagerly, capture its launches, then replay them.

The first call with a given signature (the Tensor arguments' shapes, dtypes,
strides, offsets and devices, and the other arguments' values) runs eagerly:
it creates whatever state a first step creates. The second runs eagerly too
and is captured. Every later call replays the capture: the recorded launches
with the Tensor arguments' buffers swapped in, their ``Live`` scalars re-read
and their host work (an optimizer counting its steps) repeated; the function's
Python does not run. A call with a new signature starts over for it.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, TypeVar

from netcl.core.tensor import Tensor
from netcl.core.tensor.launch import observing
from netcl.jit.capture import Capture, CaptureError, held_buffers
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
    calls: int = 0
    program: Program | None = None
    outputs: Any = None
    launches: Launches | None = None


class Jitted(Generic[P, R]):
    """A function that replays its captured launches (see :func:`jit`)."""

    def __init__(self, fn: Callable[P, R], fuse: bool) -> None:
        self.fn = fn
        self.fuse = fuse
        self._name = getattr(fn, "__qualname__", repr(fn))
        self._cache: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._last: _Entry | None = None
        functools.update_wrapper(self, fn)

    @property
    def launches(self) -> Launches:
        """The launches of one replay of the most recent capture, with and without fusion."""
        if self._last is None or self._last.launches is None:
            raise RuntimeError(f"jit({self._name}): nothing captured yet (it captures on call 2)")
        return self._last.launches

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        key, tensors = self._signature(args, kwargs)
        entry = self._cache.get(key)
        if entry is None:
            entry = self._cache[key] = _Entry()
            if len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        if entry.program is not None:
            entry.program.run([t.buffer for t in tensors])
            return _rebuild(entry.outputs, tensors)  # type: ignore[no-any-return]
        entry.calls += 1
        capture = Capture(self._name)
        with observing(capture):
            result = self.fn(*args, **kwargs)
        if entry.calls >= 2 and capture.device is not None:
            self._keep(entry, capture, tensors, result)
        return result

    def _keep(self, entry: _Entry, capture: Capture, tensors: list[Tensor], result: Any) -> None:
        held = held_buffers()
        inputs = [t.buffer for t in tensors]
        assert capture.device is not None
        program = build(capture.device, capture.items, inputs, lambda b: id(b) in held, self.fuse)
        unfused = sum(isinstance(item, Launch) for item in capture.items)
        entry.program = program
        entry.outputs = _template(result, inputs)
        entry.launches = Launches(fused=program.launches, unfused=unfused)
        self._last = entry

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


def _template(value: Any, inputs: list[Any]) -> Any:
    """What a replay returns, described: a Tensor by its buffer (an input's index, when it
    is an argument's) and layout; containers recursively; anything else as it is."""
    if isinstance(value, Tensor):
        index = next((i for i, b in enumerate(inputs) if b is value.buffer), None)
        buffer = value.buffer if index is None else index
        return (_TENSOR, buffer, value.shape, value.dtype, value.device, value.strides,
                value.offset)
    if isinstance(value, tuple | list):
        return type(value)(_template(v, inputs) for v in value)
    if isinstance(value, dict):
        return {k: _template(v, inputs) for k, v in value.items()}
    return value


_TENSOR = object()


def _rebuild(template: Any, tensors: list[Tensor]) -> Any:
    if isinstance(template, tuple) and template and template[0] is _TENSOR:
        _, buffer, shape, dtype, device, strides, offset = template
        if isinstance(buffer, int):
            buffer = tensors[buffer].buffer
        return Tensor(buffer, shape, dtype, device, strides, offset)
    if isinstance(template, tuple | list):
        return type(template)(_rebuild(v, tensors) for v in template)
    if isinstance(template, dict):
        return {k: _rebuild(v, tensors) for k, v in template.items()}
    return template


__all__ = ["CaptureError", "Jitted", "Launches", "jit"]
