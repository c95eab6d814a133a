"""The one place every kernel of netcl is enqueued and every copy is made, and the slot
that watches them.

``enqueue(device, kernel, global_size, local_size, args)`` is the chokepoint:
every op of the tensor layer (elementwise, reductions, movement, indexing,
matmul, conv) and every kernel of netcl-optim (the functional steps,
clip_grad) reaches the device through it, or through :func:`launch` (a 1-D
launch over a count of work-items) or :func:`enqueue_prepared` over it. A
replay (netcl-jit's program) holds kernel objects of its own, sets their
arguments with :func:`set_args` and enqueues them with :func:`enqueue_set`;
buffers are copied to, from and between devices with :func:`transfer` (and mapped
into host memory with :func:`map_to_host`); :func:`marker` and :func:`wait_for` order a
queue against work outside OpenCL (another API's collectives). Nothing
else in netcl calls pyopencl's enqueue functions. Each entry of ``args`` is one kernel
argument, of one of three kinds:

- a buffer: a ``pyopencl.MemoryObjectHolder`` (a ``cl.Buffer`` or a pooled
  buffer from a BufferPool), or None for a null pointer;
- a ``Live``: a scalar read when the launch happens (see below);
- anything else: a scalar or OpenCL vector passed by value, as an object with
  the buffer protocol holding exactly the kernel parameter's bytes (``bytes``
  from :func:`pack_int32` and its siblings or ``struct``, a numpy scalar of the
  kernel's type, a numpy array of a ``pyopencl.cltypes`` vector type).

``enqueue_prepared`` is the same launch for a caller that already knows which
argument is a buffer (an op's plan does): it skips sorting them, and an
observer still sees one ``args`` list.

The launch-observer slot sits beside autograd's recorder slot: ``observing(o)``
installs ``o`` for the current thread (or asyncio task), and ``o.launched(device, kernel,
global_size, local_size, args, about)`` is told of every launch the thread
makes, before it is enqueued, with ``args`` as given (a capture swaps buffers
by identity and re-reads every ``Live`` at replay) and ``about`` what the op
says of it (see :mod:`netcl.core.tensor.launch_info`; None for most). The
launch itself still happens: observing changes nothing that runs. The
observer also hears of what a replay of launches would miss: a tensor's value
read back to the host (:func:`host_read`), host data copied in
(:func:`host_upload`) and host work that must run again (:func:`host_effect`,
an optimizer counting its steps).

``Live(read)`` declares an argument whose value must be re-read every time the
launch is replayed (an optimizer's learning rate, step count or bias
correction): ``read`` takes no arguments and returns the current value as a
numpy scalar of the kernel parameter's type. An eager launch reads it at once.

Thread safety: kernel arguments are state of the kernel object, which is
cached and shared, so setting them and enqueueing is one critical section;
two threads launching the same kernel never see each other's arguments.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np
import pyopencl as cl
import pyopencl._cl as _cl
import pyopencl.cltypes as cltypes

if TYPE_CHECKING:
    from netcl.core.device import Device

Size = tuple[int, ...]

# How many work-items a 1-D launch is rounded up to: a multiple of every
# vendor's warp/wavefront, so the driver never picks a tiny work-group size.
LAUNCH_ALIGN = 64
# Kernels take shapes and strides as one OpenCL int8 vector each.
MAX_DIMS = 8
_INT8: np.dtype[Any] = cltypes.int8


class Live:
    """A kernel argument read when the launch happens: ``read()`` returns its value
    as a numpy scalar of the kernel parameter's type (``np.float32(lr)``, say)."""

    __slots__ = ("read",)

    def __init__(self, read: Callable[[], np.generic]) -> None:
        if not callable(read):
            raise TypeError(f"Live: expected a zero-argument callable, got {type(read).__name__}")
        self.read = read

    def __repr__(self) -> str:
        return f"Live({self.read!r})"


class LaunchObserver(Protocol):
    """Told of every kernel launch of the thread it is installed on, in order."""

    def launched(
        self,
        device: Device,
        kernel: cl.Kernel,
        global_size: Size,
        local_size: Size | None,
        args: Sequence[Any],
        about: object,
    ) -> None: ...

    def host_read(self, what: str) -> None:
        """``what`` (``"item()"``, say) is about to read a tensor's value back."""

    def host_upload(self, what: str) -> None:
        """``what`` (``"from_numpy"``) is about to copy host data into a buffer."""

    def host_effect(self, effect: Callable[[], None]) -> None:
        """``effect`` just ran and would have to run again wherever these launches do."""


