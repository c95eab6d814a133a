"""Soak: many training steps of the digits MLP, the device pool's bytes in use printed as it goes.

The MLP (64-256-10, ReLU, Adam, cross-entropy, batches of 64 drawn in turn from
scikit-learn's digits, each uploaded as a training loop does) runs ``--steps``
steps. Every ``--every`` steps it prints the pool's bytes in use and held, the
allocations the pool has made (a miss: a buffer it did not have), the loss and
the window's time per step, next to torch (CPU) running the same model on the
same batches in the same process: the ratio is netcl / torch. A leak shows as
bytes in use that keep growing after the first window; steady state allocates
nothing, so the allocation count stays put too. The steps of netcl and torch
alternate, one each, so load from elsewhere falls on both; the table and its
``--json`` line are tools/bench/harness.py's.

    python tools/bench/soak.py                        # 10,000 steps, a row every 1,000
    python tools/bench/soak.py --torch-threads 1      # a shared CPU: torch on one thread
    NETCL_DEVICE=gpu python tools/bench/soak.py       # on the GPU, against torch CUDA
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from harness import Report, add_json_flag
from sklearn.datasets import load_digits

import netcl.autograd as ag
from netcl.core.device import Device, manager
from netcl.core.tensor import from_numpy, manual_seed
from netcl.nn import Linear, ReLU, Sequential, cross_entropy
from netcl.optim import Adam

BATCH = 64
LR = 1e-3


@dataclass
class Window:
    """One row: the state after ``step`` steps and the time of the steps since the last row."""

    step: int
    bytes_in_use: int
    bytes_held: int
    allocations: int
    loss: float
    netcl_ms: float
    torch_ms: float


def batches(seed: int = 0) -> Iterator[tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]]:
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    while True:
        for start in range(0, len(x) - BATCH + 1, BATCH):
            picked = order[start:start + BATCH]
            yield x[picked], y[picked]


def soak(
    steps: int, every: int, device: Device, torch_device: str | None = "cpu"
) -> Iterator[Window]:
    """Train for ``steps`` steps, yielding a Window every ``every`` steps (torch_device None:
    no torch peer, its time NaN)."""
    manual_seed(0)
    model = Sequential(Linear(device, 64, 256), ReLU(), Linear(device, 256, 10))
    optimizer = Adam(model.parameters(), lr=LR)
    peer = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(),
                               torch.nn.Linear(256, 10)).to(torch_device or "cpu")
    peer_optimizer = torch.optim.Adam(peer.parameters(), lr=LR)
    data = batches()
    netcl_s = torch_s = 0.0
    for step in range(1, steps + 1):
        x, y = next(data)
        start = time.perf_counter()
        with ag.Tape() as tape:
            loss = cross_entropy(model(from_numpy(x, device)), from_numpy(y, device))
        tape.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        if step % every == 0:
            value = loss.item()  # waits for the device: the window's time is all its work
        netcl_s += time.perf_counter() - start

        start = time.perf_counter()
        if torch_device is not None:
            peer_loss = torch.nn.functional.cross_entropy(
                peer(torch.from_numpy(x).to(torch_device)), torch.from_numpy(y).to(torch_device))
            peer_loss.backward()
            peer_optimizer.step()
            peer_optimizer.zero_grad()
            if step % every == 0:
                peer_loss.item()
        torch_s += time.perf_counter() - start if torch_device is not None else float("nan")

        if step % every == 0:
            stats = device.pool.stats()
            yield Window(step, stats.bytes_in_use, stats.bytes_held, stats.allocations, value,
                         netcl_s / every * 1e3, torch_s / every * 1e3)
            netcl_s = torch_s = 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--every", type=int, default=1_000)
    parser.add_argument("--torch-threads", type=int, default=torch.get_num_threads(),
                        help="torch's CPU threads (on a shared machine, 1 avoids contention)")
    add_json_flag(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.torch_threads)
    device = manager.default("auto")
    torch_device = "cuda" if device.cl_device.type & 4 and torch.cuda.is_available() else "cpu"
    report = Report("soak", device.cl_device.name.strip(), args.json,
                    peer=f"torch on {torch_device}, {torch.get_num_threads()} CPU threads")
    table = report.table(
        f"every {args.every} steps: the pool, the loss, and the window's ms per step",
        ["bytes in use", "bytes held", "pool allocations", "loss", "netcl ms/step",
         "torch ms/step"], ratios=[("netcl ms/step", "torch ms/step")])
    rows = []
    for w in soak(args.steps, args.every, device, torch_device):
        rows.append(w)
        table.row(f"step {w.step}", {
            "bytes in use": w.bytes_in_use, "bytes held": w.bytes_held,
            "pool allocations": w.allocations, "loss": w.loss, "netcl ms/step": w.netcl_ms,
            "torch ms/step": w.torch_ms})
    growth = rows[-1].bytes_in_use - rows[0].bytes_in_use
    report.note(f"bytes in use from step {rows[0].step} to {rows[-1].step}", f"{growth:+,}")
    report.finish()


if __name__ == "__main__":
    main()
