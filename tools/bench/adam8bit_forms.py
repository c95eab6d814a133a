"""8-bit Adam's kernel forms against netcl's fp32 Adam, in one run: which form to keep.

Issue 35 asks the 8-bit step (20M parameters in 200 tensors) to be faster than fp32 Adam's
on the GPU, as it moves 16 bytes a parameter against 28. This times, interleaved, fp32
Adam and 8-bit Adam in each kernel form: a work-group a block with PER_ITEM elements a
work-item and BLOCKS_PER_GROUP blocks a work-group, each block's reads issued before or
while the block before it is stepped (PREFETCH) (a GPU's form; the default first), and on
a CPU also a work-item a block. Each row: ms per step, its ratio to fp32 Adam's, and
the share of a device-to-device copy's bandwidth its bytes reach. Then each step's host
cost (main-thread CPU per step), and both steps again with the queue flushed after each:
whether a step's host work overlaps the device's, or waits for it.

    NETCL_DEVICE=gpu python tools/bench/adam8bit_forms.py               # the issue's case
    python tools/bench/adam8bit_forms.py --params 200000 --rounds 3     # a PoCL dry run
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable

import numpy as np
from harness import Contender, Report, add_json_flag, host_cost, time_contenders
from optim_step import BYTES_PER_PARAM, copy_bandwidth

from netcl.core.device import Device, manager
from netcl.core.tensor import Parameter, from_numpy
from netcl.optim import Adam, Adam8bit
from netcl.optim.optimizer import Optimizer

adam8bit = importlib.import_module("netcl.optim.functional.adam8bit")  # not the function

Form = tuple[str, int, int, bool]  # (BLOCK_STEPPER, PER_ITEM, BLOCKS_PER_GROUP, PREFETCH)


def forms(device: Device) -> list[Form]:
    default = ("work-group", adam8bit.PER_ITEM, adam8bit.BLOCKS_PER_GROUP, adam8bit.PREFETCH)
    grid = [("work-group", p, b, False) for p in (1, 2, 4) for b in (2, 8, 32)]
    # Reading ahead matters where a group steps several blocks.
    grid += [("work-group", p, b, True) for p in (1, 2, 4) for b in (8, 32)]
    cpu = [("work-item", 1, 1, False)] if device.type == "cpu" else []
    return [default, *cpu, *(f for f in grid if f != default)]


def form_label(form: Form) -> str:
    stepper, per_item, blocks_per_group, prefetch = form
    return f"8-bit {stepper}" + (f", {per_item} a work-item, {blocks_per_group} blocks a group"
                                 + (", read ahead" if prefetch else "")
                                 if stepper == "work-group" else "")


def stepping(optimizer: Optimizer, form: Form | None, flush: Callable[[], None] | None
             ) -> Callable[[], None]:
    """One step of ``optimizer`` in kernel ``form`` (set before each step: the contenders
    alternate), then ``flush`` if given."""
    def step() -> None:
        if form is not None:
            (adam8bit.BLOCK_STEPPER, adam8bit.PER_ITEM, adam8bit.BLOCKS_PER_GROUP,
             adam8bit.PREFETCH) = form
        optimizer.step()
        if flush is not None:
            flush()
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=int, default=20_000_000)
    parser.add_argument("--tensors", type=int, default=200)
    parser.add_argument("--steps", type=int, default=20, help="steps a sample")
    parser.add_argument("--rounds", type=int, default=5)
    add_json_flag(parser)
    args = parser.parse_args()
    device = manager.default("auto")
    report = Report("8-bit Adam kernel forms", f"{device.name} ({device.type})", args.json,
                    params=args.params, tensors=args.tensors)
    copy_rate = copy_bandwidth(device, args.params, args.steps, args.rounds)
    report.note("device-to-device copy GB/s (read + written)", round(copy_rate / 1e9))
    rng = np.random.default_rng(0)
    size = args.params // args.tensors

    def optimizer(kind: type[Optimizer]) -> Optimizer:
        params = []
        for _ in range(args.tensors):
            p = Parameter(from_numpy(rng.standard_normal(size, dtype=np.float32), device))
            p.grad = from_numpy(rng.standard_normal(size, dtype=np.float32) * 1e-2, device)
            params.append(p)
        return kind(params, lr=1e-3)

    fp32 = optimizer(Adam)
    eight_bit = {form: optimizer(Adam8bit) for form in forms(device)}
    contenders: dict[str, Contender] = {"fp32 Adam": (stepping(fp32, None, None),
                                                       device.synchronize)}
    for form, stepped in eight_bit.items():
        contenders[form_label(form)] = (stepping(stepped, form, None), device.synchronize)
    times = time_contenders(contenders, rounds=args.rounds, calls=args.steps)
    base = times["fp32 Adam"].median
    table = report.table(f"ms per step, {args.tensors} tensors", ["ms", "/ fp32 Adam", "% copy"])
    count = size * args.tensors
    for label, timing in times.items():
        moved = BYTES_PER_PARAM["adam" if label == "fp32 Adam" else "adam8bit"] * count
        table.row(label, {"ms": timing.median * 1e3, "/ fp32 Adam": timing.median / base,
                          "% copy": 100 * moved / timing.median / copy_rate})

    default = next(iter(eight_bit))  # the GPU's form (forms() puts it first), same optimizer
    flushed = {
        "fp32 Adam": stepping(fp32, None, device.queue.flush),
        form_label(default): stepping(eight_bit[default], default, device.queue.flush),
    }
    plain = {name: contenders[name][0] for name in flushed}
    again = time_contenders({**{k: (v, device.synchronize) for k, v in plain.items()},
                             **{f"{k}, flushed": (v, device.synchronize)
                                for k, v in flushed.items()}},
                            rounds=args.rounds, calls=args.steps)
    overlap = report.table("host and device", ["ms", "ms flushed", "host CPU ms"])
    for label, step in plain.items():
        overlap.row(label, {"ms": again[label].median * 1e3,
                            "ms flushed": again[f"{label}, flushed"].median * 1e3,
                            "host CPU ms": host_cost((step, device.synchronize),
                                                     args.steps, args.rounds) * 1e3})
    report.finish()


if __name__ == "__main__":
    main()
