"""NCCL on memory that OpenCL and CUDA share: the collective engine PyTorch's DDP runs on.

OpenCL has no collectives across GPUs, and NCCL speaks only CUDA. NVIDIA's OpenCL
driver bridges the two with ``cl_khr_external_memory_opaque_fd``: memory that the
CUDA driver allocates exportably (``cuMemCreate`` with a POSIX file-descriptor
handle) is imported as an OpenCL buffer, so a netcl kernel and an NCCL collective
work on the same bytes, with no copy and no trip through the host.

Ordering between the two APIs, without the host's main thread ever waiting
(:class:`CollectiveThread`): a collective starts on NCCL's stream once an OpenCL
marker event says its input is written, and OpenCL's queue waits (a barrier)
for a user event that is set once NCCL's stream is done. A helper thread does
both waits. That is coarser than external semaphores, and measured in
``tools/bench/ddp.py``.

Everything NVIDIA here is optional: ``cuda-bindings`` and the NCCL library come
with the ``netcl-distributed[nccl]`` extra, and ``unavailable()`` says why the
path cannot be used on a machine where it cannot.
"""

from __future__ import annotations

import ctypes
import glob
import os
import queue
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, cast

import pyopencl as cl

# cl_khr_external_memory and cl_khr_external_memory_opaque_fd (Khronos OpenCL registry).
_CL_EXTERNAL_MEMORY_HANDLE_OPAQUE_FD_KHR = 0x2060
_CL_DEVICE_HANDLE_LIST_KHR = 0x2051
_CL_DEVICE_HANDLE_LIST_END_KHR = 0
_EXTENSION = "cl_khr_external_memory_opaque_fd"

# nccl.h: ncclDataType_t and ncclRedOp_t values; NCCL_UNIQUE_ID_BYTES.
_NCCL_FLOAT32 = 7
_NCCL_SUM = 0
_NCCL_AVG = 4  # NCCL 2.10 and later
_UNIQUE_ID_BYTES = 128

# Any negative execution status marks a user event as failed (OpenCL's clSetUserEventStatus).
_EVENT_FAILED = -1


class _UniqueId(ctypes.Structure):
    _fields_ = [("internal", ctypes.c_char * _UNIQUE_ID_BYTES)]


def _driver() -> Any:
    from cuda.bindings import driver  # type: ignore[import-not-found, import-untyped, unused-ignore]

    return driver


def _check(result: Any, what: str) -> Any:
    """cuda-bindings return (error, value...); raise on an error, return the value(s)."""
    error, *values = result if isinstance(result, tuple) else (result,)
    if int(error) != 0:
        raise RuntimeError(f"netcl.distributed.nccl: {what} failed with CUDA error {error}")
    return values[0] if len(values) == 1 else tuple(values)


def _nccl_library() -> ctypes.CDLL:
    """libnccl.so.2: NVIDIA's wheel (nvidia-nccl-cu12/-cu13) first, then the loader's path."""
    candidates = [path for entry in sys.path for path in sorted(
        glob.glob(os.path.join(entry, "nvidia", "**", "libnccl.so*"), recursive=True))]
    for path in [*candidates, "libnccl.so.2"]:
        try:
            return ctypes.CDLL(path)
        except OSError:
            continue
    raise RuntimeError("netcl.distributed.nccl: no NCCL library (pip install "
                       "'netcl-distributed[nccl]' installs NVIDIA's)")


def unavailable(device: cl.Device) -> str | None:
    """Why the NCCL path cannot run on ``device`` (None when it can)."""
    if _EXTENSION not in device.extensions.split():
        return f"the OpenCL device {device.name!r} lacks {_EXTENSION}"
    try:
        _driver()
    except ImportError:
        return "cuda-bindings is not installed (pip install 'netcl-distributed[nccl]')"
    try:
        _nccl_library()
    except RuntimeError as error:
        return str(error)
    return None


