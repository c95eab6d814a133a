"""DeviceManager: finds OpenCL devices and hands out one Device per device."""

from __future__ import annotations

import os

import pyopencl as cl

from netcl.core.device.device import Device, DeviceInfo, compute_capability, device_type_name
from netcl.core.device.errors import DeviceError

ENV_VAR = "NETCL_DEVICE"
_KINDS = ("auto", "gpu", "cpu")


class DeviceManager:
    """Chooses devices by kind ("auto", "gpu", "cpu") or by "PLATFORM:DEVICE" index.

    ``default(kind)`` returns the same ``Device`` for the same OpenCL device on
    every call, so everything built on one device shares its queue and pool.
    """

    def __init__(self) -> None:
        self._devices: dict[str, Device] = {}

    def devices(self) -> list[DeviceInfo]:
        """Every OpenCL device on this machine, in platform order."""
        found: list[DeviceInfo] = []
        for spec, cl_device in self._enumerate():
            found.append(
                DeviceInfo(
                    spec=spec,
                    name=str(cl_device.name).strip(),
                    type=device_type_name(cl_device),
                    platform=str(cl_device.platform.name).strip(),
                    global_mem_bytes=int(cl_device.global_mem_size),
                    compute_units=int(cl_device.max_compute_units),
                    compute_capability=compute_capability(cl_device),
                )
            )
        return found

    def default(self, kind: str = "auto") -> Device:
        """The device for ``kind``; with "auto", ``$NETCL_DEVICE`` decides when set.

        "auto" takes the first GPU any platform offers and falls back to the
        first CPU device (PoCL on a machine without a GPU).
        """
        if kind == "auto":
            kind = os.environ.get(ENV_VAR, "").strip() or "auto"
        spec, cl_device = self._resolve(kind)
        device = self._devices.get(spec)
        if device is None:
            device = Device(cl_device, spec)
            self._devices[spec] = device
        return device

    def for_queue(self, queue: cl.CommandQueue) -> Device:
        """The Device whose queue is ``queue``; a foreign queue is adopted as a new Device.

        This is how the seed's ``Linear(q, ...)`` and another framework's own
        pyopencl queue both reach a pool and a kernel cache.
        """
        for device in self._devices.values():
            if device.queue == queue:
                return device
        device = Device(queue.device, f"queue:{len(self._devices)}", queue=queue)
        self._devices[device.spec] = device
        return device

    def _enumerate(self) -> list[tuple[str, cl.Device]]:
        try:
            platforms = cl.get_platforms()
        except cl.Error:
            # pyopencl raises when the ICD loader finds no platform at all.
            platforms = []
        return [
            (f"{p}:{d}", cl_device)
            for p, platform in enumerate(platforms)
            for d, cl_device in enumerate(platform.get_devices())
        ]

    def _resolve(self, kind: str) -> tuple[str, cl.Device]:
        available = self._enumerate()
        if not available:
            raise DeviceError(
                f"asked for device {kind!r} but no OpenCL platform was found; install "
                "pocl-binary-distribution (CPU) or a GPU vendor's OpenCL driver"
            )
        listing = ", ".join(
            f"{spec} {device_type_name(d)} {d.name.strip()}" for spec, d in available
        )
        if ":" in kind:
            for spec, cl_device in available:
                if spec == kind.replace(" ", ""):
                    return spec, cl_device
            raise DeviceError(f"no OpenCL device at index {kind!r}; available: {listing}")
        if kind not in _KINDS:
            raise DeviceError(
                f"unknown device kind {kind!r}; expected one of {', '.join(_KINDS)} "
                f"or 'PLATFORM:DEVICE' (available: {listing})"
            )
        wanted = ["gpu", "cpu"] if kind == "auto" else [kind]
        for type_name in wanted:
            for spec, cl_device in available:
                if device_type_name(cl_device) == type_name:
                    return spec, cl_device
        raise DeviceError(f"no OpenCL {kind} device found; available: {listing}")


manager = DeviceManager()
