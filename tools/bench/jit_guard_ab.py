"""The 784-1024x2-10 b256 jitted step against torch eager, and the guards' host cost.

A lean run of ``train_step.py``'s jit and torch contenders for one model (15
rounds of 50 steps, in turns, median), meant to be run in two source trees
one after the other (before and after a change to netcl.jit) within one short
GPU session; where ``Jitted.key`` exists it adds the main-thread CPU time of a
replay's guard checks against the whole replayed call's.

    NETCL_DEVICE=gpu python tools/bench/jit_guard_ab.py LABEL
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from train_step import MLP, netcl_jit, torch_eager

from netcl.core.device import manager


def host_seconds(call: Callable[[], Any], calls: int) -> float:
    start = time.thread_time()
    for _ in range(calls):
        call()
    return (time.thread_time() - start) / calls


def main() -> None:
    label = sys.argv[1] if len(sys.argv) > 1 else "netcl"
    device = manager.default("auto")
    spec = MLP((784, 1024, 1024, 10), 256)
    timers = {"jit": netcl_jit(spec, device), "torch": torch_eager(spec, device)}
    for step, sync in timers.values():
        for _ in range(5):
            step()
        sync()
    samples: dict[str, list[float]] = {name: [] for name in timers}
    for _ in range(15):
        for name, (step, sync) in timers.items():
            start = time.perf_counter()
            for _ in range(50):
                step()
            sync()
            samples[name].append((time.perf_counter() - start) / 50)
    jit_s, torch_s = statistics.median(samples["jit"]), statistics.median(samples["torch"])
    line = (f"{label}: {device.name}: jit {jit_s * 1e3:.3f} ms, torch {torch_s * 1e3:.3f} ms, "
            f"jit / torch {jit_s / torch_s:.3f}")
    jitted: Any = timers["jit"][0]
    if hasattr(jitted, "key"):
        device.synchronize()
        guards = statistics.median(host_seconds(lambda: jitted.key((), {}), 300) for _ in range(5))
        call = statistics.median(host_seconds(jitted, 100) for _ in range(5))
        device.synchronize()
        line += (f"; guards {guards * 1e6:.1f} us of the replayed call's {call * 1e6:.1f} us "
                 f"of host time ({guards / call:.2f})")
    print(line, flush=True)


if __name__ == "__main__":
    main()
