"""What every op does around its launch: find the device, check its operands are on one,
take its output from the pool, and tell the recorder.

The launch itself goes through :mod:`netcl.core.tensor.launch`; its 1-D helpers are
named here too, as op modules have always imported them from here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pyopencl as cl

from netcl.core.device import Device, manager
from netcl.core.tensor import dtypes, recorder
from netcl.core.tensor.launch import LAUNCH_ALIGN as LAUNCH_ALIGN
from netcl.core.tensor.launch import MAX_DIMS as MAX_DIMS
from netcl.core.tensor.launch import int8_vector as int8_vector
from netcl.core.tensor.launch import launch as launch
from netcl.core.tensor.launch import launch_size as launch_size
from netcl.core.tensor.launch import needs_bound_test as needs_bound_test
from netcl.core.tensor.tensor import Tensor

DeviceLike = Device | cl.CommandQueue | None

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