def _opencl_library() -> ctypes.CDLL:
    """The OpenCL loader pyopencl itself uses (its wheel bundles one)."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1]
            if os.path.basename(path).startswith("libOpenCL.so"):
                return ctypes.CDLL(path)
    return ctypes.CDLL("libOpenCL.so.1")


class SharedBuffer:
    """``nbytes`` of GPU memory that CUDA allocated and OpenCL imported: ``buffer`` for
    netcl's kernels, ``pointer`` (a CUDA device address) for NCCL."""

    def __init__(self, context: cl.Context, device: cl.Device, nbytes: int) -> None:
        driver = _driver()
        cuda_device = _make_current(device)
        prop = driver.CUmemAllocationProp()
        prop.type = driver.CUmemAllocationType.CU_MEM_ALLOCATION_TYPE_PINNED
        prop.location.type = driver.CUmemLocationType.CU_MEM_LOCATION_TYPE_DEVICE
        prop.location.id = int(cuda_device)
        prop.requestedHandleTypes = (
            driver.CUmemAllocationHandleType.CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR)
        granularity = _check(driver.cuMemGetAllocationGranularity(
            prop, driver.CUmemAllocationGranularity_flags.CU_MEM_ALLOC_GRANULARITY_MINIMUM),
            "cuMemGetAllocationGranularity")
        self.nbytes = nbytes
        self._size = -(-max(nbytes, 1) // granularity) * granularity
        self._handle = _check(driver.cuMemCreate(self._size, prop, 0), "cuMemCreate")
        self._address = _check(driver.cuMemAddressReserve(self._size, 0, 0, 0),
                               "cuMemAddressReserve")
        _check(driver.cuMemMap(self._address, self._size, 0, self._handle, 0), "cuMemMap")
        access = driver.CUmemAccessDesc()
        access.location = prop.location
        access.flags = driver.CUmemAccess_flags.CU_MEM_ACCESS_FLAGS_PROT_READWRITE
        _check(driver.cuMemSetAccess(self._address, self._size, [access], 1), "cuMemSetAccess")
        fd = _check(driver.cuMemExportToShareableHandle(
            self._handle, driver.CUmemAllocationHandleType.CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR,
            0), "cuMemExportToShareableHandle")
        self.pointer = int(self._address)
        self.buffer = _import_fd(context, device, int(fd), self._size)

    def close(self) -> None:
        """Release both views of the memory (OpenCL's first)."""
        driver = _driver()
        self.buffer.release()
        _check(driver.cuMemUnmap(self._address, self._size), "cuMemUnmap")
        _check(driver.cuMemAddressFree(self._address, self._size), "cuMemAddressFree")
        _check(driver.cuMemRelease(self._handle), "cuMemRelease")


def _make_current(device: cl.Device) -> Any:
    """Make current the primary CUDA context of the CUDA device that is OpenCL's ``device``;
    returns that CUDA device."""
    driver = _driver()
    _check(driver.cuInit(0), "cuInit")
    cuda_device = _check(driver.cuDeviceGet(_cuda_ordinal(device)), "cuDeviceGet")
    context = _check(driver.cuDevicePrimaryCtxRetain(cuda_device), "cuDevicePrimaryCtxRetain")
    _check(driver.cuCtxSetCurrent(context), "cuCtxSetCurrent")
    return cuda_device


def _cuda_ordinal(device: cl.Device) -> int:
    """The CUDA device that is this OpenCL device: the one with the same PCI bus id."""
    driver = _driver()
    _check(driver.cuInit(0), "cuInit")
    count = _check(driver.cuDeviceGetCount(), "cuDeviceGetCount")
    if count == 1:
        return 0
    try:
        bus = device.pci_bus_id_nv  # cl_nv_device_attribute_query
    except (AttributeError, cl.Error) as error:
        raise RuntimeError("netcl.distributed.nccl: cannot tell which CUDA device the OpenCL "
                           f"device {device.name!r} is (no PCI bus id)") from error
    for ordinal in range(count):
        cuda_bus = _check(driver.cuDeviceGetAttribute(
            driver.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_PCI_BUS_ID, ordinal),
            "cuDeviceGetAttribute")
        if int(cuda_bus) == int(bus):
            return ordinal
    raise RuntimeError(f"netcl.distributed.nccl: no CUDA device on PCI bus {bus}")


def _import_fd(context: cl.Context, device: cl.Device, fd: int, size: int) -> cl.Buffer:
    library = _opencl_library()
    create = library.clCreateBufferWithProperties
    create.restype = ctypes.c_void_p
    create.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint64), ctypes.c_uint64,
                       ctypes.c_size_t, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int32)]
    properties = (ctypes.c_uint64 * 6)(_CL_EXTERNAL_MEMORY_HANDLE_OPAQUE_FD_KHR, fd,
                                       _CL_DEVICE_HANDLE_LIST_KHR, device.int_ptr,
                                       _CL_DEVICE_HANDLE_LIST_END_KHR, 0)
    error = ctypes.c_int32(0)
    handle = create(context.int_ptr, properties, int(cl.mem_flags.READ_WRITE), size, None,
                    ctypes.byref(error))
    if error.value != 0 or not handle:
        raise RuntimeError(
            f"netcl.distributed.nccl: importing CUDA memory into OpenCL failed "
            f"(clCreateBufferWithProperties error {error.value})"
        )
    return cast(cl.Buffer, cl.Buffer.from_int_ptr(handle, retain=False))


