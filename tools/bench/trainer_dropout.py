"""The Trainer's jit on a model with Dropout: 200 steps on mnist5k, jitted and eager.

Both runs start from the same seed (weights, batch order and the device
generator that draws Dropout's masks), so they must end bit-identical: the
bench checks that (final weights and every epoch's loss), then prints the median
time of further 200-step fits of each over ``--rounds`` rounds taken in turns (so a
neighbour's load falls on both), and their ratio, measured in the same process.

    python tools/bench/trainer_dropout.py                       # CPU (PoCL)
    NETCL_DEVICE=gpu python tools/bench/trainer_dropout.py --device gpu
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import numpy as np
from harness import Report, add_json_flag, time_contenders

from netcl.core.device import Device, manager
from netcl.core.tensor import manual_seed
from netcl.data import DataLoader, load_dataset
from netcl.nn import Dropout, Flatten, Linear, ReLU, Sequential, cross_entropy
from netcl.optim import Adam
from netcl.train import Trainer

BATCH, EPOCHS = 90, 4  # mnist5k's 4500 training images: 50 steps an epoch, 200 in all


def build(device: Device, jit: bool) -> tuple[Trainer, DataLoader]:
    """The model, its Trainer and the loader, from seed 0 each time."""
    splits = load_dataset("mnist5k", None, seed=0)
    manual_seed(0)
    model = Sequential(Flatten(), Linear(device, 784, 512), ReLU(), Dropout(0.2),
                       Linear(device, 512, 10))
    trainer = Trainer(model, Adam(model.parameters(), lr=1e-3), cross_entropy,
                      progress=False, jit=jit)
    return trainer, DataLoader(splits.train, BATCH, shuffle=True, seed=0, device=device)


def run(device: Device, jit: bool) -> tuple[list[np.ndarray[Any, Any]], list[float], bool]:
    """One run from seed 0: the final weights, each epoch's loss, whether steps were jitted."""
    trainer, loader = build(device, jit)
    history = trainer.fit(loader, EPOCHS)
    weights = [p.numpy() for p in trainer.model.parameters()]
    return weights, [r["loss"] for r in history], trainer.jit_active


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each, in turns")
    add_json_flag(parser)
    args = parser.parse_args(argv)
    device = manager.default(args.device)
    report = Report("trainer dropout", f"{device.name} ({device.type})", args.json,
                    steps=f"{EPOCHS} epochs of {4500 // BATCH} batches of {BATCH}",
                    timing=f"median of {args.rounds} runs of each, in turns")
    eager_w, eager_loss, _ = run(device, False)
    jit_w, jit_loss, jitted = run(device, True)
    same = eager_loss == jit_loss and all(
        np.array_equal(a, b) for a, b in zip(eager_w, jit_w, strict=True))
    report.note("steps replayed by netcl.jit", jitted)
    report.note("jitted run bit-identical to eager (weights and losses)", same)
    # Timed: further fits of one trainer each (the first, a warm-up, builds and captures).
    contenders = {}
    for name, jit in (("jit", True), ("eager", False)):
        trainer, loader = build(device, jit)
        # fit trains up to an epoch count in all: each call trains EPOCHS more.
        contenders[name] = ((lambda t=trainer, ld=loader: t.fit(ld, t.epoch + EPOCHS)),
                            device.synchronize)
    times = time_contenders(contenders, rounds=args.rounds, calls=1, warmup=1)
    table = report.table("200 training steps with Dropout, seconds", ["jit", "eager"],
                         ratios=[("jit", "eager")])
    table.row("Trainer.fit", {name: t.median for name, t in times.items()})
    report.finish()


if __name__ == "__main__":
    main()
