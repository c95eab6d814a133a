"""netcl.core.device: OpenCL devices, their queues, buffer pools and kernel caches."""

from netcl.core.device._version import __version__
from netcl.core.device.device import Device, DeviceInfo
from netcl.core.device.errors import DeviceError, KernelBuildError
from netcl.core.device.kernels import KernelCache
from netcl.core.device.manager import DeviceManager, manager
from netcl.core.device.pool import BufferPool, PoolStats

__all__ = [
    "BufferPool",
    "Device",
    "DeviceError",
    "DeviceInfo",
    "DeviceManager",
    "KernelBuildError",
    "KernelCache",
    "PoolStats",
    "__version__",
    "manager",
]