class Communicator:
    """An NCCL communicator over the ranks of an MPI communicator, one GPU a rank.

    MPI bootstraps it: rank 0 makes NCCL's unique id and broadcasts it.
    """

    def __init__(self, comm: Any, device: cl.Device) -> None:
        _make_current(device)
        self._device = device
        self._nccl = _nccl_library()
        unique = _UniqueId()
        if comm.rank == 0:
            self._call("ncclGetUniqueId", ctypes.byref(unique))
        unique.internal = comm.bcast(bytes(unique.internal), root=0)
        self._comm = ctypes.c_void_p()
        self._call("ncclCommInitRank", ctypes.byref(self._comm), comm.size, unique, comm.rank)
        self._stream = _check(_driver().cuStreamCreate(0), "cuStreamCreate")
        self.rank, self.size = comm.rank, comm.size

    def allocate(self, context: cl.Context, nbytes: int) -> SharedBuffer:
        """``nbytes`` of this rank's GPU memory that both netcl and NCCL work on."""
        return SharedBuffer(context, self._device, nbytes)

    def bind_thread(self) -> None:
        """Make this communicator's CUDA context current in the calling thread."""
        _make_current(self._device)

    def _call(self, name: str, *args: Any) -> None:
        function: Callable[..., int] = getattr(self._nccl, name)
        result = function(*args)
        if result != 0:
            error = self._nccl.ncclGetErrorString
            error.restype = ctypes.c_char_p
            raise RuntimeError(f"netcl.distributed.nccl: {name} failed: "
                               f"{error(result).decode()} ({result})")

    def start_all_reduce(self, send: int, count: int, recv: int | None = None,
                         average: bool = False) -> None:
        """Enqueue, on NCCL's stream, the sum (or mean) over the ranks of ``count`` float32 at
        CUDA address ``send`` into ``recv`` (in place when None). The caller makes sure that
        the OpenCL writes it reads are done, and calls ``synchronize()`` before reading."""
        self._call("ncclAllReduce", ctypes.c_void_p(send),
                   ctypes.c_void_p(send if recv is None else recv), ctypes.c_size_t(count),
                   _NCCL_FLOAT32, _NCCL_AVG if average else _NCCL_SUM, self._comm,
                   ctypes.c_void_p(int(self._stream)))

    def start_reduce_scatter(self, base: int, count: int) -> None:
        """Enqueue, on NCCL's stream, the mean over the ranks of ``size * count`` float32 at
        CUDA address ``base``, of which this rank keeps its ``count``: in place, at
        ``base + rank * count * 4`` (NCCL's in-place form)."""
        self._call("ncclReduceScatter", ctypes.c_void_p(base),
                   ctypes.c_void_p(base + self.rank * count * 4), ctypes.c_size_t(count),
                   _NCCL_FLOAT32, _NCCL_AVG, self._comm, ctypes.c_void_p(int(self._stream)))

    def start_all_gather(self, base: int, count: int) -> None:
        """Enqueue, on NCCL's stream, every rank's ``count`` float32 at
        ``base + rank * count * 4`` gathered, in rank order, to ``base`` (in place)."""
        self._call("ncclAllGather", ctypes.c_void_p(base + self.rank * count * 4),
                   ctypes.c_void_p(base), ctypes.c_size_t(count), _NCCL_FLOAT32, self._comm,
                   ctypes.c_void_p(int(self._stream)))

    def synchronize(self) -> None:
        """Return when every collective started so far is done."""
        _check(_driver().cuStreamSynchronize(self._stream), "cuStreamSynchronize")

    def all_reduce(self, queue: cl.CommandQueue, send: int, count: int,
                   recv: int | None = None) -> None:
        """``start_all_reduce`` once ``queue``'s work is done; returns when the sum is in.

        Not once the communicator has a :func:`collective_thread` (a DDP wrapper over it
        made one): that thread starts its collectives whenever their markers complete, so
        a call from here would be started between them in an order that differs between
        ranks, and NCCL needs one order on every rank (a hang or wrong sums). Submit it
        to the thread instead (``all_reduce_after``).
        """
        queue.finish()
        self.start_all_reduce(send, count, recv)
        self.synchronize()

    def close(self) -> None:
        self._call("ncclCommDestroy", self._comm)


class Memory(Protocol):
    """Device memory a collective can work on: ``buffer`` for OpenCL, ``pointer`` for it."""

    buffer: cl.Buffer
    pointer: int


class Collectives(Protocol):
    """What :class:`CollectiveThread` drives (a :class:`Communicator`, or a stand-in)."""

    def allocate(self, context: cl.Context, nbytes: int) -> Memory: ...

    def bind_thread(self) -> None: ...

    def start_all_reduce(self, send: int, count: int, recv: int | None = None,
                         average: bool = False) -> None: ...

    def synchronize(self) -> None: ...


class ShardCollectives(Collectives, Protocol):
    """What ZeRO over NCCL drives: this rank's place, a reduce-scatter and an all-gather."""

    rank: int
    size: int

    def start_reduce_scatter(self, base: int, count: int) -> None: ...

    def start_all_gather(self, base: int, count: int) -> None: ...


