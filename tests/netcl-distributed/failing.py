"""Jobs that must fail fast, for test_failure.py: ``failing.py raise`` or ``failing.py shapes``."""

from __future__ import annotations

import sys

import numpy as np

import netcl.distributed as dist
from netcl.nn import Linear, ReLU, Sequential

world = dist.init()
q = world.device.queue
if sys.argv[1] == "raise":
    if world.rank == world.size - 1:
        raise ValueError("this rank's data is corrupt")
    # The other ranks wait for it in a collective, which would never end without the abort.
    world.comm.allreduce(np.float64(1.0))
elif sys.argv[1] == "shapes":
    hidden = 8 if world.rank == 0 else 9
    dist.DistributedDataParallel(Sequential(Linear(q, 4, hidden), ReLU(), Linear(q, hidden, 2)))
print(f"rank {world.rank}: finished, which it must not")
