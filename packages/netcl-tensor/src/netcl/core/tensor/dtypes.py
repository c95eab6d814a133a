"""The dtypes netcl tensors hold, their OpenCL spellings and promotion rules."""

from __future__ import annotations

from typing import Any, TypeAlias

import numpy as np

DTypeLike: TypeAlias = "np.dtype[Any] | type[Any] | str"

float32 = np.dtype(np.float32)
float16 = np.dtype(np.float16)
int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)
bool_ = np.dtype(np.bool_)

SUPPORTED = (float32, float16, int32, int64, bool_)

# The C type a buffer of each dtype holds. fp16 is stored as `half` and only
# ever read and written through vload_half/vstore_half, which OpenCL offers
# without the cl_khr_fp16 extension (NVIDIA's driver does not expose it).
STORAGE_C_TYPE = {float32: "float", float16: "half", int32: "int", int64: "long", bool_: "uchar"}
# The C type arithmetic on a dtype is done in.
COMPUTE_C_TYPE = {float32: "float", float16: "float", int32: "int", int64: "long", bool_: "int"}


def as_dtype(dtype: DTypeLike) -> np.dtype[Any]:
    """A supported numpy dtype, or a TypeError naming what is supported."""
    resolved = np.dtype(dtype)
    if resolved not in SUPPORTED:
        names = ", ".join(str(d) for d in SUPPORTED)
        raise TypeError(f"netcl does not support dtype {resolved}; supported: {names}")
    return resolved


def is_floating(dtype: np.dtype[Any]) -> bool:
    return dtype.kind == "f"


def promote(a: np.dtype[Any], b: np.dtype[Any]) -> np.dtype[Any]:
    """The result dtype of a binary op between two tensors, as PyTorch promotes."""
    if a == b:
        return a
    if is_floating(a) != is_floating(b):
        # An integer never widens a float (numpy would make int32 + float32 float64).
        return a if is_floating(a) else b
    return as_dtype(np.promote_types(a, b))


def promote_with_scalar(dtype: np.dtype[Any], scalar: float | int | bool) -> np.dtype[Any]:
    """A Python scalar never widens a tensor's kind-matched dtype (fp16 * 0.5 stays fp16)."""
    if isinstance(scalar, float) and not is_floating(dtype):
        return float32
    if isinstance(scalar, int) and not isinstance(scalar, bool) and dtype == bool_:
        return int64
    return dtype
