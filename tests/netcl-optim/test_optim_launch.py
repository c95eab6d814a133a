"""netcl-optim's kernels reach the device through the tensor layer's one launch path, so a
launch observer (the JIT's capture) sees every optimizer and clipping kernel."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from optim_cases import KernelNames

from netcl.core.device import manager
from netcl.core.tensor import Parameter, from_numpy, launch
from netcl.core.tensor.launch import observing
from netcl.optim import (
    SGD,
    Adafactor,
    Adagrad,
    Adam,
    Adamax,
    AdamW,
    Lion,
    NAdam,
    Optimizer,
    RAdam,
    RMSProp,
    clip_grad_norm_,
)
from netcl.optim.functional import kernels


def test_optimizer_and_clipping_kernels_are_observed() -> None:
    device = manager.default("auto")
    params = [Parameter(from_numpy(np.ones(n, np.float32), device)) for n in (3, 5)]
    for p in params:
        p.grad = from_numpy(np.full(p.shape, 0.5, np.float32), device)
    optimizer = Adam(params, lr=0.1)
    observed = KernelNames()
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
    (SGD, {"lr": 0.1, "momentum": 0.9}), (RMSProp, {"lr": 0.1, "centered": True}),
    (Adagrad, {"lr": 0.1}), (Adamax, {"lr": 0.1}), (Lion, {"lr": 0.1}), (NAdam, {"lr": 0.1}),
    (RAdam, {"lr": 0.1}),
]
OPTIMIZER_IDS = [f"{k.__name__}{'-momentum' * (k is SGD and 'momentum' in h)}"
                 for k, h in OPTIMIZERS]


@pytest.mark.parametrize("fused", [None, False])
@pytest.mark.parametrize(("kind", "hyper"), OPTIMIZERS, ids=OPTIMIZER_IDS)
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
    observed = KernelNames()
    with observing(observed):  # what a capture installs: its replays re-read the scalars
        optimizer.step()
    assert _CountedLive.made > 0
    assert observed.names


def _path_to_enqueue(run: Callable[[], None], monkeypatch: pytest.MonkeyPatch,
                     ) -> list[traceback.FrameSummary]:
    """The call stack at the first kernel enqueue ``run`` makes, from ``run``'s callee down to
    ``launch.enqueue_prepared`` (the one place that hands a kernel to pyopencl)."""
    stacks: list[list[traceback.FrameSummary]] = []
    enqueue_prepared = launch.enqueue_prepared

    def recording(*args: Any, **kwargs: Any) -> None:
        stacks.append(traceback.extract_stack()[:-1])  # without this wrapper
        enqueue_prepared(*args, **kwargs)

    monkeypatch.setattr(launch, "enqueue_prepared", recording)
    run()
    assert stacks, "nothing was enqueued"
    stack = stacks[0]
    here = next(i for i, frame in enumerate(stack) if frame.name == run.__name__
                and frame.filename == __file__)
    return [*stack[here + 1:], traceback.FrameSummary(launch.__file__, 0, "enqueue_prepared")]


@pytest.mark.parametrize("kind", [Adam, AdamW])
def test_adam_step_reaches_its_kernel_going_down_in_four_files_and_six_hops(
    kind: type[Adam], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 31: Adam.step passes its group's values down, file by file, to the enqueue."""
    device = manager.default("auto")
    p = Parameter(from_numpy(np.ones(4, np.float32), device))
    p.grad = from_numpy(np.full(4, 0.5, np.float32), device)
    optimizer = kind([p], lr=0.1)

    def step() -> None:
        optimizer.step()

    path = _path_to_enqueue(step, monkeypatch)
    where = [f"{Path(f.filename).parent.name}/{Path(f.filename).name}:{f.name}" for f in path]
    assert path[0].name == "step" and Path(path[0].filename).name == "adam.py", where
    files = [f.filename for f in path]
    # Going down: a file, once left, is never come back to (no call up into a caller's
    # module, such as the base class calling into its subclass).
    visits = [name for i, name in enumerate(files) if i == 0 or files[i - 1] != name]
    assert len(visits) == len(set(visits)), where
    assert len(set(files)) <= 4, where
    assert len(path) - 1 <= 6, where  # a hop is one call


class _Reads(KernelNames):
    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    def host_read(self, what: str) -> None:
        self.reads.append(what)


@pytest.mark.parametrize(("shape", "launches"), [((6, 5), 12), ((2, 3, 4), 13), ((7,), 8)])
def test_an_adafactor_step_is_a_few_launches_a_parameter_and_reads_nothing_back(
    shape: tuple[int, ...], launches: int,
) -> None:
    """A matrix (or a stack): g^2, its row and column means, two lerps, the mean of the
    rows' moments, the update, two sums of squares (four launches), the apply; a vector
    (unfactored) has one lerp and no means. Was 34 tensor ops a matrix. (The count of a
    reduction's launches is netcl-tensor's: a stack's column means take two today.)"""
    device = manager.default("auto")
    p = Parameter(from_numpy(np.ones(shape, np.float32), device))
    p.grad = from_numpy(np.full(shape, 0.5, np.float32), device)
    optimizer = Adafactor([p], lr=0.1, weight_decay=0.1, maximize=True)
    optimizer.step()
    observed = _Reads()
    with observing(observed):
        optimizer.step()
    assert len(observed.names) <= launches, observed.names
    assert observed.names.count("adafactor_apply") == 1
    assert observed.reads == []
