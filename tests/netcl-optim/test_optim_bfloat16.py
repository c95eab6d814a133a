"""bfloat16 parameters: every optimizer steps them in float32 (state float32) through a
float32 master copy, and writes the master rounded to bfloat16, on the CPU's and the GPU's
kernel layouts.

The reference is the same steps in float64 from the same bf16 values, rounded to bf16 by
ml_dtypes once, at the end (the parameter is the rounded master): the kernel's float32
arithmetic differs from it by a few float32 ulps, which moves the rounded result by at
most one bf16 unit, and only where the float64 result lies that close to a rounding
boundary. (test_master_weights.py has the case where the master is what moves a parameter.)
"""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
import pytest

from netcl.core.tensor import Parameter, bfloat16, from_numpy
from netcl.optim import Adam, AdamW, Momentum, RMSProp

BF16 = np.dtype(ml_dtypes.bfloat16)
UNIT = 2.0**-7


def adam_reference(p: Any, g: Any, lr: float, steps: int) -> Any:
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t in range(1, steps + 1):
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        update = lr / (1 - 0.9**t) * m / (np.sqrt(v) / np.sqrt(1 - 0.999**t) + 1e-8)
        p = p - update
    return p.astype(BF16).astype(np.float64)


@pytest.mark.usefixtures("layout")
def test_adam_steps_bfloat16_parameters_through_float32_masters() -> None:
    rng = np.random.default_rng(5)
    start = rng.standard_normal(1003).astype(BF16)  # odd: vector body and scalar tail
    grad = rng.standard_normal(1003).astype(BF16)
    w = Parameter(from_numpy(start))
    optimizer = Adam([w], lr=0.01)
    for _ in range(3):
        w.grad = from_numpy(grad)
        optimizer.step()
    assert w.dtype == bfloat16
    state = optimizer.state_dict()["state"][0]
    assert state["exp_avg"].dtype == np.float32
    got = w.numpy().astype(np.float64)
    want = adam_reference(start.astype(np.float64), grad.astype(np.float64), 0.01, 3)
    off = np.abs(got - want)
    assert (off <= UNIT * np.abs(want)).all()  # a unit at most
    assert np.mean(off == 0) > 0.95  # and almost everywhere exact


@pytest.mark.parametrize("make", [lambda ps: Momentum(ps, lr=0.1, momentum=0.9),
                                  lambda ps: AdamW(ps, lr=0.01),
                                  lambda ps: RMSProp(ps, lr=0.01)],
                         ids=["momentum", "adamw", "rmsprop"])
def test_every_optimizer_takes_bfloat16(make: Any) -> None:
    start = np.linspace(-2, 2, 37).astype(BF16)
    w = Parameter(from_numpy(start))
    optimizer = make([w])
    w.grad = from_numpy(np.ones(37, BF16))
    optimizer.step()
    moved = w.numpy().astype(np.float32)
    assert w.dtype == bfloat16 and (moved < start.astype(np.float32)).all()
