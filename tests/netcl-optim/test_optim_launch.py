"""netcl-optim's kernels reach the device through the tensor layer's one launch path, so a
launch observer (the JIT's capture) sees every optimizer and clipping kernel."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyopencl as cl

from netcl.core.device import Device, manager
from netcl.core.tensor import Parameter, from_numpy
from netcl.core.tensor.launch import observing
from netcl.optim import Adam, clip_grad_norm_


class Names:
    def __init__(self) -> None:
        self.names: list[str] = []

    def launched(
        self, device: Device, kernel: cl.Kernel, global_size: tuple[int, ...],
        local_size: tuple[int, ...] | None, args: Sequence[Any], about: object,
    ) -> None:
        self.names.append(kernel.function_name)

    # Host reads, uploads and effects are not launches; this log keeps none.
    def host_read(self, what: str) -> None: ...

    def host_upload(self, what: str) -> None: ...

    def host_effect(self, effect: Callable[[], None]) -> None: ...


def test_optimizer_and_clipping_kernels_are_observed() -> None:
    device = manager.default("auto")
    params = [Parameter(from_numpy(np.ones(n, np.float32), device)) for n in (3, 5)]
    for p in params:
        p.grad = from_numpy(np.full(p.shape, 0.5, np.float32), device)
    optimizer = Adam(params, lr=0.1)
    observed = Names()
    with observing(observed):
        clip_grad_norm_(params, 1.0)
        optimizer.step()
    assert any("norm" in name for name in observed.names), observed.names
    assert "adam_step" in observed.names, observed.names
