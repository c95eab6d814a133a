"""A loop of ops allocates on its first pass only and gives every byte back."""

from __future__ import annotations

import numpy as np

from netcl.core.device import Device
from netcl.core.tensor import Tensor, from_numpy, ops


def step(x: Tensor, w: Tensor) -> float:
    """Ten op calls of the kinds a training step makes; only a scalar survives."""
    h = ops.relu(x * w + 1.0)  # mul, add, relu
    h = h.reshape(-1, 8).T[:, ::2]  # views: no allocation
    s = ops.logsumexp(h, 1) - ops.max(h, 1)  # logsumexp, max, sub (and a copy for the view)
    picked = ops.index_select(s[None], 1, [0, 3, 3])  # index upload, gather
    total = ops.sum(ops.cat([picked, s[None]], 1))  # cat, sum
    return float(total.item())


def test_a_thousand_op_calls_reuse_the_pool(device: Device) -> None:
    rng = np.random.default_rng(0)
    x = from_numpy(rng.standard_normal((16, 32)).astype(np.float32), device)
    w = from_numpy(rng.standard_normal((16, 32)).astype(np.float32), device)
    start = device.pool.stats()
    first = step(x, w)
    after_first = device.pool.stats()
    assert after_first.bytes_in_use == start.bytes_in_use
    assert after_first.hits + after_first.allocations > start.hits + start.allocations
    for _ in range(100):  # 100 steps of 10 op calls
        assert step(x, w) == first
    end = device.pool.stats()
    assert end.bytes_in_use == start.bytes_in_use
    assert end.allocations == after_first.allocations
    assert end.hits - after_first.hits >= 100 * 10