# A context variable, as the recorder slot is: each thread and each asyncio task has
# its own observer.
_current: ContextVar[LaunchObserver | None] = ContextVar("netcl_launch_observer", default=None)
# One lock for every kernel object: arguments are per-object state, and holding
# it across set-args and enqueue makes the pair atomic. Uncontended it costs
# about 0.1 us, next to several for the enqueue.
_lock = threading.Lock()
_MEMORY = cl.MemoryObjectHolder
# pyopencl's own generated invokers call these (its stubs do not list the argument
# setters and declare the enqueue's last two parameters keyword-only; positional
# is what the invokers pass, as keywords cost more through nanobind).
_ENQUEUE: Any = _cl.enqueue_nd_range_kernel


def current_observer() -> LaunchObserver | None:
    """The observer installed on this thread (or asyncio task), or None."""
    return _current.get()


@contextmanager
def observing(observer: LaunchObserver | None) -> Iterator[None]:
    """Install ``observer`` (None: observe nothing) on this thread or task for a block."""
    token = _current.set(observer)
    try:
        yield
    finally:
        _current.reset(token)


_INT32 = struct.Struct("=i").pack
_INT64 = struct.Struct("=q").pack
_FLOAT32 = struct.Struct("=f").pack


def pack_int32(value: int) -> bytes:
    """``value`` as the bytes of an OpenCL ``int`` argument (OverflowError if it does not fit)."""
    try:
        return _INT32(value)
    except struct.error:
        raise OverflowError(f"{value} does not fit a 32-bit kernel argument") from None


def pack_int64(value: int) -> bytes:
    """``value`` as the bytes of an OpenCL ``long`` argument."""
    try:
        return _INT64(value)
    except struct.error:
        raise OverflowError(f"{value} does not fit a 64-bit kernel argument") from None


def pack_float32(value: float) -> bytes:
    """``value`` as the bytes of an OpenCL ``float`` argument, rounded as numpy rounds."""
    return _FLOAT32(value)


def int8_vector(values: Sequence[int]) -> np.ndarray[Any, Any]:
    """``values`` (at most 8, zero-padded) as an OpenCL ``int8`` kernel argument."""
    # np.array with cltypes' dtype, not cltypes.make_int8, which evals code on
    # every call (~15x slower, and this runs for every operand of every op).
    padded = tuple(values) + (0,) * (MAX_DIMS - len(values))
    return np.array(padded, dtype=_INT8)


