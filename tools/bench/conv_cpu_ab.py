"""The jitted small-ResNet step (train_step.py's CPU row) with conv_cpu.cl as at an older
commit against the working tree's, and torch, timed interleaved in one process: what a
change to the CPU convolution and pooling kernels is worth to the whole step.

Only the kernel file differs between the two netcl contenders (conv_cpu.py is the tree's,
so the old file must take the same launches). Each contender's kernels are fetched while
its sources are in place; the jit's replays then reuse them.

    python tools/bench/conv_cpu_ab.py --old 8f05bd9 --threads 1
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from harness import Contender, Report, add_json_flag, add_threads_flag, set_threads, time_contenders
from train_step import SmallResNet, netcl_jit, torch_eager

from netcl.core.device import manager
from netcl.core.tensor.ops import conv_cpu

KERNEL_PATH = "packages/netcl-tensor/src/netcl/core/tensor/ops/conv_cpu.cl"


def under(sources: tuple[object, ...], contender: Contender) -> Contender:
    """``contender`` with conv_cpu's kernel sources set to ``sources`` before each call."""
    step, sync = contender

    def call() -> None:
        conv_cpu.SOURCES = sources  # type: ignore[assignment]
        step()

    return call, sync


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", required=True, help="the commit whose conv_cpu.cl is 'old'")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--sample", type=float, default=0.3, help="seconds a sample")
    add_threads_flag(parser)
    add_json_flag(parser)
    args = parser.parse_args()
    threads = set_threads(args.threads)
    root = Path(__file__).resolve().parents[2]
    text = subprocess.run(["git", "show", f"{args.old}:{KERNEL_PATH}"], cwd=root, check=True,
                          capture_output=True, text=True).stdout
    device = manager.default("cpu")
    spec = SmallResNet(16, 64)
    new = conv_cpu.SOURCES
    with tempfile.TemporaryDirectory() as folder:
        old_file = Path(folder) / "conv_cpu.cl"
        old_file.write_text(text)
        old = (*new[:-1], old_file)
        report = Report("conv_cpu.cl A/B, jitted step", device=device.name,
                        json_line=args.json, threads=threads, old=args.old)
        table = report.table(f"{spec}, ms a step", ["old jit", "new jit", "torch"],
                             ratios=[("new jit", "old jit"), ("old jit", "torch"),
                                     ("new jit", "torch")])
        builds: dict[str, Callable[[], Contender]] = {
            "old jit": lambda: under(old, netcl_jit(spec, device)),
            "new jit": lambda: under(new, netcl_jit(spec, device)),
            "torch": lambda: torch_eager(spec, device)}
        times = time_contenders({name: build() for name, build in builds.items()},
                                sample_s=args.sample, rounds=args.rounds)
        conv_cpu.SOURCES = new
        table.row(str(spec), {name: t.median * 1e3 for name, t in times.items()})
        report.finish()


if __name__ == "__main__":
    main()
