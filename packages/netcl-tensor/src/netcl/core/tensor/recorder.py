"""The recorder slot: how autograd hears of every op without this layer importing it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol


class Recorder(Protocol):
    """Told of each op whose inputs need a gradient, in the order they run: ``inputs`` and
    ``output`` are the op's Tensors (typed ``Any`` here: Tensor itself uses this slot,
    to keep its own copies off a tape)."""

    def record(
        self, op: str, inputs: Sequence[Any], output: Any, saved: Mapping[str, Any]
    ) -> None: ...


# A context variable, not a module global: each thread and each asyncio task has its
# own slot, so one thread's Tape never records another thread's ops.
_current: ContextVar[Recorder | None] = ContextVar("netcl_recorder", default=None)


def current() -> Recorder | None:
    """The recorder installed in this thread (or asyncio task), or None."""
    return _current.get()


@contextmanager
def recording(recorder: Recorder | None) -> Iterator[None]:
    """Install ``recorder`` (None: record nothing) in this thread or task for a block."""
    token = _current.set(recorder)
    try:
        yield
    finally:
        _current.reset(token)
