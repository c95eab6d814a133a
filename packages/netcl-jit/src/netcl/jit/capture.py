"""Capture: the launch observer installed while a jitted function runs eagerly once.

It keeps every launch in order, with the host work that must repeat on each
replay, and refuses what a replay could not repeat: reading a tensor back
(its value would steer Python only at capture), uploading host data (it
would be baked in), or launches on more than one device.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Sequence
from typing import Any

import pyopencl as cl
import pyopencl.array as cl_array

from netcl.core.device import Device
from netcl.core.tensor import Tensor
from netcl.core.tensor.launch_info import ElementwiseLaunch, ReductionLaunch
from netcl.jit.program import Launch


class CaptureError(RuntimeError):
    """The jitted function did something a replay cannot repeat."""


class Capture:
    """Records one call's launches and host work (see :mod:`netcl.jit.program`)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.items: list[Launch | Callable[[], None]] = []
        self.device: Device | None = None

    def launched(
        self,
        device: Device,
        kernel: cl.Kernel,
        global_size: tuple[int, ...],
        local_size: tuple[int, ...] | None,
        args: Sequence[Any],
        about: object,
    ) -> None:
        if self.device is None:
            self.device = device
        elif device is not self.device:
            raise CaptureError(
                f"jit({self.name}): launches on two devices ({self.device!r} and {device!r}); "
                "a jitted function runs on one"
            )
        self.items.append(Launch(kernel, global_size, local_size, tuple(args), _about(about)))

    def host_effect(self, effect: Callable[[], None]) -> None:
        self.items.append(effect)

    def host_read(self, what: str) -> None:
        raise CaptureError(
            f"jit({self.name}): {what} reads a tensor's value back to the host inside a jitted "
            "function; a replay would not read it again, so whatever Python did with it would "
            "be stale. Return the tensor and read it outside the function."
        )

    def host_upload(self, what: str) -> None:
        raise CaptureError(
            f"jit({self.name}): {what} copies host data to the device inside a jitted "
            "function; a replay would copy the same data again. Make the tensor outside and "
            "pass it as an argument."
        )


def held_buffers() -> set[int]:
    """The ids of every buffer a live Tensor or pyopencl Array refers to.

    Called once a capture's function has returned: a buffer not among them is
    read by nothing but the captured launches, so a store into it that no later
    launch reads can be left out.
    """
    gc.collect()
    held: set[int] = set()
    for obj in gc.get_objects():
        # type(), not isinstance: some objects (lazy modules) warn when asked __class__.
        kind = type(obj)
        if issubclass(kind, Tensor):
            held.add(id(obj.buffer))
        elif issubclass(kind, cl_array.Array):
            held.add(id(obj.base_data))
    return held


def _about(about: object) -> ElementwiseLaunch | ReductionLaunch | None:
    """What fusion can use of a launch's description (anything else it treats as opaque)."""
    return about if isinstance(about, ElementwiseLaunch | ReductionLaunch) else None
