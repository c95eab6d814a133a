"""Where a training step's device time goes: each kernel's share, from OpenCL profiling events.

The step runs on a device whose queue has profiling enabled; every launch's event is
kept, and after a few steps the kernels' summed device times are printed, top first
(name, launches per step, ms per step, share), through tools/bench/harness.py's table
(``--json``: one JSON line too). Models: the two-conv CNN of issue 30
(1->32->64 channels, 3x3, max-pool, Linear; 28x28 images, batch 64, Adam).

    POCL_MAX_PTHREAD_COUNT=2 python tools/bench/kernel_profile.py --model cnn --steps 5
"""

from __future__ import annotations

import argparse
import collections
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyopencl as cl
from harness import Report, add_json_flag

import netcl.autograd as ag
from netcl.core.device import Device, manager
from netcl.core.tensor import from_numpy, launch, manual_seed
from netcl.nn import Conv2d, Flatten, Linear, MaxPool2d, Module, ReLU, Sequential, cross_entropy
from netcl.optim import Adam


def two_conv_cnn(device: Device) -> Module:
    """Conv(1, 32, 3) ReLU MaxPool(2) Conv(32, 64, 3) ReLU MaxPool(2) Flatten Linear(64*5*5, 10)."""
    return Sequential(Conv2d(device, 1, 32, 3), ReLU(), MaxPool2d(2),
                      Conv2d(device, 32, 64, 3), ReLU(), MaxPool2d(2), Flatten(),
                      Linear(device, 64 * 5 * 5, 10))


def cnn_step(device: Device, batch: int = 64) -> Callable[[], None]:
    manual_seed(0)
    model = two_conv_cnn(device)
    optimizer = Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    x = from_numpy(rng.standard_normal((batch, 1, 28, 28)).astype(np.float32), device)
    y = from_numpy(rng.integers(0, 10, batch), device)

    def step() -> None:
        with ag.Tape() as tape:
            loss = cross_entropy(model(x), y)
        tape.backward(loss)
        optimizer.step()
        optimizer.zero_grad()

    return step


MODELS: dict[str, Callable[[Device], Callable[[], None]]] = {"cnn": cnn_step}


def profile(step: Callable[[], None], device: Device, steps: int) -> list[tuple[str, int, float]]:
    """(kernel name, launches, summed device seconds) over ``steps`` calls, largest first."""
    events: list[tuple[str, Any]] = []
    plain = launch._ENQUEUE

    def recording(queue: Any, kernel: Any, *rest: Any) -> Any:
        event = plain(queue, kernel, *rest)
        events.append((kernel.function_name, event))
        return event

    launch._ENQUEUE = recording
    try:
        for _ in range(steps):
            step()
        device.synchronize()
    finally:
        launch._ENQUEUE = plain
    totals: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0])
    for name, event in events:
        totals[name][0] += 1
        totals[name][1] += (event.profile.end - event.profile.start) * 1e-9
    rows = [(name, int(n), t) for name, (n, t) in totals.items()]
    return sorted(rows, key=lambda row: -row[2])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--model", choices=tuple(MODELS), default="cnn")
    parser.add_argument("--steps", type=int, default=5)
    add_json_flag(parser)
    args = parser.parse_args(argv)
    plain = manager.default(args.device)
    queue = cl.CommandQueue(plain.context, properties=cl.command_queue_properties.PROFILING_ENABLE)
    device = manager.for_queue(queue)
    step = MODELS[args.model](device)
    for _ in range(3):  # builds, pool, plans
        step()
    device.synchronize()
    rows = profile(step, device, args.steps)
    total = sum(t for _, _, t in rows)
    report = Report("kernel profile", device.name, args.json, model=args.model, steps=args.steps,
                    kernel_ms_per_step=round(total / args.steps * 1e3, 3))
    table = report.table("each kernel's device time, largest first",
                         ["launches / step", "ms / step", "share of the step's kernel time"])
    for name, n, t in rows:
        table.row(name, {"launches / step": n / args.steps, "ms / step": t / args.steps * 1e3,
                         "share of the step's kernel time": t / total})
    report.finish()


if __name__ == "__main__":
    main()
