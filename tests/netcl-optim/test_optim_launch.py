"""netcl-optim's kernels reach the device through the tensor layer's one launch path, so a
launch observer (the JIT's capture) sees every optimizer and clipping kernel."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyopencl as cl
import pytest

from netcl.core.device import Device, manager
from netcl.core.tensor import Parameter, from_numpy, launch
from netcl.core.tensor.launch import observing
from netcl.optim import (
    SGD,
    Adagrad,
    Adam,
    Adamax,
    AdamW,
    Lion,
    Momentum,
    NAdam,
    Optimizer,
    RAdam,
    RMSProp,
    clip_grad_norm_,
)
from netcl.optim.functional import kernels


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


class _CountedLive(launch.Live):
    made = 0

    def __init__(self, read: Callable[[], np.generic]) -> None:
        _CountedLive.made += 1
        super().__init__(read)


OPTIMIZERS: list[tuple[type[Optimizer], dict[str, Any]]] = [
    (Adam, {"lr": 0.1, "amsgrad": True}), (AdamW, {"lr": 0.1}), (SGD, {"lr": 0.1}),
    (Momentum, {"lr": 0.1, "momentum": 0.9}), (RMSProp, {"lr": 0.1, "centered": True}),
    (Adagrad, {"lr": 0.1}), (Adamax, {"lr": 0.1}), (Lion, {"lr": 0.1}), (NAdam, {"lr": 0.1}),
    (RAdam, {"lr": 0.1}),
]


@pytest.mark.parametrize("fused", [None, False])
@pytest.mark.parametrize(("kind", "hyper"), OPTIMIZERS, ids=[k.__name__ for k, _ in OPTIMIZERS])
def test_eager_steps_pass_plain_values_and_only_a_capture_makes_live_ones(
    kind: type[Optimizer], hyper: dict[str, Any], fused: bool | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    device = manager.default("auto")
    params = [Parameter(from_numpy(np.ones(n, np.float32), device)) for n in (3, 5)]
    for p in params:
        p.grad = from_numpy(np.full(p.shape, 0.5, np.float32), device)
    optimizer = kind(params, fused=fused, **hyper)
    _CountedLive.made = 0
    monkeypatch.setattr(launch, "Live", _CountedLive)
    monkeypatch.setattr(kernels, "Live", _CountedLive)
    optimizer.step()
    optimizer.step()
    assert _CountedLive.made == 0
    observed = Names()
    with observing(observed):  # what a capture installs: its replays re-read the scalars
        optimizer.step()
    assert _CountedLive.made > 0
    assert observed.names
