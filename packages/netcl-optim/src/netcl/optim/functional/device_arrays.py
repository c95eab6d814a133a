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
    #: The float32 master copy a 16-bit parameter is stepped through (see :func:`with_master`).
    master: Span | None = None


class MasterWeighted(Tensor):
    """A 16-bit parameter (a view of it) together with its float32 ``master`` copy: a step
    kernel given one steps the master and stores it, rounded, into the parameter."""

    master: Tensor


def with_master(param: Tensor, master: Tensor) -> Tensor:
    """``param`` as an operand whose step reads and writes ``master`` (float32, the same
    size) and rounds it into ``param`` in the same launch: an update smaller than half a
    unit of the parameter's dtype accumulates in the master instead of being lost.

    >>> import numpy as np
    >>> from netcl.core.tensor import bfloat16, from_numpy
    >>> from netcl.optim.functional import sgd, with_master
    >>> p = from_numpy(np.ones(4, bfloat16))
    >>> master = from_numpy(np.ones(4, np.float32))
    >>> for _ in range(3):  # each update is half a bfloat16 unit below 1: a tie, rounded to 1
    ...     sgd([with_master(p, master)], [from_numpy(np.ones(4, bfloat16))], lr=2.0**-9,
    ...         weight_decay=0.0, maximize=False)
    >>> p.numpy().astype(np.float32)[0], master.numpy()[0]  # without the master, p stays 1
    (np.float32(0.9921875), np.float32(0.9941406))
    """
    view = MasterWeighted(param.buffer, param.shape, param.dtype, param.device, param.strides,
                          param.offset)
    view.master = master
    return view


def span(x: ArrayLike, what: str) -> Span:
    """``x`` as a Span; ``what`` names it in errors (``"grads[3]"``)."""
    if isinstance(x, Tensor):
        if not x.is_contiguous:
            raise ValueError(
                f"{what} must be contiguous; got shape {x.shape} with strides {x.strides}"
            )
        master = getattr(x, "master", None)
        if master is not None:
            master = _master_span(x, master, what)
        return Span(x.buffer, x.offset, x.size, x.dtype, x.device, master)
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


def _master_span(param: Tensor, master: Tensor, what: str) -> Span:
    """``param``'s master copy as a Span, checked: float32, its size, one context."""
    if param.dtype == float32:
        raise ValueError(f"{what} is float32; only a float16 or bfloat16 parameter has a master")
    found = span(master, f"{what}.master")
    if found.dtype != float32 or found.count != param.size:
        raise ValueError(
            f"{what}.master has {found.count} elements of {found.dtype}; expected "
            f"{param.size} of float32")
    if found.device.context != param.device.context:
        raise ValueError(f"{what}.master is in a different OpenCL context than {what}")
    return found


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
