"""What averaging gradients costs a training step, and the parts it is made of, in one run.

    python tools/bench/ddp.py                                    # CPU (PoCL), a small MLP
    NETCL_DEVICE=gpu python tools/bench/ddp.py --hidden 4096 --batch 2048   # the issue's MLP
    mpiexec -n 2 python tools/bench/ddp.py                       # + the collective over 2 ranks

One process steps the same MLP (784-H x4-10, Adam, flat layout) four ways:
``plain`` (no averaging), ``zero`` (``ZeroRedundancyOptimizer`` in a world of
one, which must cost nothing), ``mpi`` (the host path's reducer: chunked copies into
pinned host memory, an MPI all-reduce, copies back) and, where NCCL can run,
``nccl`` (device copies into CUDA-allocated memory and an NCCL all-reduce on
it), each reducer over a communicator of this one process, so the step's
overhead is the transport itself. The parts table times, for the gradient
bytes, the device-to-host and host-to-device copies into pinned and into
pageable host memory, and a bare ``MPI_Allreduce`` of them over MPI's world
(one process, or the ranks ``mpiexec`` started): the floor of the host path.
Multi-rank step times against one rank are ``tools/bench/allreduce.py``'s.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
from harness import Report, add_json_flag, no_sync, time_contenders
from mpi4py import MPI

import netcl.autograd as ag
import netcl.distributed as dist
from netcl.core.device import manager
from netcl.core.tensor import from_numpy, manual_seed
from netcl.distributed import host_copy, nccl
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
    device = manager.default("auto")
    queue = device.queue
    why_not = nccl.unavailable(device.cl_device)
    world = MPI.COMM_WORLD
    report = Report("ddp transport", device=device.name, json_line=args.json and world.rank == 0,
                    nccl="available" if why_not is None else f"unavailable: {why_not}")

    rng = np.random.default_rng(0)
    x = from_numpy(rng.standard_normal((args.batch, 784)).astype(np.float32), queue)
    y = from_numpy(rng.integers(0, 10, args.batch), queue)
    # ZeRO over the ranks mpiexec started would be another job than the others' one process.
    alone = world.size == 1
    names = ["plain", *(["zero"] if alone else []), "mpi", *(["nccl"] if why_not is None else [])]
    models = {name: mlp(queue, args.hidden) for name in names}
    optimizers: dict[str, Any] = {name: Adam(model.parameters(), lr=1e-4)
                                  for name, model in models.items() if name != "zero"}
    if alone:
        optimizers["zero"] = dist.ZeroRedundancyOptimizer(list(models["zero"].parameters()),
                                                          Adam, world=dist.init(), lr=1e-4)
    named = {name: list(model.named_parameters()) for name, model in models.items()}
    # The hooks hold a reducer weakly: this list keeps them for the run.
    reducers: list[Reducer] = [Reducer(named["mpi"], MPI.COMM_SELF, 25 * 2**20)]
    if "nccl" in models:
        reducers.append(NcclReducer(named["nccl"], MPI.COMM_SELF, 25 * 2**20,
                                nccl.Communicator(MPI.COMM_SELF, device.cl_device)))

    def step(name: str) -> None:
        with ag.Tape() as tape:
            loss = cross_entropy(models[name](x), y)
        tape.backward(loss)
        optimizers[name].step()
        optimizers[name].zero_grad()

    gradient_bytes = sum(p.nbytes for p in models["plain"].parameters())
    report.note("gradient bytes", gradient_bytes)
    report.note("buckets", [len(r.buckets) for r in reducers])
    table = report.table("one training step, ms (reducers over one process)", list(models),
                         ratios=[(name, "plain") for name in models if name != "plain"])
    times = time_contenders({name: ((lambda n=name: step(n)), device.synchronize)
                             for name in models}, rounds=args.rounds, calls=3)
    table.row(f"784-{args.hidden}x4-10 b{args.batch}",
              {name: t.median * 1e3 for name, t in times.items()})

    count = gradient_bytes // 4
    with ag.Tape() as tape:
        loss = cross_entropy(models["plain"](x), y)
    tape.backward(loss)
    grads = [p.grad for p in models["plain"].parameters() if p.grad is not None]
    spans = host_copy.spans(grads)
    pinned = host_copy.pinned_array(queue, count)
    pageable = np.zeros(count, np.float32)
    reduced = np.zeros(count, np.float32)

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
    }, rounds=args.rounds, calls=3)
    for name, timing in measured.items():
        parts.row(name, {"ms": timing.median * 1e3,
                         "GB/s": gradient_bytes / timing.median / 1e9})
    report.finish()


if __name__ == "__main__":
    main()
