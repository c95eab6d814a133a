"""The dtypes netcl tensors hold, their OpenCL spellings and promotion rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeAlias

import ml_dtypes
import numpy as np

DTypeLike: TypeAlias = "np.dtype[Any] | type[Any] | str"

float32 = np.dtype(np.float32)
float16 = np.dtype(np.float16)
# The numpy dtype JAX uses; numpy gives it kind "V", so is_floating asks FLOATING.
bfloat16 = np.dtype(ml_dtypes.bfloat16)
int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)
bool_ = np.dtype(np.bool_)
# Storage for 8-bit codes (an optimizer's quantised state); arithmetic on it is int.
uint8 = np.dtype(np.uint8)

SUPPORTED = (float32, float16, bfloat16, int32, int64, bool_, uint8)
FLOATING = (float32, float16, bfloat16)
# Stored in 16 bits, computed in float32, rounded to nearest even on store.
LOW_PRECISION = (float16, bfloat16)

# The C type a buffer of each dtype holds. fp16 is stored as `half` and only
# ever read and written through vload_half/vstore_half, which OpenCL offers
# without the cl_khr_fp16 extension (NVIDIA's driver does not expose it);
# bf16 as the upper half of a float's bits, through bfloat16.cl.
STORAGE_C_TYPE = {float32: "float", float16: "half", bfloat16: "ushort", int32: "int",
                  int64: "long", bool_: "uchar", uint8: "uchar"}
# The C type arithmetic on a dtype is done in.
COMPUTE_C_TYPE = {float32: "float", float16: "float", bfloat16: "float", int32: "int",
                  int64: "long", bool_: "int", uint8: "int"}

# bf16's load and round-to-nearest-even store, to put before any kernel source that
# reads or writes through cl_load/cl_store (KernelCache.kernel takes a tuple of files).
BFLOAT16_CL = Path(__file__).with_name("bfloat16.cl")


def as_dtype(dtype: DTypeLike) -> np.dtype[Any]:
    """A supported numpy dtype, or a TypeError naming what is supported."""
    resolved = np.dtype(dtype)
    if resolved not in SUPPORTED:
        names = ", ".join(str(d) for d in SUPPORTED)
        raise TypeError(f"netcl does not support dtype {resolved}; supported: {names}")
    return resolved


def is_floating(dtype: np.dtype[Any]) -> bool:
    return dtype in FLOATING


def promote(a: np.dtype[Any], b: np.dtype[Any]) -> np.dtype[Any]:
    """The result dtype of a binary op between two tensors, as PyTorch promotes
    (bf16 with fp16 is fp32: neither holds the other)."""
    if a == b:
        return a
    if is_floating(a) != is_floating(b):
        # An integer never widens a float (numpy would make int32 + float32 float64).
        return a if is_floating(a) else b
    return as_dtype(np.promote_types(a, b))


def promote_with_scalar(dtype: np.dtype[Any], scalar: float | int | bool) -> np.dtype[Any]:
    """A Python scalar never widens a tensor's kind-matched dtype (bf16 * 0.5 stays bf16)."""
    if isinstance(scalar, float) and not is_floating(dtype):
        return float32
    if isinstance(scalar, int) and not isinstance(scalar, bool) and dtype == bool_:
        return int64
    return dtype


def cl_load(dtype: np.dtype[Any], pointer: str, index: str) -> str:
    """The OpenCL expression reading element ``index`` of ``pointer`` (16-bit floats as float)."""
    if dtype == float16:
        return f"vload_half({index}, {pointer})"
    if dtype == bfloat16:
        return f"bf16_load({index}, {pointer})"
    return f"({pointer})[{index}]"


def cl_store(dtype: np.dtype[Any], pointer: str, index: str, value: str) -> str:
    """The OpenCL expression writing ``value`` to element ``index`` of ``pointer``,
    rounded to nearest even for a 16-bit float."""
    if dtype == float16:
        return f"vstore_half((float)({value}), {index}, {pointer})"
    if dtype == bfloat16:
        return f"bf16_store((float)({value}), {index}, {pointer})"
    if dtype == bool_:
        return f"(({pointer})[{index}] = (uchar)(({value}) != 0))"
    return f"(({pointer})[{index}] = ({STORAGE_C_TYPE[dtype]})({value}))"
