"""Host cost of one optimizer step: the Python thread's CPU time, which neither the machine's
load nor PoCL's worker threads enter, so two trees compare on a busy machine.

For 200 tensors of 1000 floats, netcl Adam and Momentum, fused and per-parameter: the median
over 7 samples of 20 steps of ``time.thread_time()`` per step. To compare two trees, run it
alternately with each tree's sources first on the path:

    PYTHONPATH=$(ls -d /path/to/tree/packages/*/src | paste -sd:) python tools/bench/optim_host.py
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from netcl.core.device import manager
from netcl.core.tensor import Parameter, from_numpy
from netcl.optim import Adam, Momentum, Optimizer

TENSORS, SIZE, STEPS, SAMPLES = 200, 1000, 20, 7


def host_us_per_step(optimizer: Optimizer) -> float:
    queue = manager.default("auto").queue
    for _ in range(5):
        optimizer.step()
    queue.finish()
    samples = []
    for _ in range(SAMPLES):
        started = time.thread_time()
        for _ in range(STEPS):
            optimizer.step()
        samples.append((time.thread_time() - started) / STEPS * 1e6)
        queue.finish()
    return statistics.median(samples)


def main() -> None:
    rng = np.random.default_rng(0)
    print(f"netcl device: {manager.default('auto').name}; {TENSORS} tensors of {SIZE} floats")
    for cls, kwargs in ((Adam, {"lr": 1e-3}), (Momentum, {"lr": 1e-2})):
        for fused in (None, False):
            params = [Parameter(from_numpy(rng.standard_normal(SIZE).astype(np.float32)))
                      for _ in range(TENSORS)]
            optimizer = cls(params, fused=fused, **kwargs)
            for p in params:
                p.grad = from_numpy(np.full(SIZE, 0.1, np.float32))
            path = "fused" if fused is None else "per-parameter"
            print(f"{cls.__name__:9s} {path:14s} host us/step {host_us_per_step(optimizer):9.1f}")


if __name__ == "__main__":
    main()
