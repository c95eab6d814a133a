"""``netcl devices``: every OpenCL device, with the one ``auto`` picks marked."""

from __future__ import annotations

import os

from netcl.cli.errors import UserError
from netcl.core.device import DeviceError, manager
from netcl.core.device.manager import ENV_VAR
from netcl.core.tensor.ops.gemm import kernels_for


def list_devices() -> int:
    devices = manager.devices()
    if not devices:
        raise UserError(
            "no OpenCL platform found; install pocl-binary-distribution (CPU) or a GPU "
            "vendor's OpenCL driver"
        )
    try:
        auto: str | None = manager.default("auto").spec
        why = f"{ENV_VAR}={os.environ[ENV_VAR]}" if os.environ.get(ENV_VAR, "").strip() else ""
    except DeviceError as error:  # NETCL_DEVICE names something that is not there
        auto, why = None, str(error)
    platform = None
    for info in devices:
        if info.platform != platform:
            platform = info.platform
            print(f"platform {info.spec.split(':')[0]}: {platform}")
        gib = info.global_mem_bytes / 2**30
        mark = "  <- auto" + (f" ({why})" if why else "") if info.spec == auto else ""
        print(f"  {info.spec:>5}  {info.type:<11} {info.name}  {gib:.1f} GiB, "
              f"{info.compute_units} compute units{mark}")
        print(f"         {kernels_for(info.type, info.compute_capability)}")
    if auto is None:
        print(f"auto: {why}")
    return 0
