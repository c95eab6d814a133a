"""The 784-1024x2-10 b256 jitted step against torch eager, and where a replay's time goes.

A lean run of ``train_step.py``'s jit and torch contenders for one model (15
rounds, in turns, median), also meant to be run in two source trees one after
the other (before and after a change to netcl.jit) within one short GPU session.
Three tables:

1. ms per step: the jitted step as it runs, the same replays with the queue not
   held while they enqueue (``Program.hold`` off), and torch eager.
2. main-thread CPU per replayed call: the guard checks (``Jitted.key``) and the
   whole call, held and not.
3. host or device bound: 20 replays enqueued while the queue is held shut by a
   user event (the host's enqueue time alone, nothing running), then the gate
   opened and the queue drained (the device's time alone, without host gaps).

    NETCL_DEVICE=gpu python tools/bench/jit_guard_ab.py LABEL
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from harness import Contender, Report, host_cost, phase_times, time_contenders
from train_step import MLP, netcl_jit, torch_eager

from netcl.core.device import Device, manager
from netcl.core.tensor.launch import held


def not_held(jitted: Any, sync: Callable[[], None]) -> Contender:
    """``jitted``'s replays with the queue not held while they enqueue."""
    program = jitted._last.program

    def call() -> None:
        hold, program.hold = program.hold, False
        try:
            jitted()
        finally:
            program.hold = hold

    return call, sync


def host_and_device(jitted: Any, device: Device, replays: int = 20,
                    rounds: int = 7) -> tuple[float, float]:
    """Median seconds per replay of enqueueing with the queue held shut, and of draining it."""

    def enqueue() -> None:
        with held(device.queue):
            for _ in range(replays):
                jitted()

    host, drain = phase_times([enqueue, device.synchronize], rounds)
    return host / replays, drain / replays


def main() -> None:
    label = sys.argv[1] if len(sys.argv) > 1 else "netcl"
    device = manager.default("auto")
    spec = MLP((784, 1024, 1024, 10), 256)
    jitted, sync = netcl_jit(spec, device)
    for _ in range(3):  # warm-up, capture, first replay: now a program exists
        jitted()
    timers = {"jit": (jitted, sync), "jit not held": not_held(jitted, sync),
              "torch": torch_eager(spec, device)}
    report = Report("jit replay host cost", device=device.name, label=label)
    table = report.table(f"{spec}, ms per step", list(timers),
                         ratios=[("jit", "torch"), ("jit not held", "torch"),
                                 ("jit", "jit not held")])
    times = time_contenders(timers, rounds=15, calls=50, warmup=5)
    table.row(label, {name: t.median * 1e3 for name, t in times.items()})

    host = report.table("main-thread CPU per replayed call, us",
                        ["guards", "call", "call not held"],
                        ratios=[("guards", "call"), ("call", "call not held")])
    host.row(label, {
        "guards": host_cost((lambda: jitted.key((), {}), sync), 300, 7) * 1e6,
        "call": host_cost((jitted, sync), 200, 7) * 1e6,
        "call not held": host_cost(timers["jit not held"], 200, 7) * 1e6,
    })

    enqueue, drain = host_and_device(jitted, device)
    bound = report.table("one replay, the queue held shut while 20 are enqueued, us",
                         ["host enqueue", "device drain"],
                         ratios=[("host enqueue", "device drain")])
    bound.row(label, {"host enqueue": enqueue * 1e6, "device drain": drain * 1e6})
    report.finish()


if __name__ == "__main__":
    main()
