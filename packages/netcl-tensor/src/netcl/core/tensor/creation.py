"""Making tensors: from host data, filled, random, or around another framework's buffers."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyopencl as cl
import pyopencl.array as cl_array

from netcl.core.tensor import dtypes, philox
from netcl.core.tensor.dispatch import DeviceLike, empty, resolve_device
from netcl.core.tensor.launch import host_upload, transfer
from netcl.core.tensor.tensor import Scalar, Tensor, as_shape

_generator = np.random.default_rng()
_DEVICE = "philox"  # the device generator's entry in get_rng_state's dict


def manual_seed(seed: int) -> None:
    """Seed the generator ``rand``/``randn`` use when given none, and the device's
    (``netcl.core.tensor.philox``: Dropout's masks) from its first draw."""
    global _generator
    _generator = np.random.default_rng(seed)
    philox.seed(seed)


def get_rng_state() -> dict[str, Any]:
    """The state of the generator ``rand``/``randn`` use when given none (plain data: a
    dict of str, int and dicts, numpy's ``bit_generator.state``) and of the device's
    (under ``"philox"``), for checkpoints."""
    return {**copy.deepcopy(dict(_generator.bit_generator.state)), _DEVICE: philox.get_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    """Put back a state from :func:`get_rng_state`; the draws that followed it follow again.

    A state numpy does not accept raises ValueError or TypeError and leaves both
    generators as they were; one without ``"philox"`` (saved before the device
    had a generator) leaves the device's as it is.
    """
    global _generator
    device = state.get(_DEVICE) if isinstance(state, dict) else None
    device_state = None if device is None else philox.checked_state(device)
    if isinstance(state, dict):
        state = {key: value for key, value in state.items() if key != _DEVICE}
    name = state.get("bit_generator") if isinstance(state, dict) else None
    kind = getattr(np.random, name, None) if isinstance(name, str) else None
    # Only a BitGenerator class is called: a state read from a file picks nothing else.
    if not (isinstance(kind, type) and issubclass(kind, np.random.BitGenerator)):
        raise ValueError(f"set_rng_state: {name!r} is not a numpy bit generator")
    generator = np.random.Generator(kind())
    generator.bit_generator.state = state
    _generator = generator
    if device_state is not None:
        philox.set_state(device_state)


def from_numpy(array: np.ndarray[Any, Any], device: DeviceLike = None) -> Tensor:
    """A device copy of ``array`` (fp64 becomes fp32, as netcl holds no fp64)."""
    if array.dtype == np.float64:
        array = array.astype(np.float32)
    dtype = dtypes.as_dtype(array.dtype)
    target = resolve_device(device)
    # ascontiguousarray turns a 0-d array into shape (1,); the reshape keeps it 0-d.
    host = np.ascontiguousarray(array).reshape(array.shape)
    host_upload("from_numpy")
    out = empty(host.shape, dtype, target)
    if host.size:
        # The host data goes into a buffer of its own when that buffer is created,
        # then a device-side copy on the queue puts it in place: the caller may reuse
        # ``array`` at once, and nothing waits for the queue (a blocking write would
        # wait for every op enqueued before it). OpenCL keeps the staging buffer
        # alive until the copy has run.
        flags = cl.mem_flags.READ_ONLY | cl.mem_flags.COPY_HOST_PTR
        staging = cl.Buffer(target.context, flags, hostbuf=host)
        # pyopencl's stubs name Buffer; a pooled buffer copies the same way.
        transfer(target.queue, out.buffer, staging, byte_count=host.nbytes)
    return out


def tensor(
    data: Any,
    device: DeviceLike = None,
    dtype: dtypes.DTypeLike | None = None,
    requires_grad: bool = False,
) -> Tensor:
    """A tensor holding ``data`` (a number, nested lists, or a numpy array)."""
    array = np.asarray(data)
    if dtype is not None:
        array = array.astype(dtypes.as_dtype(dtype))
    elif array.dtype == np.float64:
        array = array.astype(np.float32)
    out = from_numpy(array, device)
    out.requires_grad = requires_grad
    return out


def full(
    shape: int | Sequence[int],
    value: Scalar,
    dtype: dtypes.DTypeLike = dtypes.float32,
    device: DeviceLike = None,
    requires_grad: bool = False,
) -> Tensor:
    out = empty(as_shape(shape), dtype, resolve_device(device))
    if out.dtype == dtypes.bool_:
        value = bool(value)  # ones((2, 2), bool_), as numpy and torch make it
    elif isinstance(value, float) and not dtypes.is_floating(out.dtype):
        value = int(value)  # numpy's full casts unsafely: the dtype asked for wins
    out.fill_(value)
    out.requires_grad = requires_grad
    return out


def zeros(
    shape: int | Sequence[int],
    dtype: dtypes.DTypeLike = dtypes.float32,
    device: DeviceLike = None,
    requires_grad: bool = False,
) -> Tensor:
    return full(shape, 0, dtype, device, requires_grad)


def ones(
    shape: int | Sequence[int],
    dtype: dtypes.DTypeLike = dtypes.float32,
    device: DeviceLike = None,
    requires_grad: bool = False,
) -> Tensor:
    return full(shape, 1, dtype, device, requires_grad)


def empty_tensor(
    shape: int | Sequence[int], dtype: dtypes.DTypeLike = dtypes.float32, device: DeviceLike = None
) -> Tensor:
    """Uninitialised memory from the pool (exported as ``empty``)."""
    return empty(as_shape(shape), dtype, resolve_device(device))


def arange(
    start: float, stop: float | None = None, step: float = 1,
    dtype: dtypes.DTypeLike | None = None, device: DeviceLike = None,
) -> Tensor:
    if stop is None:
        start, stop = 0, start
    values = np.arange(start, stop, step)
    if dtype is None:
        dtype = dtypes.int64 if values.dtype.kind in "iu" else dtypes.float32
    return from_numpy(values.astype(dtypes.as_dtype(dtype)), device)


def rand(
    shape: int | Sequence[int],
    dtype: dtypes.DTypeLike = dtypes.float32,
    device: DeviceLike = None,
    generator: np.random.Generator | None = None,
) -> Tensor:
    """Uniform on [0, 1), drawn on the host from ``generator`` (seeded by ``manual_seed``)."""
    values = (generator or _generator).random(as_shape(shape), dtype=np.float32)
    return from_numpy(values.astype(dtypes.as_dtype(dtype)), device)


def randn(
    shape: int | Sequence[int],
    dtype: dtypes.DTypeLike = dtypes.float32,
    device: DeviceLike = None,
    generator: np.random.Generator | None = None,
) -> Tensor:
    """Standard normal, drawn on the host from ``generator`` (seeded by ``manual_seed``)."""
    values = (generator or _generator).standard_normal(as_shape(shape), dtype=np.float32)
    return from_numpy(values.astype(dtypes.as_dtype(dtype)), device)


def zeros_like(t: Tensor, dtype: dtypes.DTypeLike | None = None) -> Tensor:
    return full(t.shape, 0, dtype or t.dtype, t.device)


def ones_like(t: Tensor, dtype: dtypes.DTypeLike | None = None) -> Tensor:
    return full(t.shape, 1, dtype or t.dtype, t.device)


def full_like(t: Tensor, value: Scalar, dtype: dtypes.DTypeLike | None = None) -> Tensor:
    return full(t.shape, value, dtype or t.dtype, t.device)


def empty_like(t: Tensor, dtype: dtypes.DTypeLike | None = None) -> Tensor:
    return empty(t.shape, dtype or t.dtype, t.device)


def from_buffer(
    buffer: cl.MemoryObjectHolder,
    shape: Sequence[int],
    dtype: dtypes.DTypeLike,
    queue: cl.CommandQueue,
    offset: int = 0,
    strides: Sequence[int] | None = None,
) -> Tensor:
    """Wrap another framework's pyopencl buffer without a copy.

    ``offset`` and ``strides`` are in elements. The tensor does not own the
    memory: the caller keeps ``buffer`` alive and works on ``queue`` (or waits
    for it) so that netcl's kernels see its writes in order.
    """
    dtype = dtypes.as_dtype(dtype)
    device = resolve_device(queue)
    if buffer.context != device.context:
        raise ValueError("from_buffer: the buffer belongs to a different OpenCL context than queue")
    out = Tensor(buffer, shape, dtype, device, strides, offset)
    last = out.offset + sum((s - 1) * st for s, st in zip(out.shape, out.strides, strict=True))
    if out.size and (last + 1) * dtype.itemsize > buffer.size:
        raise ValueError(
            f"from_buffer: shape {out.shape} at offset {offset} needs "
            f"{(last + 1) * dtype.itemsize} bytes, the buffer has {buffer.size}"
        )
    return out


def from_array(array: cl_array.Array) -> Tensor:
    """Wrap a ``pyopencl.array.Array`` without a copy (its strides must be whole elements)."""
    if array.base_data is None or array.queue is None:
        raise ValueError("from_array: the array needs device memory and a queue")
    if not isinstance(array.base_data, cl.MemoryObjectHolder):
        raise ValueError("from_array: SVM-backed arrays are not supported")
    itemsize = array.dtype.itemsize
    if array.offset % itemsize or any(s % itemsize for s in array.strides):
        raise ValueError("from_array: offset and strides must be multiples of the item size")
    return from_buffer(
        array.base_data,
        array.shape,
        array.dtype,
        array.queue,
        offset=array.offset // itemsize,
        strides=[s // itemsize for s in array.strides],
    )
