"""The reductions of the GPT training step (train_step.py's "GPT 6": 6 layers d512 h8 ctx256
b32), each timed against torch's same reduction in the same run, under reduce.py's launch
shapes: the ones before issue 29's second pass ("before": 16 work-items a row, one row a
work-group; columns in one segment), then candidates for reduce_rows's work-group
(GROUP work-items, ROW_SERIAL elements a work-item) and reduce_cols's segment
(COLS_SEGMENT rows). The cases and their launches per step are what the step launches
(traced on PoCL, batch scaled to 32); "GPT step" weighs each case by them. With --profile,
the jitted GPT step's kernel profile under "before" and under the best candidates.

    NETCL_DEVICE=gpu python tools/bench/reduce_gpt.py --profile
    python tools/bench/reduce_gpt.py --batch 1 --rounds 2   # a dry run on the CPU
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyopencl as cl
from harness import Contender, Report, add_json_flag, no_sync, time_contenders

_ROOT = Path(__file__).resolve().parents[2]
for _src in ("packages/netcl-device/src", "packages/netcl-tensor/src"):
    if str(_ROOT / _src) not in sys.path:
        sys.path.append(str(_ROOT / _src))

import torch  # noqa: E402

from netcl.core.device import Device, manager  # noqa: E402
from netcl.core.tensor import from_numpy, ops  # noqa: E402
from netcl.core.tensor.ops import reduce  # noqa: E402


class Case(NamedTuple):
    name: str
    shape: tuple[int, ...]  # at batch 1 (the batch is the leading axis)
    axis: int | tuple[int, ...]
    op: str
    per_step: int  # launches per GPT step


CASES = [
    Case("bias grads (b,256,512) over (0,1)", (256, 512), (0, 1), "sum", 56),
    Case("LayerNorm mean (b,256,512) over 2", (256, 512), 2, "mean", 26),
    Case("LayerNorm sum (b,256,512) over 2", (256, 512), 2, "sum", 26),
    Case("FF bias grads (b,256,2048) over (0,1)", (256, 2048), (0, 1), "sum", 6),
    Case("head bias grad (b,256,65) over (0,1)", (256, 65), (0, 1), "sum", 1),
    Case("loss max (b*256,65) over 1", (256, 65), 2, "max", 1),
    Case("loss logsumexp (b*256,65) over 1", (256, 65), 2, "logsumexp", 1),
    Case("loss sum (b*256,65) over 1", (256, 65), 2, "sum", 1),
]
ROWS = [c for c in CASES if not isinstance(c.axis, tuple)]
COLS = [c for c in CASES if isinstance(c.axis, tuple)]


def _before_rows(row_len: int, max_work_group: int) -> tuple[int, int]:
    return (256 if row_len >= 1024 else 16), 1


class Shape(NamedTuple):
    """One set of launch shapes: reduce.py's tunables (None: the shape before this pass)."""

    name: str
    group: int | None = None
    serial: int = 4
    segment: int | None = None


def use(shape: Shape, device: Device) -> None:
    """reduce.py plans with ``shape`` from now on."""
    device.kernels.plans.clear()
    reduce._row_shape = _ROW_SHAPE if shape.group is not None else _before_rows  # type: ignore[assignment]
    reduce.GROUP = shape.group or 256
    reduce.ROW_SERIAL = shape.serial
    reduce.COLS_SEGMENT = shape.segment or 1 << 30


_ROW_SHAPE = reduce._row_shape
BEFORE = Shape("before")
ROW_SHAPES = [Shape(f"group {g} serial {s}", g, s) for g, s in
              ((256, 2), (256, 4), (256, 8), (256, 16), (128, 4), (128, 8), (512, 4))]
COL_SHAPES = [Shape(f"segment {s}", 256, 4, s) for s in (128, 256, 512, 1024, 2048)]


