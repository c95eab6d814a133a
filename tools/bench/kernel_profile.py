"""Where a training step's device time goes: each kernel's share, from OpenCL profiling events.

The step runs on a device whose queue has profiling enabled; every launch's event is
kept, and after a few steps the kernels' summed device times are printed, top first
(name, launches per step, ms per step, share), through tools/bench/harness.py's table
(``--json``: one JSON line too). Models: train_step.py's digits CNN (issue 30's
two-conv CNN), small ResNet and tiny GPT, and its GPU rows' GPT (gpt6) and ResNet-18.
Under load from other processes a kernel's event span includes time its threads were
descheduled: compare shares within a run, not times across runs.

    POCL_MAX_PTHREAD_COUNT=2 python tools/bench/kernel_profile.py --model cnn --steps 5
    POCL_MAX_PTHREAD_COUNT=1 python tools/bench/kernel_profile.py --model resnet --jit
    NETCL_DEVICE=gpu python tools/bench/kernel_profile.py --device gpu --model resnet18 --jit \
        --by-size   # each kernel split by its launch's global and local sizes
"""

from __future__ import annotations

import argparse
import collections
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyopencl as cl
from harness import Report, add_json_flag
from train_step import (
    DigitsCNN,
    ResNet18,
    SmallResNet,
    Spec,
    TinyGPT,
    adam_step,
    netcl_optimizer,
)

from netcl.core.device import Device, manager
from netcl.core.tensor import from_numpy, launch, manual_seed
from netcl.jit import jit


def model_step(spec: Spec, device: Device, jitted: bool = False,
               tiles: Path | None = None) -> Callable[[], None]:
    """One training step of a train_step.py model on its data, with its optimizer: eager,
    or replayed by ``netcl.jit.jit`` (its fused kernels are then what the profile sees);
    ``tiles``: with matmul_tune.py's rows from that JSON file in front of MEASURED."""
    manual_seed(0)
    model = spec.netcl_model(device)
    optimizer = netcl_optimizer(spec, model)
    x_host, y_host = spec.data()
    step = adam_step(model, optimizer, from_numpy(x_host, device), from_numpy(y_host, device))
    step = jit(step) if jitted else step
    if tiles is None:
        return step
    from tile_rows import TileRows  # tools/bench/tile_rows.py

    return TileRows.read(tiles).wrap(step, device)


# The models of train_step.py's tables, by a short name.
MODELS: dict[str, Spec] = {"cnn": DigitsCNN((32, 64), 64), "resnet": SmallResNet(16, 64),
                           "gpt": TinyGPT(2, 64, 4, 32, 65, 32),
                           "gpt6": TinyGPT(6, 512, 8, 256, 65, 32), "resnet18": ResNet18(128)}


def profile(step: Callable[[], None], device: Device, steps: int,
            by_size: bool = False) -> list[tuple[str, int, float]]:
    """(kernel name, launches, summed device seconds) over ``steps`` calls, largest first;
    ``by_size``: a row per kernel and launch size (global / local), which tells apart the
    shapes one kernel runs at."""
    events: list[tuple[str, Any]] = []
    plain = launch._ENQUEUE

    def recording(queue: Any, kernel: Any, global_size: Any, local_size: Any,
                  *rest: Any) -> Any:
        event = plain(queue, kernel, global_size, local_size, *rest)
        name = kernel.function_name
        if by_size:
            name += f" {tuple(global_size)} / {tuple(local_size or ())}"
        events.append((name, event))
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
    parser.add_argument("--jit", action="store_true", help="profile the jitted step's replays")
    parser.add_argument("--by-size", action="store_true",
                        help="a row per kernel and launch size (global / local)")
    parser.add_argument("--tiles", type=Path,
                        help="matmul tile rows (JSON from matmul_tune.py --rows-out) in front "
                        "of matmul_tiles.MEASURED")
    add_json_flag(parser)
    args = parser.parse_args(argv)
    plain = manager.default(args.device)
    queue = cl.CommandQueue(plain.context, properties=cl.command_queue_properties.PROFILING_ENABLE)
    device = manager.for_queue(queue)
    step = model_step(MODELS[args.model], device, args.jit, args.tiles)
    for _ in range(3):  # builds, pool, plans
        step()
    device.synchronize()
    rows = profile(step, device, args.steps, args.by_size)
    total = sum(t for _, _, t in rows)
    report = Report("kernel profile", device.name, args.json, model=args.model, jit=args.jit,
                    steps=args.steps, tiles=args.tiles and str(args.tiles),
                    kernel_ms_per_step=round(total / args.steps * 1e3, 3))
    table = report.table("each kernel's device time, largest first",
                         ["launches / step", "ms / step", "share of the step's kernel time"])
    for name, n, t in rows:
        table.row(name, {"launches / step": n / args.steps, "ms / step": t / args.steps * 1e3,
                         "share of the step's kernel time": t / total})
    report.finish()


if __name__ == "__main__":
    main()
