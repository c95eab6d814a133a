"""A jitted training step against the eager one, bit for bit, on whatever device netcl picks.

    NETCL_DEVICE=gpu python tools/jit_check.py

30 Adam steps (CosineAnnealingLR stepped every 5) of a 784-1024x2-10 MLP on
random data, eagerly and under ``netcl.jit.jit`` with and without fusion;
prints whether every loss and parameter matches and the step counts kept.
Needs only netcl and numpy (the same check on the digits data is a test).
"""
from __future__ import annotations

from typing import Any

import numpy as np

import netcl.autograd as ag
from netcl.core.device import manager
from netcl.core.tensor import from_numpy, manual_seed
from netcl.jit import jit
from netcl.nn import Linear, ReLU, Sequential, cross_entropy
from netcl.optim import Adam, CosineAnnealingLR

device = manager.default("auto")
print(device)
rng = np.random.default_rng(0)
data = [(from_numpy(rng.standard_normal((256, 784)).astype(np.float32)),
         from_numpy(rng.integers(0, 10, 256))) for _ in range(4)]


def run(mode: str) -> tuple[list[Any], list[Any], Any, dict[str, Any]]:
    manual_seed(0)
    model = Sequential(Linear(None, 784, 1024), ReLU(), Linear(None, 1024, 1024), ReLU(),
                       Linear(None, 1024, 10))
    opt = Adam(model.parameters(), lr=1e-3)
    sched = CosineAnnealingLR(opt, T_max=10)

    def step(x: Any, y: Any) -> Any:
        with ag.Tape() as tape:
            loss = cross_entropy(model(x), y)
        tape.backward(loss)
        opt.step()
        opt.zero_grad()
        return loss

    f = step if mode == "eager" else jit(step, fuse=mode == "fused")
    losses = []
    for i in range(30):
        losses.append(f(*data[i % 4]).numpy())
        if i % 5 == 4:
            sched.step()
    return losses, [p.numpy() for p in model.parameters()], f, opt.state_dict()


eager = run("eager")
for mode in ("fused", "unfused"):
    got = run(mode)
    pairs = zip(eager[0] + eager[1], got[0] + got[1], strict=True)
    same = all(np.array_equal(a, b) for a, b in pairs)
    steps = {s["step"] for s in got[3]["state"].values()}
    print(mode, "bit-identical to eager over 30 Adam steps:", same, got[2].launches, "steps", steps)
