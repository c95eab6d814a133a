"""Host cost of one optimizer step: the Python thread's CPU time, which neither the machine's
load nor PoCL's worker threads enter, so two trees compare on a busy machine.

For 200 tensors of 1000 floats, netcl Adam and Momentum, fused and per-parameter: the median
over 7 samples of 20 steps of ``time.thread_time()`` per step (tools/bench/harness.py's
``host_cost``), and per-parameter / fused. To compare two trees, run it alternately with each
tree's sources first on the path:

    PYTHONPATH=$(ls -d /path/to/tree/packages/*/src | paste -sd:) python tools/bench/optim_host.py
"""

from __future__ import annotations

import argparse

import numpy as np
from harness import Report, add_json_flag, host_cost

from netcl.core.device import manager
from netcl.core.tensor import Parameter, from_numpy
from netcl.optim import Adam, Momentum

TENSORS, SIZE, STEPS, SAMPLES, WARMUP = 200, 1000, 20, 7, 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_json_flag(parser)
    args = parser.parse_args()
    device = manager.default("auto")
    report = Report("optimizer host cost", device.name, args.json,
                    tensors=f"{TENSORS} of {SIZE} floats")
    table = report.table("main-thread CPU us per step", ["fused", "per-parameter"],
                         ratios=[("per-parameter", "fused")])
    rng = np.random.default_rng(0)
    # Momentum, not SGD(momentum=0.9): the same optimizer, and it runs on trees from
    # before SGD took momentum too, which this script is for comparing.
    for cls, kwargs in ((Adam, {"lr": 1e-3}), (Momentum, {"lr": 1e-2})):
        cells: dict[str, float] = {}
        for path, fused in (("fused", None), ("per-parameter", False)):
            params = [Parameter(from_numpy(rng.standard_normal(SIZE).astype(np.float32)))
                      for _ in range(TENSORS)]
            optimizer = cls(params, fused=fused, **kwargs)
            for p in params:
                p.grad = from_numpy(np.full(SIZE, 0.1, np.float32))
            for _ in range(WARMUP):
                optimizer.step()
            step = (optimizer.step, device.synchronize)
            cells[path] = host_cost(step, STEPS, SAMPLES) * 1e6
        table.row(cls.__name__, cells)
    report.finish()


if __name__ == "__main__":
    main()
