"""no_grad: run ops with no recorder installed, so nothing is recorded."""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import AbstractContextManager
from types import TracebackType
from typing import ParamSpec, TypeVar

from netcl.core.tensor import recorder

_P = ParamSpec("_P")
_R = TypeVar("_R")


class no_grad:  # PyTorch's lower-case name: used like a function
    """Inside ``with no_grad():`` (or a function decorated ``@no_grad()``) no op is recorded.

    It installs no recorder in the tensor layer's slot for the duration, so
    outputs do not require grad and enclosing tapes see nothing. In-place
    updates of parameters (an optimizer step) belong here. Nesting is fine:
    leaving the block reinstates whatever was installed before it.
    """

    def __call__(self, func: Callable[_P, _R]) -> Callable[_P, _R]:
        """Decorate ``func``: each call runs under a no_grad of its own, so threads calling
        one decorated function never pop each other's state."""

        @functools.wraps(func)
        def without_grad(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            with no_grad():
                return func(*args, **kwargs)

        return without_grad

    def __init__(self) -> None:
        self._installed: list[AbstractContextManager[None]] = []

    def __enter__(self) -> no_grad:
        installed = recorder.recording(None)
        installed.__enter__()
        # A stack, so one no_grad object may be re-entered (a decorated recursive function).
        self._installed.append(installed)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._installed.pop().__exit__(exc_type, exc, tb)


def is_recording() -> bool:
    """Whether an op run now would be recorded (some tape is installed)."""
    return recorder.current() is not None
