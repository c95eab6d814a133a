"""The one path every op takes: check, allocate from the pool, enqueue, record."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyopencl as cl
import pyopencl.cltypes as cltypes

from netcl.core.device import Device, manager
from netcl.core.tensor import dtypes, recorder
from netcl.core.tensor.launch import enqueue
from netcl.core.tensor.tensor import Tensor

DeviceLike = Device | cl.CommandQueue | None

# How many work-items a 1-D launch is rounded up to: a multiple of every
# vendor's warp/wavefront, so the driver never picks a tiny work-group size.
LAUNCH_ALIGN = 64
# Kernels take shapes and strides as one OpenCL int8 vector each.
MAX_DIMS = 8
_INT8: np.dtype[Any] = cltypes.int8


def launch_size(work_items: int, align: int = LAUNCH_ALIGN) -> int:
    """The global size of a 1-D launch over ``work_items``: rounded up to ``align``."""
    return -(-work_items // align) * align


def needs_bound_test(device: Device, work_items: int) -> bool:
    """Whether a 1-D kernel over ``work_items``, launched at ``launch_size``, must test
    its bound. Always on a GPU (the kernels measured and tested there); on a CPU
    only when rounding added work-items, since PoCL does not vectorize a kernel
    that returns early (a 262144-element add ran 3.8x slower with the test)."""
    return device.type != "cpu" or launch_size(work_items) != work_items


def int8_vector(values: Sequence[int]) -> np.ndarray[Any, Any]:
    """``values`` (at most 8, zero-padded) as an OpenCL ``int8`` kernel argument."""
    # np.array with cltypes' dtype, not cltypes.make_int8, which evals code on
    # every call (~15x slower, and this runs for every operand of every op).
    padded = tuple(values) + (0,) * (MAX_DIMS - len(values))
    return np.array(padded, dtype=_INT8)


def resolve_device(where: DeviceLike) -> Device:
    """None: the default device; a pyopencl queue: the Device that owns it."""
    if where is None:
        return manager.default("auto")
    if isinstance(where, Device):
        return where
    if isinstance(where, cl.CommandQueue):
        return manager.for_queue(where)
    raise TypeError(
        f"expected a Device, a pyopencl CommandQueue or None, got {type(where).__name__}"
    )


def common_device(op: str, tensors: Sequence[Tensor]) -> Device:
    """The device every tensor is on, or a ValueError naming both devices."""
    device = tensors[0].device
    for other in tensors[1:]:
        if other.device is not device:
            raise ValueError(
                f"{op}: tensors are on different devices ({device!r} and {other.device!r}); "
                "move them to one device first"
            )
    return device


def empty(shape: Sequence[int], dtype: dtypes.DTypeLike, device: Device) -> Tensor:
    """An uninitialised contiguous tensor whose memory comes from the device's pool."""
    dtype = dtypes.as_dtype(dtype)
    shape = tuple(int(s) for s in shape)
    if any(s < 0 for s in shape):
        raise ValueError(f"negative dimension in shape {shape}")
    # math.prod, not np.prod: this runs for every op output, and numpy's
    # per-call overhead is most of the cost of a small op's dispatch.
    nbytes = math.prod(shape) * dtype.itemsize
    try:
        buffer = device.pool.allocate(nbytes)
    except MemoryError as e:
        raise MemoryError(f"a {dtype} tensor of shape {shape}: {e}") from None
    return Tensor.fresh(buffer, shape, dtype, device)


def launch(
    device: Device,
    kernel: cl.Kernel,
    work_items: int,
    *args: Any,
    local_size: int | None = None,
    about: object = None,
) -> None:
    """Enqueue ``kernel(*args)`` over ``work_items`` (rounded up; kernels check their bound),
    through :func:`netcl.core.tensor.launch.enqueue` (which says what ``args`` and
    ``about`` may hold)."""
    if work_items == 0:
        return
    global_size = launch_size(work_items, local_size or LAUNCH_ALIGN)
    local = None if local_size is None else (local_size,)
    enqueue(device, kernel, (global_size,), local, args, about)


def needs_grad(inputs: Sequence[Tensor]) -> bool:
    return recorder.current() is not None and any(t.requires_grad for t in inputs)


def record(op: str, inputs: Sequence[Tensor], output: Tensor, **saved: Any) -> Tensor:
    """Tell the installed recorder of ``op`` when an input needs a gradient; returns ``output``."""
    if needs_grad(inputs):
        output.requires_grad = True
        output.is_leaf = False
        active = recorder.current()
        assert active is not None
        active.record(op, inputs, output, saved)
    return output