def launch_size(work_items: int, align: int = LAUNCH_ALIGN) -> int:
    """The global size of a 1-D launch over ``work_items``: rounded up to ``align``."""
    return -(-work_items // align) * align


def needs_bound_test(device: Device, work_items: int) -> bool:
    """Whether a 1-D kernel over ``work_items``, launched at ``launch_size``, must test
    its bound. Always on a GPU (the kernels measured and tested there); on a CPU
    only when rounding added work-items, since PoCL does not vectorize a kernel
    that returns early (a 262144-element add ran 3.8x slower with the test)."""
    return device.type != "cpu" or launch_size(work_items) != work_items


def host_read(what: str) -> None:
    """Tell the observer, if any, that ``what`` reads a tensor's value back."""
    observer = _current.get()
    if observer is not None:
        observer.host_read(what)


def host_upload(what: str) -> None:
    """Tell the observer, if any, that ``what`` copies host data into a buffer."""
    observer = _current.get()
    if observer is not None:
        observer.host_upload(what)


def host_effect(effect: Callable[[], None]) -> None:
    """Run ``effect`` (host state that changes with every launch of what follows, such as
    a step count its ``Live`` arguments read), then tell the observer, if any."""
    effect()
    observer = _current.get()
    if observer is not None:
        observer.host_effect(effect)


def enqueue(
    device: Device,
    kernel: cl.Kernel,
    global_size: Size,
    local_size: Size | None,
    args: Sequence[Any],
    about: object = None,
) -> None:
    """Set ``args`` on ``kernel`` and enqueue it on ``device``'s queue; returns at once.

    ``global_size`` must be a multiple of ``local_size`` where one is given;
    ``about`` goes to the observer (see :mod:`netcl.core.tensor.launch_info`).
    """
    buffers: list[Any] = []
    values: list[Any] = []
    for index, arg in enumerate(args):
        if isinstance(arg, _MEMORY) or arg is None:
            buffers += (index, arg)
        elif type(arg) is Live:
            values += (index, arg.read())
        else:
            values += (index, arg)
    enqueue_prepared(device, kernel, global_size, local_size, tuple(buffers), tuple(values),
                     args, about)


def enqueue_prepared(
    device: Device,
    kernel: cl.Kernel,
    global_size: Size,
    local_size: Size | None,
    buffers: tuple[Any, ...],
    values: tuple[Any, ...],
    args: Sequence[Any] | None = None,
    about: object = None,
) -> None:
    """:func:`enqueue` for a caller that knows which argument is which: ``buffers`` and
    ``values`` are flat (index, argument, index, argument, ...) tuples, every buffer
    in the first and every by-value argument (no Live) in the second, together all of
    the kernel's arguments. An observer still gets them as one ``args`` list (or
    ``args`` itself, when given).
    """
    observer = _current.get()
    if observer is not None:
        if args is None:
            joined: list[Any] = [None] * ((len(buffers) + len(values)) // 2)
            for pairs in (buffers, values):
                for i in range(0, len(pairs), 2):
                    joined[pairs[i]] = pairs[i + 1]
            args = joined
        observer.launched(device, kernel, global_size, local_size, args, about)
    # pyopencl's public Kernel.set_arg spends 7-17 us per scalar on PoCL (its
    # overload dispatch); these are the setters its own generated invokers
    # call, at ~0.1 us per argument.
    setter: Any = kernel
    with _lock:
        if buffers:
            setter._set_arg_multi(buffers)
        if values:
            setter._set_arg_buf_multi(values)
        _ENQUEUE(device.queue, kernel, global_size, local_size, None, None, False, True)


def launch(
    device: Device,
    kernel: cl.Kernel,
    work_items: int,
    *args: Any,
    local_size: int | None = None,
    about: object = None,
) -> None:
    """Enqueue ``kernel(*args)`` over ``work_items`` (rounded up; kernels check their bound),
    through :func:`enqueue`."""
    if work_items == 0:
        return
    global_size = launch_size(work_items, local_size or LAUNCH_ALIGN)
    local = None if local_size is None else (local_size,)
    enqueue(device, kernel, (global_size,), local, args, about)


def set_args(kernel: cl.Kernel, buffers: tuple[Any, ...], values: tuple[Any, ...]) -> None:
    """Set arguments on a kernel object only its caller launches (a replay's own), as flat
    (index, argument, ...) tuples of buffers and by-value arguments (see
    :func:`enqueue_prepared`); not locked, as nobody else sets them."""
    setter: Any = kernel
    if buffers:
        setter._set_arg_multi(buffers)
    if values:
        setter._set_arg_buf_multi(values)


def enqueue_set(
    queue: cl.CommandQueue, kernel: cl.Kernel, global_size: Size, local_size: Size | None
) -> None:
    """Enqueue ``kernel`` with the arguments :func:`set_args` left on it; not observed (a
    replay is what an observer recorded)."""
    _ENQUEUE(queue, kernel, global_size, local_size, None, None, False, True)


def transfer(
    queue: cl.CommandQueue,
    dest: Any,
    source: Any,
    *,
    byte_count: int | None = None,
    src_offset: int = 0,
    dst_offset: int = 0,
    is_blocking: bool | None = None,
) -> cl.Event:
    """Copy ``source`` into ``dest`` on ``queue``: a device buffer (pooled or not) or a
    host array each, offsets in bytes; returns the copy's event. A copy with the
    host blocks unless ``is_blocking`` is False (pyopencl's default); one between
    buffers never does, and takes no ``is_blocking``."""
    kwargs: dict[str, Any] = {}
    if byte_count is not None:
        kwargs["byte_count"] = byte_count
    if src_offset:
        kwargs["src_offset"] = src_offset
    if dst_offset:
        kwargs["dst_offset"] = dst_offset
    if is_blocking is not None:
        kwargs["is_blocking"] = is_blocking
    return cl.enqueue_copy(queue, dest, source, **kwargs)


def map_to_host(
    queue: cl.CommandQueue, buffer: cl.Buffer, flags: cl.map_flags, shape: Size,
    dtype: np.dtype[Any],
) -> np.ndarray[Any, Any]:
    """``buffer`` mapped into host memory as an array of ``shape`` and ``dtype``, once every
    command before it has run (a blocking map); the array holds the mapping."""
    mapped = cl.enqueue_map_buffer(queue, buffer, flags, 0, shape, dtype, is_blocking=True)
    return cast(np.ndarray[Any, Any], mapped[0])


def marker(queue: cl.CommandQueue) -> cl.Event:
    """An event that completes when every command enqueued on ``queue`` so far has run."""
    return cl.enqueue_marker(queue)


def wait_for(queue: cl.CommandQueue, event: cl.Event) -> None:
    """Make every command enqueued on ``queue`` from now on wait until ``event`` completes
    (a user event that another thread sets, say); returns at once."""
    cl.enqueue_barrier(queue, wait_for=[event])


@contextmanager
def held(queue: cl.CommandQueue) -> Iterator[None]:
    """Hold ``queue`` shut while the block enqueues, then let it all go at once.

    What the block enqueues waits behind an unfinished user event, set when the
    block ends (raising or not). NVIDIA's OpenCL takes ~4 us a launch enqueued so
    and ~9.5 us one enqueued into a running queue (H200, issue 33). The block must
    not wait for the device: nothing it enqueued can run before it ends.
    """
    gate = cl.UserEvent(queue.context)
    wait_for(queue, gate)
    try:
        yield
    finally:
        gate.set_status(cl.command_execution_status.COMPLETE)
