"""What ``comm_hooks.bf16_compress_hook`` must produce, computed in float64 on the host."""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np


def reference(each_rank: list[np.ndarray[Any, Any]]) -> np.ndarray[Any, Any]:
    """Each rank's float32 gradient rounded to bfloat16, summed in rank order in float32,
    times float32(1 / K): computed in float64 with a rounding to float32 after each
    operation. That equals float32 arithmetic exactly: the sum or product of two float32
    values rounded first to float64 (53 bits) and then to float32 (24) gives the correctly
    rounded float32 result, since 53 >= 2 * 24 + 2 (S. A. Figueroa, "When is double
    rounding innocuous?", SIGNUM Newsletter 30(3), 1995)."""
    def f32(v: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        return v.astype(np.float32).astype(np.float64)

    rounded = [g.astype(ml_dtypes.bfloat16).astype(np.float64) for g in each_rank]
    total = rounded[0]
    for g in rounded[1:]:
        total = f32(total + g)
    return f32(total * float(np.float32(1.0 / len(each_rank)))).astype(np.float32)
