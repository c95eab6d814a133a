"""Device: one OpenCL device with its context, queue, pool and kernels."""

from __future__ import annotations

from dataclasses import dataclass

import pyopencl as cl

from netcl.core.device.kernels import KernelCache
from netcl.core.device.pool import BufferPool


@dataclass(frozen=True)
class DeviceInfo:
    """What a device listing shows; ``spec`` is what ``manager.default`` accepts."""

    spec: str
    name: str
    type: str
    platform: str
    global_mem_bytes: int
    compute_units: int
    compute_capability: tuple[int, int] | None = None  # NVIDIA's, where reported

    def __str__(self) -> str:
        gib = self.global_mem_bytes / 2**30
        return (
            f"{self.spec:>5}  {self.type:<5} {self.name} ({self.platform}), "
            f"{self.compute_units} compute units, {gib:.1f} GiB"
        )


def compute_capability(device: cl.Device) -> tuple[int, int] | None:
    """An NVIDIA device's compute capability, read through the
    cl_nv_device_attribute_query extension; None for a device without it."""
    if "cl_nv_device_attribute_query" not in str(device.extensions).split():
        return None
    return int(device.compute_capability_major_nv), int(device.compute_capability_minor_nv)


def device_type_name(device: cl.Device) -> str:
    """'gpu', 'cpu' or 'accelerator', as the user writes it."""
    if device.type & cl.device_type.GPU:
        return "gpu"
    if device.type & cl.device_type.CPU:
        return "cpu"
    return "accelerator"


class Device:
    """An OpenCL device ready for netcl: context, in-order queue, BufferPool, KernelCache.

    Every netcl op on this device is enqueued on ``queue``; that single in-order
    queue is what makes buffer reuse and asynchronous dispatch safe.
    """

    def __init__(
        self, cl_device: cl.Device, spec: str, queue: cl.CommandQueue | None = None
    ) -> None:
        self.cl_device = cl_device
        self.spec = spec
        if queue is None:
            self.context = cl.Context([cl_device])
            self.queue = cl.CommandQueue(self.context)
        else:
            if queue.properties & cl.command_queue_properties.OUT_OF_ORDER_EXEC_MODE_ENABLE:
                raise ValueError("netcl needs an in-order queue; got an out-of-order one")
            self.context = queue.context
            self.queue = queue
        self.pool = BufferPool(self.context)
        self.kernels = KernelCache(self.context)
        self._profiling_queue: cl.CommandQueue | None = None

    @property
    def name(self) -> str:
        return str(self.cl_device.name).strip()

    @property
    def type(self) -> str:
        return device_type_name(self.cl_device)

    @property
    def compute_units(self) -> int:
        return int(self.cl_device.max_compute_units)

    @property
    def max_work_group_size(self) -> int:
        return int(self.cl_device.max_work_group_size)

    def profiling_queue(self) -> cl.CommandQueue:
        """A second in-order queue with profiling events, for benchmarks."""
        if self._profiling_queue is None:
            self._profiling_queue = cl.CommandQueue(
                self.context, properties=cl.command_queue_properties.PROFILING_ENABLE
            )
        return self._profiling_queue

    def synchronize(self) -> None:
        """Wait until everything enqueued on this device has run."""
        self.queue.finish()

    def info(self) -> DeviceInfo:
        return DeviceInfo(
            spec=self.spec,
            name=self.name,
            type=self.type,
            platform=str(self.cl_device.platform.name).strip(),
            global_mem_bytes=int(self.cl_device.global_mem_size),
            compute_units=self.compute_units,
        )

    def __repr__(self) -> str:
        return f"Device({self.spec!r}, {self.type}, {self.name!r})"
