"""Autocast: matmul, conv and batched matmul run in a 16-bit float inside a region.

PyTorch's ``torch.autocast`` is the reference. Inside ``with autocast():`` the
ops of its lower-precision list (``matmul``, ``conv2d``; ``nn``'s linear and
conv layers through them) cast their float operands to the region's dtype
(bfloat16 by default), and the ops of its float32 list (softmax, log_softmax,
layer norm, losses: ``netcl.nn`` asks :func:`to_float32`) cast 16-bit inputs up
to float32. Every other op runs in its inputs' promoted dtype. Parameters stay
float32: a cast is recorded like any op, so a weight's gradient comes back in
the weight's own dtype.

A leaf tensor that requires grad (a weight) is cast once per region and tape:
the cast is kept until the outermost region exits, so a weight used by several
matmuls of one forward is converted once. The state is a context variable, so
each thread and asyncio task has its own; outside any region the cost to an op
is one ``ContextVar.get``.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from netcl.core.tensor import dtypes, recorder
from netcl.core.tensor.ops.elementwise import cast as _cast_to
from netcl.core.tensor.tensor import Tensor

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class _Region:
    """The innermost region's dtype (None: autocast disabled there) and the cast cache
    that every region nested in the outermost enabled one shares."""

    dtype: np.dtype[Any] | None
    cache: dict[int, tuple[weakref.ref[Tensor], Tensor, object]] = field(default_factory=dict)
    cache_enabled: bool = True


_region: ContextVar[_Region | None] = ContextVar("netcl_autocast", default=None)


class autocast:
    """Run matmul and conv in ``dtype`` (bfloat16 or float16) inside a ``with`` block
    or a decorated function; ``enabled=False`` turns autocast off for the block,
    also inside an enabled region; ``cache_enabled=False`` casts a weight at every use.

    >>> import numpy as np
    >>> from netcl.core.tensor import from_numpy, ops
    >>> x = from_numpy(np.ones((2, 3), np.float32))
    >>> with autocast():
    ...     y = ops.matmul(x, x.T)
    >>> y.dtype
    dtype(bfloat16)
    """

    def __init__(self, dtype: dtypes.DTypeLike = dtypes.bfloat16, enabled: bool = True,
                 cache_enabled: bool = True) -> None:
        resolved = dtypes.as_dtype(dtype)
        if resolved not in dtypes.LOW_PRECISION:
            raise ValueError(
                f"autocast: dtype must be bfloat16 or float16, got {resolved}")
        if not isinstance(enabled, bool) or not isinstance(cache_enabled, bool):
            raise TypeError(
                f"autocast: enabled and cache_enabled must be bools, got {enabled!r} and "
                f"{cache_enabled!r}")
        self.dtype = resolved
        self.enabled = enabled
        self.cache_enabled = cache_enabled
        # One per entry: the same object may be entered again while it is active.
        self._entered: list[tuple[Token[_Region | None], _Region]] = []

    def __enter__(self) -> autocast:
        outer = _region.get()
        cache = outer.cache if outer is not None else {}
        region = _Region(self.dtype if self.enabled else None, cache, self.cache_enabled)
        self._entered.append((_region.set(region), region))
        return self

    def __exit__(self, *exc: object) -> None:
        token, region = self._entered.pop()
        _region.reset(token)
        if _region.get() is None:
            # PyTorch drops its cast cache when the outermost region exits: a weight the
            # optimizer then changes is cast afresh by the next forward.
            region.cache.clear()

    def __call__(self, func: F) -> F:
        @functools.wraps(func)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            with autocast(self.dtype, self.enabled, self.cache_enabled):
                return func(*args, **kwargs)

        return wrapped  # type: ignore[return-value]


def low_precision_dtype() -> np.dtype[Any] | None:
    """The dtype matmul and conv run in here, or None outside autocast (or where disabled)."""
    region = _region.get()
    return None if region is None else region.dtype


def to_low_precision(*tensors: Tensor) -> tuple[Tensor, ...]:
    """``tensors`` as the lower-precision list's ops take them: float ones cast to the
    region's dtype inside autocast; unchanged outside it (and for other dtypes)."""
    region = _region.get()
    if region is None or region.dtype is None:
        return tensors
    return tuple(_cast(t, region) for t in tensors)


def to_float32(*tensors: Tensor) -> tuple[Tensor, ...]:
    """``tensors`` as the float32 list's ops take them: 16-bit floats cast up to float32
    inside autocast; unchanged outside it."""
    region = _region.get()
    if region is None or region.dtype is None:
        return tensors
    return tuple(t if t.dtype not in dtypes.LOW_PRECISION else _cast_to(t, dtypes.float32)
                 for t in tensors)


def _cast(t: Tensor, region: _Region) -> Tensor:
    assert region.dtype is not None
    if t.dtype == region.dtype or not dtypes.is_floating(t.dtype):
        return t
    if not (region.cache_enabled and t.is_leaf and t.requires_grad):
        return _cast_to(t, region.dtype)
    # A weight: cast once per region and tape. The tape is part of the key because the
    # cast's record lives on the tape that made it; another tape needs its own.
    tape = recorder.current()
    entry = region.cache.get(id(t))
    if entry is not None and entry[0]() is t and entry[2] is tape:
        cached = entry[1]
        if cached.dtype == region.dtype:
            return cached
    lowered = _cast_to(t, region.dtype)
    region.cache[id(t)] = (weakref.ref(t), lowered, tape)
    return lowered
