"""A bf16-autocast training step (forward, cross-entropy, backward, Adam): netcl against
torch bf16 autocast on the same device, in one run, with both fp32 steps beside them.

    NETCL_DEVICE=gpu python tools/bench/amp_step.py --device gpu
    python tools/bench/amp_step.py                  # CPU: PoCL against torch CPU

    NETCL_DEVICE=gpu python tools/bench/amp_step.py --device gpu \
        --widths 784 8192 8192 8192 8192 10 --batch 4096       # the compute-bound MLP

Each row is a contender; the ratio columns are its time over torch's step in the same
precision: bf16 autocast, TF32 (float32 with TF32 matmuls on both sides: netcl's
set_float32_matmul_precision("high"), torch's allow_tf32, switched on for that
contender's calls only) and fp32. On a device without tensor cores netcl's bf16 matmul
runs the CUDA-core kernel with 16-bit loads. Timing is harness.py's (samples in turns,
medians).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import torch
from harness import Report, add_json_flag, time_contenders
from train_step import MLP, MODELS, Step

import netcl.autograd as ag
from netcl.amp import autocast
from netcl.core.device import Device, manager
from netcl.core.tensor import backends, from_numpy, manual_seed
from netcl.jit import jit
from netcl.nn import Linear, ReLU, Sequential, cross_entropy
from netcl.optim import Adam


def netcl_step(spec: MLP, device: Device, amp: bool, jitted: bool = False) -> Step:
    manual_seed(0)
    layers: list[Any] = []
    for i, (n_in, n_out) in enumerate(zip(spec.widths, spec.widths[1:], strict=False)):
        layers += [Linear(device, n_in, n_out)] + ([ReLU()] if i < len(spec.widths) - 2 else [])
    model = Sequential(*layers)
    optimizer = Adam(model.parameters(), lr=1e-3)
    x_host, y_host = spec.data()
    x, y = from_numpy(x_host, device), from_numpy(y_host, device)

    def step() -> None:
        with ag.Tape() as tape, autocast(enabled=amp):
            loss = cross_entropy(model(x), y)
        tape.backward(loss)
        optimizer.step()
        optimizer.zero_grad()

    return (jit(step) if jitted else step), device.synchronize


def torch_step(spec: MLP, device: Device, amp: bool) -> Step:
    torch.manual_seed(0)
    where = torch.device("cuda" if device.type == "gpu" else "cpu")
    layers: list[torch.nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(spec.widths, spec.widths[1:], strict=False)):
        layers.append(torch.nn.Linear(n_in, n_out))
        if i < len(spec.widths) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers).to(where)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=where.type == "cuda")
    x_host, y_host = spec.data()
    x, y = torch.from_numpy(x_host).to(where), torch.from_numpy(y_host).to(where)

    def step() -> None:
        with torch.autocast(where.type, dtype=torch.bfloat16, enabled=amp):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    def sync() -> None:
        if where.type == "cuda":
            torch.cuda.synchronize()

    return step, sync


def with_tf32(step: Step) -> Step:
    """``step`` with TF32 matmuls allowed on both sides during its calls only (both
    switches are process-wide, and the contenders take turns)."""
    call, sync = step

    def tf32_call() -> None:
        before = backends.get_float32_matmul_precision(), torch.backends.cuda.matmul.allow_tf32
        backends.set_float32_matmul_precision("high")
        torch.backends.cuda.matmul.allow_tf32 = True
        try:
            call()
        finally:
            backends.set_float32_matmul_precision(before[0])
            torch.backends.cuda.matmul.allow_tf32 = before[1]

    return tf32_call, sync


CONTENDERS: dict[str, Callable[[MLP, Device], Step]] = {
    "netcl fp32": lambda s, d: netcl_step(s, d, False),
    "netcl tf32": lambda s, d: with_tf32(netcl_step(s, d, False)),
    "netcl bf16": lambda s, d: netcl_step(s, d, True),
    "netcl bf16 jit": lambda s, d: netcl_step(s, d, True, jitted=True),
    "torch fp32": lambda s, d: torch_step(s, d, False),
    "torch tf32": lambda s, d: with_tf32(torch_step(s, d, False)),
    "torch bf16": lambda s, d: torch_step(s, d, True),
}
# Each netcl contender's peer: torch's step in the same precision.
PEERS = {"fp32": "torch fp32", "tf32": "torch tf32", "bf16": "torch bf16"}


def autocast_off_timers(device: Device) -> dict[str, Step]:
    """A 4x4 matmul through ``ops.matmul`` (which asks autocast first) and through
    ``matmul_with`` (which does not): the cost of autocast being off, on the eager path."""
    import numpy as np

    from netcl.core.tensor import ops
    from netcl.core.tensor.ops.matmul import matmul_with

    a = from_numpy(np.ones((4, 4), np.float32), device)

    def many(op: Callable[[Any, Any], Any]) -> Callable[[], None]:
        def run() -> None:
            for _ in range(100):
                op(a, a)

        return run

    return {"ops.matmul": (many(ops.matmul), device.synchronize),
            "matmul_with": (many(matmul_with), device.synchronize)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--sample", type=float, default=0.5, help="seconds per sample")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--widths", type=int, nargs="+", help="an MLP's layer widths "
                        "(default: the device's MLP in train_step.py)")
    parser.add_argument("--batch", type=int, default=4096, help="the --widths MLP's batch")
    add_json_flag(parser)
    args = parser.parse_args()
    device = manager.default(args.device)
    if args.device == "gpu":
        torch.backends.cuda.matmul.allow_tf32 = False
    report = Report("bf16 autocast training step", device=device.name, json_line=args.json)
    off = time_contenders(autocast_off_timers(device), rounds=args.rounds, sample_s=args.sample)
    table = report.table("autocast off: 100 eager 4x4 matmuls, ms",
                         ["ops.matmul", "matmul_with"], ratios=[("ops.matmul", "matmul_with")])
    table.row("4x4", {name: t.median * 1e3 for name, t in off.items()})
    spec = (MLP(tuple(args.widths), args.batch) if args.widths
            else next(s for s in MODELS[args.device] if isinstance(s, MLP)))
    timers: dict[str, Step] = {}
    for name, make in CONTENDERS.items():
        try:
            timers[name] = make(spec, device)
        except Exception as error:  # a contender that cannot run is reported, not fatal
            report.note(f"{name} failed", repr(error))
    times = time_contenders(timers, rounds=args.rounds, sample_s=args.sample)
    steps = report.table("training step, ms", list(times),
                         ratios=[(name, PEERS[name.split()[1]]) for name in times
                                 if name.startswith("netcl") and PEERS[name.split()[1]] in times])
    steps.row(str(spec), {name: t.median * 1e3 for name, t in times.items()})
    report.finish()


if __name__ == "__main__":
    main()
