"""Copies between tensors on a device and one flat host array, merged into as few as possible.

MPI moves host memory (an OpenCL buffer has no address MPI could read), so
a bucket of gradients goes device -> host array -> collective -> device.
Tensors that lie end to end in one device buffer (an optimizer's flat grad
buffer) move with one copy each way.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, NamedTuple, cast

import numpy as np
import pyopencl as cl
from mpi4py import MPI

from netcl.core.tensor import Tensor
from netcl.core.tensor.launch import map_to_host, transfer


class Span(NamedTuple):
    """``size`` elements at ``device_offset`` of ``buffer`` and at ``host_offset`` of the array."""

    buffer: Any
    device_offset: int
    host_offset: int
    size: int


def spans(tensors: Sequence[Tensor]) -> list[Span]:
    """The copies that move ``tensors`` (contiguous, laid end to end in the host array)."""
    out: list[Span] = []
    at = 0
    for t in tensors:
        if not t.is_contiguous:
            raise ValueError(
                f"a tensor of shape {t.shape} has strides {t.strides}: only contiguous "
                "tensors are copied to and from the host"
            )
        last = out[-1] if out else None
        if (last is not None and last.buffer is t.buffer
                and last.device_offset + last.size == t.offset):
            out[-1] = last._replace(size=last.size + t.size)
        elif t.size:
            out.append(Span(t.buffer, t.offset, at, t.size))
        at += t.size
    return out


def clip(copies: Sequence[Span], lo: int, hi: int) -> list[Span]:
    """The parts of ``copies`` that move host elements ``[lo, hi)``."""
    out: list[Span] = []
    for span in copies:
        first = max(span.host_offset, lo)
        stop = min(span.host_offset + span.size, hi)
        if first < stop:
            out.append(Span(span.buffer, span.device_offset + first - span.host_offset, first,
                            stop - first))
    return out


def device_view(like: Tensor, span: Span) -> Tensor:
    """The device elements of ``span`` as a 1-D tensor of ``like``'s dtype and device."""
    return Tensor(span.buffer, (span.size,), like.dtype, like.device, offset=span.device_offset)


def pinned_array(queue: cl.CommandQueue, size: int, dtype: np.dtype[Any] | type = np.float32
                 ) -> np.ndarray[Any, Any]:
    """A host array of ``size`` elements of ``dtype`` (float32 by default) in memory the
    driver pins, mapped for good.

    Copies between the device and pinned memory need no staging through a driver buffer:
    on the H200, 218 MB crossed in 4.0 ms to or from an ``ALLOC_HOST_PTR`` buffer against
    21.8 ms (device to host) and 40.6 ms (host to device) for pageable numpy memory (issue
    34's measurements). PoCL's host memory is the device's, so there it costs nothing.
    The array holds the mapping, and the mapping holds the buffer.
    """
    dtype = np.dtype(dtype)
    buffer = cl.Buffer(queue.context, cl.mem_flags.READ_WRITE | cl.mem_flags.ALLOC_HOST_PTR,
                       max(size, 1) * dtype.itemsize)
    flags = cast(cl.map_flags, cl.map_flags.READ | cl.map_flags.WRITE)
    array = map_to_host(queue, buffer, flags, (max(size, 1),), dtype)
    array.fill(0)
    return array[:size]


def to_host(queue: cl.CommandQueue, copies: Sequence[Span], host: np.ndarray[Any, Any]
            ) -> cl.Event | None:
    """Enqueue the device-to-host copies (not waiting); the last one's event, None if none."""
    event = None
    size = host.itemsize
    for span in copies:
        event = transfer(
            queue, host[span.host_offset:span.host_offset + span.size],
            span.buffer, src_offset=span.device_offset * size,
            is_blocking=False,
        )
    return event


def to_device(queue: cl.CommandQueue, copies: Sequence[Span], host: np.ndarray[Any, Any]
              ) -> None:
    """Enqueue the host-to-device copies, not waiting: ``host`` must outlive them."""
    size = host.itemsize
    for span in copies:
        transfer(
            queue, span.buffer,
            host[span.host_offset:span.host_offset + span.size],
            dst_offset=span.device_offset * size, is_blocking=False,
        )


def wait(request: MPI.Request) -> None:
    """Wait for a non-blocking collective, giving the core away while it is not done.

    MPI's own Wait spins; ranks that share a CPU device's cores (PoCL, several
    ranks on one machine) would then take the cores from the ranks still
    computing the gradients this collective waits for.
    """
    while not request.Test():
        os.sched_yield()
