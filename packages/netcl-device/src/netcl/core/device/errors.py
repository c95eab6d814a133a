"""Errors raised by the device layer."""


class DeviceError(RuntimeError):
    """A device could not be found or used as asked."""


class KernelBuildError(RuntimeError):
    """An OpenCL program failed to build; the message carries the compiler log."""