@dataclass(frozen=True)
class _Start:
    ready: cl.Event
    start: Callable[[], None]


class CollectiveThread:
    """Starts a communicator's collectives from a helper thread, so the main thread only enqueues.

    Without it the main thread blocks twice a step: for OpenCL to finish a bucket
    before NCCL may read it, and for NCCL's stream before OpenCL may read the
    result, so the optimizer's launches are only enqueued after the averages are
    in and the device idles meanwhile. Here the thread waits for each
    ``ready`` marker and starts the all-reduce; ``done()`` gives a user event
    that the thread completes once NCCL's stream has finished everything started
    before it, and that an OpenCL queue can wait on (``launch.wait_for``).

    Work runs in submission order, and every rank submits in the same order
    (NCCL needs the ranks to start their collectives in one order). After a
    failure (NCCL's, or a marker's) nothing more is started, ``done()`` events
    still complete (so that the queue cannot hang), and ``raise_if_failed()``
    raises it on the main thread: at the next forward or backward, so the step
    already queued ran on gradients that were not averaged. (An error status on
    the user event would stop that step, but PoCL 3 aborts the process on one.)
    """

    def __init__(self, communicator: Collectives) -> None:
        """Prefer :func:`collective_thread`, which gives a communicator one thread."""
        self._communicator = communicator
        self._work: queue.SimpleQueue[_Start | cl.UserEvent] = queue.SimpleQueue()
        self._failures: list[BaseException] = []
        # A daemon that lives as long as the process: a communicator is used to the end.
        self._thread = threading.Thread(target=_serve,
                                        args=(communicator, self._work, self._failures),
                                        name="netcl-collectives", daemon=True)
        self._thread.start()

    def all_reduce_after(self, ready: cl.Event, pointer: int, count: int) -> None:
        """Average ``count`` float32 at ``pointer`` over the ranks, in place, once ``ready``
        completes (the queue it was enqueued on must be flushed)."""
        self.start_after(ready, partial(self._communicator.start_all_reduce, pointer, count,
                                        average=True))

    def start_after(self, ready: cl.Event, start: Callable[[], None]) -> None:
        """Call ``start`` (which enqueues a collective on the communicator's stream) from
        the thread once ``ready`` completes (the queue it was enqueued on must be flushed)."""
        self._work.put(_Start(ready, start))

    def done(self, context: cl.Context) -> cl.UserEvent:
        """A user event completed once every collective submitted so far has finished."""
        event = cl.UserEvent(context)
        self._work.put(event)
        return event

    def raise_if_failed(self) -> None:
        if self._failures:
            raise RuntimeError(
                "netcl.distributed: a collective failed; the gradients of that step were not "
                "averaged, and no further collectives will run on this communicator: make a "
                "new world (communicator) and wrap the model again to go on"
            ) from self._failures[0]


# A communicator's one thread, by the communicator's id: that thread holds the communicator,
# so the id is never reused while the entry exists.
_threads: dict[int, CollectiveThread] = {}
_threads_lock = threading.Lock()


def collective_thread(communicator: Collectives) -> CollectiveThread:
    """The thread that starts ``communicator``'s collectives, made on first use and kept.

    One per communicator, whoever asks (two DDP wrappers of a GAN's two models over the
    world's communicator): NCCL needs every rank to start a communicator's collectives in
    the same order, which two threads racing to start them would not keep.
    """
    with _threads_lock:
        thread = _threads.get(id(communicator))
        if thread is None:
            thread = _threads[id(communicator)] = CollectiveThread(communicator)
        return thread


def _serve(communicator: Collectives,
           work: queue.SimpleQueue[_Start | cl.UserEvent],
           failures: list[BaseException]) -> None:
    try:
        communicator.bind_thread()
    except Exception as error:  # every done() event then reports it
        failures.append(error)
    while True:
        item = work.get()
        # Nothing may end this thread: every later done() event would then never complete,
        # and the queue waiting on it would hang with no error recorded.
        try:
            if isinstance(item, cl.UserEvent):
                _complete(communicator, item, failures)
            elif not failures:
                item.ready.wait()
                item.start()
        except Exception as error:
            failures.append(error)


def _complete(communicator: Collectives, event: cl.UserEvent,
              failures: list[BaseException]) -> None:
    if not failures:
        try:
            communicator.synchronize()
        except Exception as error:
            failures.append(error)
    try:
        event.set_status(cl.command_execution_status.COMPLETE)
    except Exception as error:
        failures.append(error)
        # A negative status fails the commands that wait on it, rather than leaving them
        # waiting for ever (where the event can still take one).
        event.set_status(_EVENT_FAILED)
