"""The 784-1024x2-10 b256 jitted step against torch eager, and the guards' host cost.

A lean run of ``train_step.py``'s jit and torch contenders for one model (15
rounds, in turns, median), meant to be run in two source trees one after the
other (before and after a change to netcl.jit) within one short GPU session;
where ``Jitted.key`` exists it adds the main-thread CPU time of a replay's
guard checks against the whole replayed call's.

    NETCL_DEVICE=gpu python tools/bench/jit_guard_ab.py LABEL
"""

from __future__ import annotations

import sys
from typing import Any

from harness import Report, host_cost, time_contenders
from train_step import MLP, netcl_jit, torch_eager

from netcl.core.device import manager


def main() -> None:
    label = sys.argv[1] if len(sys.argv) > 1 else "netcl"
    device = manager.default("auto")
    spec = MLP((784, 1024, 1024, 10), 256)
    timers = {"jit": netcl_jit(spec, device), "torch": torch_eager(spec, device)}
    report = Report("jit guards A/B", device=device.name, label=label)
    table = report.table("784-1024x2-10 b256, ms per step", ["jit", "torch"],
                         ratios=[("jit", "torch")])
    times = time_contenders(timers, rounds=15, calls=50, warmup=5)
    table.row(label, {name: t.median * 1e3 for name, t in times.items()})
    jitted: Any = timers["jit"][0]
    if hasattr(jitted, "key"):
        guards = host_cost((lambda: jitted.key((), {}), device.synchronize), calls=300, rounds=5)
        call = host_cost((jitted, device.synchronize), calls=100, rounds=5)
        host = report.table("host time of a replayed call, us", ["guards", "call"],
                            ratios=[("guards", "call")])
        host.row(label, {"guards": guards * 1e6, "call": call * 1e6})
    report.finish()


if __name__ == "__main__":
    main()
