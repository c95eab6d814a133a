"""Data-parallel step time against world size: netcl DDP (MPI) and torch DDP (gloo), one run.

    python tools/bench/allreduce.py                    # world sizes 1, 2, 4 on this machine
    python tools/bench/allreduce.py --ranks 1 2 --hidden 2048

For each world size K it launches ``mpiexec -n K`` of itself. Every rank
trains the same MLP (``--hidden`` wide, weak scaling: ``--batch`` rows per
rank) with Adam, timing a step with gradient averaging (``step``) and one
without (``no_sync``: forward, backward and the optimizer, no communication),
in turns (tools/bench/harness.py's ``time_contenders``), the fastest of
``--repeats`` samples of ``--steps`` steps (on a machine shared with other jobs
the fastest sample is the least disturbed one), the slowest rank's. Both
frameworks run the same shapes in the same processes: netcl on its OpenCL
device, torch on the CPU through gloo. It prints

* the gradient bytes each step hands to the collective (``B``, every
  parameter's fp32 gradient) and what each rank sends for them in a ring
  all-reduce, ``2 (K-1)/K * B`` (MPICH picks its own algorithm; the ring is
  the bandwidth-optimal one and the model RESULTS.md projects with);
* netcl's and torch's step and no-sync times, the communication overhead
  (step - no_sync) of each, and netcl / torch for both;
* a bare ``MPI_Allreduce`` of B bytes of host memory: the floor for netcl's
  overhead, which adds the device-to-host and host-to-device copies.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from harness import Contender, Report, add_json_flag, no_sync, time_contenders

HERE = Path(__file__).resolve()


def worker(args: argparse.Namespace) -> None:
    import torch
    import torch.distributed as torch_dist
    from mpi4py import MPI

    import netcl.autograd as ag
    import netcl.distributed as dist
    from netcl.core.tensor import from_numpy, manual_seed
    from netcl.nn import Linear, ReLU, Sequential, mse_loss
    from netcl.optim import Adam

    world = dist.init()
    comm, q = world.comm, world.device.queue
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world.local_size))
    rng = np.random.default_rng(world.rank)
    width, hidden = args.width, args.hidden
    x_host = rng.standard_normal((args.batch, width)).astype(np.float32)
    y_host = rng.standard_normal((args.batch, width)).astype(np.float32)

    manual_seed(0)
    model = Sequential(Linear(q, width, hidden), ReLU(), Linear(q, hidden, width))
    ddp = dist.DistributedDataParallel(model)
    optimizer = Adam(model.parameters(), lr=1e-4)
    x, y = from_numpy(x_host, q), from_numpy(y_host, q)

    def netcl_step() -> None:
        with ag.Tape() as tape:
            loss = mse_loss(ddp(x), y)
        tape.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        q.finish()

    def netcl_no_sync() -> None:
        with ddp.no_sync():
            netcl_step()

    port = comm.bcast(_free_port() if world.rank == 0 else None, root=0)
    torch_dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}",
                                  rank=world.rank, world_size=world.size)
    torch.manual_seed(0)
    reference = torch.nn.Sequential(torch.nn.Linear(width, hidden), torch.nn.ReLU(),
                                    torch.nn.Linear(hidden, width))
    torch_ddp = torch.nn.parallel.DistributedDataParallel(reference)
    torch_optimizer = torch.optim.Adam(reference.parameters(), lr=1e-4)
    tx, ty = torch.from_numpy(x_host), torch.from_numpy(y_host)

    def torch_step() -> None:
        loss = torch.nn.functional.mse_loss(torch_ddp(tx), ty)
        loss.backward()
        torch_optimizer.step()
        torch_optimizer.zero_grad()

    def torch_no_sync() -> None:
        with torch_ddp.no_sync():
            torch_step()

    params = sum(p.size for p in model.parameters())
    grads = np.ones(params, np.float32)

    def bare_allreduce() -> None:
        comm.Allreduce(MPI.IN_PLACE, grads, op=MPI.SUM)

    # Each call ends finished (netcl's step ends with q.finish(); torch's and MPI's return so).
    timers: dict[str, Contender] = {
        "netcl step": (netcl_step, no_sync), "netcl no_sync": (netcl_no_sync, no_sync),
        "torch step": (torch_step, no_sync), "torch no_sync": (torch_no_sync, no_sync),
        "mpi allreduce": (bare_allreduce, no_sync)}
    comm.Barrier()
    mine = time_contenders(timers, calls=args.steps, rounds=args.repeats, warmup=2)
    slowest = {label: max(comm.allgather(t.fastest)) for label, t in mine.items()}
    torch_dist.destroy_process_group()
    if world.rank == 0:
        print(json.dumps({"ranks": world.size, "params": params, "device": world.device.name,
                          **slowest}))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def driver(args: argparse.Namespace) -> None:
    mpiexec = str(Path(sys.executable).parent / "mpiexec")
    forwarded = [f"--{k}={v}" for k, v in vars(args).items()
                 if k not in ("ranks", "worker", "json")]
    rows: list[dict[str, Any]] = []
    for ranks in args.ranks:
        command = [mpiexec, "-n", str(ranks), sys.executable, str(HERE), "--worker", *forwarded]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    first = rows[0]
    grad_bytes = first["params"] * 4
    report = Report("data-parallel step", f"{first['device']}; torch CPU + gloo", args.json,
                    params=first["params"], batch_per_rank=args.batch,
                    gradients=f"{grad_bytes / 2**20:.2f} MiB of fp32 a step")
    table = report.table(
        "ms per step, fastest sample, slowest rank",
        ["ring MiB sent/rank", "netcl step", "netcl no_sync", "netcl comm", "torch step",
         "torch no_sync", "torch comm", "MPI allreduce"],
        ratios=[("netcl step", "torch step"), ("netcl comm", "torch comm")])
    for row in rows:
        k = row["ranks"]
        ms = {label: seconds * 1e3 for label, seconds in row.items()
              if isinstance(seconds, float)}
        cells: dict[str, float | None] = {
            "ring MiB sent/rank": 2 * (k - 1) / k * grad_bytes / 2**20,
            "netcl step": ms["netcl step"], "netcl no_sync": ms["netcl no_sync"],
            "torch step": ms["torch step"], "torch no_sync": ms["torch no_sync"],
            "MPI allreduce": ms["mpi allreduce"],
            # With one rank there is nothing to communicate: no comm ratio.
            "netcl comm": ms["netcl step"] - ms["netcl no_sync"] if k > 1 else None,
            "torch comm": ms["torch step"] - ms["torch no_sync"] if k > 1 else None,
        }
        table.row(f"{k} ranks", cells)
    report.finish()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--width", type=int, default=256, help="input and output features")
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=64, help="rows per rank")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    add_json_flag(parser)
    args = parser.parse_args()
    if args.worker:
        worker(args)
    else:
        driver(args)


if __name__ == "__main__":
    main()
