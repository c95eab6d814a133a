"""The arrays the functional forms accept, and how each becomes a Span of a buffer.

The functional forms need nothing of netcl's classes: any object that names a
contiguous run of elements in a pyopencl buffer will do. That is a netcl
``Tensor``, a ``pyopencl.array.Array``, or any object with the attributes of
:class:`DeviceArray`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

import numpy as np
import pyopencl.array as cl_array

from netcl.core.device import Device, manager
from netcl.core.tensor import Tensor, bfloat16, float16, float32

PARAM_DTYPES = (float32, float16, bfloat16)


class DeviceArray(Protocol):
    """A contiguous run of ``size`` elements at element ``offset`` of ``buffer``.

    Any object with these five attributes steps through the functional forms:

    >>> import numpy as np, pyopencl as cl
    >>> from netcl.core.device import manager
    >>> from netcl.optim.functional import span
    >>> queue = manager.default().queue
    >>> class Weights:  # another framework's array type
    ...     buffer = cl.Buffer(queue.context, cl.mem_flags.READ_WRITE, 64)
    ...     offset, size, dtype = 4, 12, np.dtype(np.float32)
    ...     queue = manager.default().queue
    >>> span(Weights(), "params[0]").count
    12

    ``buffer`` is a ``pyopencl.Buffer`` (or pooled allocation); ``queue`` is the
    in-order queue the caller enqueues its own work on, and the one netcl's
    kernels are enqueued on, so they run in order with it.
    """

    @property
    def buffer(self) -> Any: ...
    @property
    def offset(self) -> int: ...
    @property
    def size(self) -> int: ...
    @property
    def dtype(self) -> np.dtype[Any]: ...
    @property
    def queue(self) -> Any: ...


# pyopencl has no type stubs, so cl_array.Array is Any to mypy; named here for readers.
ArrayLike: TypeAlias = "Tensor | DeviceArray | cl_array.Array"


@dataclass(frozen=True, slots=True)
class Span:
    """``count`` contiguous elements of ``dtype`` from element ``offset`` of ``buffer``: one
    kernel operand, whatever array it came from.

    >>> from netcl.core.tensor import zeros
    >>> span(zeros((2, 3))[1], "x").offset, span(zeros((2, 3))[1], "x").count
    (3, 3)
    """

    buffer: Any
    offset: int
    count: int
    dtype: np.dtype[Any]
    device: Device


def span(x: ArrayLike, what: str) -> Span:
    """``x`` as a Span; ``what`` names it in errors (``"grads[3]"``)."""
    if isinstance(x, Tensor):
        if not x.is_contiguous:
            raise ValueError(
                f"{what} must be contiguous; got shape {x.shape} with strides {x.strides}"
            )
        return Span(x.buffer, x.offset, x.size, x.dtype, x.device)
    if isinstance(x, cl_array.Array):
        itemsize = x.dtype.itemsize
        if x.offset % itemsize or not x.flags.c_contiguous:
            raise ValueError(f"{what} must be a C-contiguous array at a whole-element offset")
        if x.queue is None:
            raise ValueError(f"{what} has no queue; give the array one (array.with_queue(q))")
        return Span(x.base_data, x.offset // itemsize, x.size, x.dtype, manager.for_queue(x.queue))
    try:
        buffer, offset, size, dtype, queue = x.buffer, x.offset, x.size, x.dtype, x.queue
    except AttributeError:
        raise TypeError(
            f"{what}: expected a netcl Tensor, a pyopencl.array.Array or an object with "
            f"buffer, offset, size, dtype and queue (DeviceArray); got {type(x).__name__}"
        ) from None
    if not getattr(x, "is_contiguous", True):
        raise ValueError(f"{what} must be contiguous")
    return Span(buffer, int(offset), int(size), np.dtype(dtype), manager.for_queue(queue))


def spans(values: Sequence[ArrayLike], what: str, count: int) -> list[Span]:
    """Every entry of ``values`` as a Span; there must be ``count`` of them."""
    if len(values) != count:
        raise ValueError(f"{what} has {len(values)} entries, expected {count} (one per param)")
    return [span(x, f"{what}[{i}]") for i, x in enumerate(values)]


def check_operands(i: int, param: Span, grad: Span, **state: Span) -> None:
    """Parameter ``i``'s operands agree: sizes, dtypes (state is fp32), one context."""
    if param.dtype not in PARAM_DTYPES:
        raise ValueError(
            f"params[{i}] has dtype {param.dtype}; expected float32, float16 or bfloat16")
    if grad.dtype != param.dtype:
        raise ValueError(
            f"grads[{i}] has dtype {grad.dtype} but params[{i}] has {param.dtype}; "
            "a gradient must have its parameter's dtype"
        )
    for name, operand in (("grads", grad), *state.items()):
        if operand.count != param.count:
            raise ValueError(
                f"{name}[{i}] has {operand.count} elements but params[{i}] has {param.count}"
            )
        if operand.device.context != param.device.context:
            raise ValueError(f"{name}[{i}] is in a different OpenCL context than params[{i}]")
    for name, operand in state.items():
        if operand.dtype != float32:
            raise ValueError(f"{name}[{i}] has dtype {operand.dtype}; optimizer state is float32")
