"""What averaging gradients costs a training step, and the parts it is made of, in one run.

    python tools/bench/ddp.py                                    # CPU (PoCL), a small MLP
    NETCL_DEVICE=gpu python tools/bench/ddp.py --hidden 4096 --batch 2048   # the issue's MLP
    mpiexec -n 2 python tools/bench/ddp.py                       # the host path over 2 ranks

Each process steps the same MLP (784-H x4-10, Adam, flat layout) several ways:
``plain`` (no averaging), ``zero`` (``ZeroRedundancyOptimizer`` over ``init()``'s
world: alone, a world of one, which must cost nothing; under mpiexec, its
reduce-scatter and all-gather through the host, or through NCCL where ``init()``
chose it), ``mpi`` (the host path's reducer: chunked copies into pinned host memory,
an MPI all-reduce over MPI's world, copies back), ``mpi bf16`` (the same with
``comm_hooks.bf16_compress_hook``: chunks rounded to bfloat16 on the device, copied
out, all-gathered, copied back and summed in float32) and, where NCCL can run,
``nccl`` (the reducer built before the optimizer, as DDP is: the gradients live in
CUDA-allocated memory and NCCL averages them in place) and ``nccl copy`` (the
optimizer built first: each bucket is copied into that memory and back). The NCCL
reducers run over a communicator of this one process, so their overhead is the
transport itself; where ``init()`` chose NCCL for the job (a GPU a rank), ``nccl
world`` is the reducer over the job's communicator. The parts table times, for the
gradient bytes, the device-to-host and host-to-device copies into pinned and into
pageable host memory, and a bare ``MPI_Allreduce`` of them over MPI's world: the
floor of the host path; for the bfloat16 path, the copy of half the bytes out, of K
halves back, and a bare ``MPI_Allgather`` of the halves. The bytes table counts what
one rank moves a step each way. The last table sets each host path's overhead
(``mpi`` - ``plain``, ``mpi bf16`` - ``plain``) against the sum of its parts (pinned
copies out and back, the collective).
Only rank 0 prints.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import numpy as np
from harness import Report, add_json_flag, no_sync, time_contenders
from mpi4py import MPI

import netcl.autograd as ag
import netcl.distributed as dist
from netcl.core.tensor import Tensor, bfloat16, empty, from_numpy, manual_seed
from netcl.core.tensor.launch import transfer
from netcl.distributed import host_copy, nccl
from netcl.distributed.bf16_reducer import Bf16Reducer, sum_in_rank_order
from netcl.distributed.reducer import NcclReducer, Reducer
from netcl.nn import Linear, Module, ReLU, Sequential, cross_entropy
from netcl.optim import Adam


def mlp(queue: Any, hidden: int) -> Module:
    manual_seed(0)
    return Sequential(Linear(queue, 784, hidden), ReLU(), Linear(queue, hidden, hidden), ReLU(),
                      Linear(queue, hidden, hidden), ReLU(), Linear(queue, hidden, hidden),
                      ReLU(), Linear(queue, hidden, 10))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=7)
    add_json_flag(parser)
    args = parser.parse_args()
    # init() gives each rank its share of PoCL's threads, and the GPU a rank of its own
    # where there are several.
    the_world = dist.init()
    device = the_world.device
    queue = device.queue
    why_not = nccl.unavailable(device.cl_device)
    world = MPI.COMM_WORLD
    if world.rank:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the whole run)
    report = Report("ddp transport", device=device.name, json_line=args.json and world.rank == 0,
                    nccl="available" if why_not is None else f"unavailable: {why_not}")

    rng = np.random.default_rng(0)
    x = from_numpy(rng.standard_normal((args.batch, 784)).astype(np.float32), queue)
    y = from_numpy(rng.integers(0, 10, args.batch), queue)
    alone = world.size == 1
    names = ["plain", "zero", "mpi", "mpi bf16",
             *(["nccl", "nccl copy"] if why_not is None else []),
             *(["nccl world"] if the_world.nccl is not None else [])]
    models = {name: mlp(queue, args.hidden) for name in names}
    named = {name: list(model.named_parameters()) for name, model in models.items()}
    optimizers: dict[str, Any] = {"nccl copy": Adam(models["nccl copy"].parameters(), lr=1e-4)
                                  } if "nccl copy" in models else {}
    # The hooks hold a reducer weakly: this list keeps them for the run.
    reducers: list[Reducer] = [Reducer(named["mpi"], world, 25 * 2**20),
                               Bf16Reducer(named["mpi bf16"], world, 25 * 2**20)]
    for name in ("nccl", "nccl copy"):
        if name in models:
            reducers.append(NcclReducer(named[name], MPI.COMM_SELF, 25 * 2**20,
                                        nccl.Communicator(MPI.COMM_SELF, device.cl_device)))
    if the_world.nccl is not None:
        reducers.append(NcclReducer(named["nccl world"], world, 25 * 2**20, the_world.nccl))
    for name, model in models.items():  # after the reducers, as after DDP's wrapper
        if name not in optimizers and name != "zero":
            optimizers[name] = Adam(model.parameters(), lr=1e-4)
    optimizers["zero"] = dist.ZeroRedundancyOptimizer(list(models["zero"].parameters()),
                                                      Adam, world=the_world, lr=1e-4)

    def step(name: str) -> None:
        with ag.Tape() as tape:
            loss = cross_entropy(models[name](x), y)
        tape.backward(loss)
        optimizers[name].step()
        optimizers[name].zero_grad()
        if not alone:
            # Every step of every contender ends with the ranks together, so that the step
            # with averaging is not charged for the ranks' drift that a plain step hides.
            device.synchronize()
            world.Barrier()

    gradient_bytes = sum(p.nbytes for p in models["plain"].parameters())
    report.note("gradient bytes", gradient_bytes)
    report.note("buckets", [len(r.buckets) for r in reducers])
    table = report.table(f"one training step, ms ({world.size} rank(s); zero over "
                         f"{the_world.backend}; nccl, nccl copy over one)",
                         list(models),
                         ratios=[*((name, "plain") for name in models if name != "plain"),
                                 ("mpi bf16", "mpi")])
    times = time_contenders({name: ((lambda n=name: step(n)), device.synchronize)
                             for name in models}, rounds=args.rounds, calls=3)
    steps = {name: t.median * 1e3 for name, t in times.items()}
    table.row(f"784-{args.hidden}x4-10 b{args.batch}", steps)

    count = gradient_bytes // 4
    with ag.Tape() as tape:
        loss = cross_entropy(models["plain"](x), y)
    tape.backward(loss)
    grads = [p.grad for p in models["plain"].parameters() if p.grad is not None]
    spans = host_copy.spans(grads)
    pinned = host_copy.pinned_array(queue, count)
    pageable = np.zeros(count, np.float32)
    reduced = np.zeros(count, np.float32)
    halves = empty((count * world.size,), bfloat16, device)
    pinned_half = host_copy.pinned_array(queue, count, np.uint16)
    pinned_halves = host_copy.pinned_array(queue, count * world.size, np.uint16)
    flat = empty((count,), np.float32, device)
    # The scheme not built (see netcl.distributed.bf16_reducer): each rank receives its 1/K
    # of every rank's halves (all-to-all), sums them, and the float32 sums are all-gathered.
    shard = -(-count // world.size)
    to_all = np.zeros(shard * world.size, np.uint16)
    from_all = np.zeros(shard * world.size, np.uint16)
    shard_sums = np.zeros(shard, np.float32)
    all_sums = np.zeros(shard * world.size, np.float32)

    def all_to_all_then_gather() -> None:
        world.Alltoall(to_all, from_all)
        world.Allgather(shard_sums, all_sums)
    rows = [Tensor(halves.buffer, (count,), bfloat16, device, offset=r * count)
            for r in range(world.size)]

    def round_sum_scale() -> None:
        """The bfloat16 path's own device work: round to bfloat16, then sum the ranks' rows in
        float32 and scale, as ``Bf16Reducer`` does."""
        with ag.no_grad():
            rows[0].copy_(flat)
        sum_in_rank_order(flat, rows, 1.0 / world.size)

    def copy(host: np.ndarray[Any, Any], out: bool) -> None:
        (host_copy.to_host if out else host_copy.to_device)(queue, spans, host)

    parts = report.table(f"the parts for {gradient_bytes / 1e6:.1f} MB, ms (GB/s)",
                         ["ms", "GB/s"])
    measured = time_contenders({
        "device to pinned host": (lambda: copy(pinned, True), device.synchronize),
        "pinned host to device": (lambda: copy(pinned, False), device.synchronize),
        "device to pageable host": (lambda: copy(pageable, True), device.synchronize),
        "pageable host to device": (lambda: copy(pageable, False), device.synchronize),
        f"MPI_Allreduce over {world.size} rank(s)": (
            lambda: world.Allreduce(pinned, reduced, op=MPI.SUM), no_sync),
        "bf16: device to pinned host": (
            lambda: transfer(queue, pinned_half, halves.buffer, is_blocking=False),
            device.synchronize),
        f"bf16: pinned host to device, {world.size} rank(s)": (
            lambda: transfer(queue, halves.buffer, pinned_halves, is_blocking=False),
            device.synchronize),
        f"bf16: MPI_Allgather over {world.size} rank(s)": (
            lambda: world.Allgather(pinned_half, pinned_halves), no_sync),
        "bf16: round, sum, scale on the device": (round_sum_scale, device.synchronize),
        f"(not built) MPI_Alltoall bf16 + MPI_Allgather fp32 over {world.size} rank(s)": (
            all_to_all_then_gather, no_sync),
    }, rounds=args.rounds, calls=3)
    moved = {"device to pinned host": gradient_bytes, "pinned host to device": gradient_bytes,
             "device to pageable host": gradient_bytes, "pageable host to device": gradient_bytes,
             f"MPI_Allreduce over {world.size} rank(s)": gradient_bytes,
             "bf16: device to pinned host": gradient_bytes // 2,
             f"bf16: pinned host to device, {world.size} rank(s)": gradient_bytes // 2 * world.size,
             f"bf16: MPI_Allgather over {world.size} rank(s)": gradient_bytes // 2,
             # read float32, write bfloat16; read K bfloat16 rows, write float32 (K = 2)
             "bf16: round, sum, scale on the device": gradient_bytes * (3 + world.size + 2) // 2,
             f"(not built) MPI_Alltoall bf16 + MPI_Allgather fp32 over {world.size} rank(s)":
                 gradient_bytes // 2}
    for name, timing in measured.items():
        parts.row(name, {"ms": timing.median * 1e3, "GB/s": moved[name] / timing.median / 1e9})

    # What one rank moves a step, each way: the float32 path sends and receives every
    # gradient; the bfloat16 path sends half, and receives (and copies back) every rank's half.
    sent = report.table("bytes one rank moves a step, MB", ["to host", "sent", "received",
                                                            "to device"])
    sent.row("mpi", {"to host": gradient_bytes / 1e6, "sent": gradient_bytes / 1e6,
                     "received": gradient_bytes / 1e6, "to device": gradient_bytes / 1e6})
    sent.row("mpi bf16", {"to host": gradient_bytes / 2e6, "sent": gradient_bytes / 2e6,
                          "received": gradient_bytes / 2e6 * (world.size - 1),
                          "to device": gradient_bytes / 2e6 * world.size})

    def floor(*names: str) -> float:
        return sum(measured[name].median * 1e3 for name in names)

    overhead = report.table("host path: overhead a step against its parts, ms",
                            ["overhead", "sum of parts"], ratios=[("overhead", "sum of parts")])
    overhead.row(f"mpi, {world.size} rank(s)", {
        "overhead": steps["mpi"] - steps["plain"],
        "sum of parts": floor("device to pinned host", "pinned host to device",
                              f"MPI_Allreduce over {world.size} rank(s)")})
    overhead.row(f"mpi bf16, {world.size} rank(s)", {
        "overhead": steps["mpi bf16"] - steps["plain"],
        "sum of parts": floor("bf16: device to pinned host",
                              f"bf16: pinned host to device, {world.size} rank(s)",
                              f"bf16: MPI_Allgather over {world.size} rank(s)",
                              "bf16: round, sum, scale on the device")})
    report.finish()


if __name__ == "__main__":
    main()
