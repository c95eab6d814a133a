"""The recorder slot: how autograd hears of every op without this layer importing it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from netcl.core.tensor.tensor import Tensor


class Recorder(Protocol):
    """Told of each op whose inputs need a gradient, in the order they run."""

    def record(
        self, op: str, inputs: Sequence[Tensor], output: Tensor, saved: Mapping[str, Any]
    ) -> None: ...


_current: Recorder | None = None


def current() -> Recorder | None:
    """The installed recorder, or None when no op is being recorded."""
    return _current


@contextmanager
def recording(recorder: Recorder | None) -> Iterator[None]:
    """Install ``recorder`` (None: record nothing) for the duration of a block."""
    global _current
    previous = _current
    _current = recorder
    try:
        yield
    finally:
        _current = previous