def contenders(case: Case, batch: int, device: Device, gpu: bool) -> dict[str, Contender]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, *case.shape)).astype(np.float32)
    t = from_numpy(x, device)
    op: Callable[..., Any] = getattr(ops, case.op)
    xt = torch.from_numpy(x).to("cuda" if gpu else "cpu")
    dims = case.axis if isinstance(case.axis, tuple) else (case.axis,)
    peer: dict[str, Callable[[], Any]] = {
        "sum": lambda: torch.sum(xt, dims), "mean": lambda: torch.mean(xt, dims),
        "max": lambda: torch.amax(xt, dims), "logsumexp": lambda: torch.logsumexp(xt, dims)}
    sync = torch.cuda.synchronize if gpu else no_sync
    got = op(t, case.axis).numpy()
    np.testing.assert_allclose(got, peer[case.op]().cpu().numpy(), rtol=1e-4, atol=1e-4)
    return {"netcl": (lambda: op(t, case.axis), device.synchronize),
            "torch": (peer[case.op], sync)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sample", type=float, default=0.02, help="seconds a sample")
    parser.add_argument("--profile", action="store_true",
                        help="the jitted GPT step's kernel profile, before and with the best")
    parser.add_argument("--gpu-kernels", action="store_true",
                        help="a CPU plans as for a GPU (a dry run of the GPU's kernels)")
    add_json_flag(parser)
    args = parser.parse_args()
    device = manager.default("auto")
    if args.gpu_kernels:
        reduce._for_cpu = lambda _device: False  # type: ignore[assignment]
    gpu = device.type != "cpu" and torch.cuda.is_available()
    report = Report("GPT step reductions", device=device.name, json_line=args.json,
                    batch=args.batch)
    table = report.table("us per reduction", ["netcl", "torch"], ratios=[("netcl", "torch")])
    totals: dict[str, dict[str, float]] = {}

    def sweep(shapes: list[Shape], cases: list[Case]) -> Shape:
        for shape in shapes:
            use(shape, device)
            total = totals.setdefault(shape.name, {"netcl": 0.0, "torch": 0.0})
            for case in cases:
                times = time_contenders(contenders(case, args.batch, device, gpu),
                                        rounds=args.rounds, sample_s=args.sample)
                us = {name: t.median * 1e6 for name, t in times.items()}
                table.row(f"{case.name}, {shape.name}", us)
                for name in us:
                    total[name] += case.per_step * us[name]
        return min(shapes, key=lambda s: totals[s.name]["netcl"])

    sweep([BEFORE], CASES)
    best_rows = sweep(ROW_SHAPES, ROWS)
    best_cols = sweep(COL_SHAPES, COLS)
    steps = report.table("GPT step's reductions, us per step (launches per step x us)",
                         ["netcl", "torch"], ratios=[("netcl", "torch")])
    steps.row("before", totals["before"])
    best = Shape("best", best_rows.group, best_rows.serial, best_cols.segment)
    after = {k: totals[best_rows.name][k] + totals[best_cols.name][k] for k in ("netcl", "torch")}
    steps.row(f"{best_rows.name}, {best_cols.name}", after)
    report.note("best", best)
    if args.profile:
        from kernel_profile import MODELS, model_step, profile
        queue = cl.CommandQueue(device.context,
                                properties=cl.command_queue_properties.PROFILING_ENABLE)
        timed = manager.for_queue(queue)
        for shape in (BEFORE, best):
            use(shape, timed)
            step = model_step(MODELS["gpt6"], timed, jitted=True)
            for _ in range(3):  # capture, builds, pool
                step()
            rows = profile(step, timed, 3)
            kernels = report.table(f"jitted GPT 6 step, {shape.name}: kernel ms per step",
                                   ["launches", "ms"])
            for name, launches, seconds in rows[:6]:
                kernels.row(name, {"launches": launches // 3, "ms": seconds * 1e3 / 3})
            kernels.row("all", {"launches": sum(r[1] for r in rows) // 3,
                                "ms": sum(r[2] for r in rows) * 1e3 / 3})
    report.finish()


if __name__ == "__main__":
    main()
