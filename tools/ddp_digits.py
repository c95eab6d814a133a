"""Data-parallel training of an MLP with Adam on scikit-learn's digits, on any number of ranks.

    mpiexec -n 4 python tools/ddp_digits.py --json      # 4 ranks
    python tools/ddp_digits.py --json                   # one process: the same run

Every run, whatever its world size K, takes the same steps: one fixed
permutation per epoch, the same global batches of ``--batch-size`` digits,
each split into K equal shares (so K must divide the batch size), gradients
averaged across ranks by DistributedDataParallel, or reduce-scattered by
ZeroRedundancyOptimizer with ``--zero``; ``--bf16-compress`` sends DDP's
gradients as bfloat16 (``comm_hooks.bf16_compress_hook``), which rounds them,
so that run only comes close to one process. The final loss (over the whole
training set) and test accuracy therefore agree with one process up to
float32 rounding. ``--json`` prints, as the last line,
``{"world_size", "loss", "accuracy", "state_bytes_per_rank", "params"}``; the
state bytes are the largest count of optimizer-state bytes any rank holds.

``--save PATH`` writes a checkpoint after the last epoch (the model, and the
optimizer's whole state dict, consolidated from the shards with ``--zero``);
``--resume PATH`` starts from one and trains on to ``--epochs``, with any
world size and either optimizer: 1 epoch on 4 ranks, saved, then resumed on
2 ranks for a second, ends where 2 epochs on one process do.
"""

from __future__ import annotations

import argparse
import json
import pickle
from typing import Any

import numpy as np
from sklearn.datasets import load_digits

import netcl.autograd as ag
import netcl.distributed as dist
from netcl.core.tensor import from_numpy, manual_seed
from netcl.nn import Linear, Module, ReLU, Sequential, cross_entropy
from netcl.optim import Adam, Optimizer

TRAIN = 1440  # divisible by every batch size below that K divides: no ragged last batch


def state_bytes(optimizer: Optimizer | dist.ZeroRedundancyOptimizer) -> int:
    """Bytes of optimizer state this rank holds on its device."""
    return sum(buffer.nbytes for st in optimizer.state.values() for buffer in st.buffers.values())


def full_loss(model: Module, x: Any, y: Any) -> float:
    with ag.no_grad():
        return float(cross_entropy(model(x), y).item())


def save(path: str, model: Module, optimizer: Optimizer | dist.ZeroRedundancyOptimizer,
         epochs: int, rank: int) -> None:
    """Rank 0 writes the model and the whole optimizer state (a collective with ZeRO)."""
    if isinstance(optimizer, dist.ZeroRedundancyOptimizer):
        state = optimizer.consolidate_state_dict(to=0)
    else:
        state = optimizer.state_dict()
    if rank == 0:
        with open(path, "wb") as file:
            pickle.dump({"model": model.state_dict(), "optimizer": state, "epochs": epochs}, file)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=48, help="the global batch")
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bucket-cap-mb", type=float, default=25.0)
    parser.add_argument("--zero", action="store_true", help="ZeRO-1: shard Adam's state")
    parser.add_argument("--bf16-compress", action="store_true",
                        help="DDP sends bfloat16 gradients, summed in float32 "
                             "(comm_hooks.bf16_compress_hook)")
    parser.add_argument("--json", action="store_true", help="print a JSON summary last")
    parser.add_argument("--save", help="write a checkpoint here after the last epoch")
    parser.add_argument("--resume", help="start from this checkpoint")
    args = parser.parse_args()

    if args.zero and args.bf16_compress:
        parser.error("--bf16-compress is DistributedDataParallel's hook; ZeRO (--zero) "
                     "reduce-scatters float32")
    world = dist.init()
    if args.batch_size % world.size:
        raise SystemExit(
            f"ddp_digits: the global batch ({args.batch_size}) must split evenly over "
            f"{world.size} ranks; pick a world size that divides it"
        )
    local_batch = args.batch_size // world.size

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(args.seed).permutation(len(x))
    train, test = order[:TRAIN], order[TRAIN:]

    manual_seed(args.seed)
    q = world.device.queue
    model = Sequential(Linear(q, 64, args.hidden), ReLU(), Linear(q, args.hidden, 10))
    params = sum(p.size for p in model.parameters())
    first_epoch = 0
    if args.resume:
        with open(args.resume, "rb") as file:
            checkpoint = pickle.load(file)
        model.load_state_dict(checkpoint["model"])
        first_epoch = checkpoint["epochs"]
    optimizer: Optimizer | dist.ZeroRedundancyOptimizer
    if args.zero:
        # ZeRO replaces DDP: it equalises the replicas at construction and averages the
        # grads itself (reduce-scatter), so the model runs unwrapped.
        optimizer = dist.ZeroRedundancyOptimizer(model.parameters(), Adam, lr=args.lr)
        forward: Module = model
    else:
        ddp = dist.DistributedDataParallel(model, bucket_cap_mb=args.bucket_cap_mb)
        if args.bf16_compress:
            ddp.register_comm_hook(None, dist.comm_hooks.bf16_compress_hook)
        forward = ddp
        optimizer = Adam(model.parameters(), lr=args.lr)
    if args.resume:
        optimizer.load_state_dict(checkpoint["optimizer"])
    sampler = dist.DistributedSampler(TRAIN, world.size, world.rank, seed=args.seed)

    for epoch in range(first_epoch, args.epochs):
        sampler.set_epoch(epoch)
        mine = train[list(sampler)]
        for start in range(0, len(mine), local_batch):
            rows = mine[start:start + local_batch]
            xb, yb = from_numpy(x[rows], q), from_numpy(y[rows], q)
            with ag.Tape() as tape:
                loss = cross_entropy(forward(xb), yb)
            tape.backward(loss)
            optimizer.step()
            optimizer.zero_grad()

    if args.save:
        save(args.save, model, optimizer, args.epochs, world.rank)
    loss_value = full_loss(model, from_numpy(x[train], q), from_numpy(y[train], q))
    with ag.no_grad():
        predicted = model(from_numpy(x[test], q)).argmax(axis=1).numpy()
    accuracy = float((predicted == y[test]).mean())
    most_state = max(world.comm.allgather(state_bytes(optimizer)))
    if world.rank == 0:
        print(f"{world.size} rank(s) on {world.device.name}: loss {loss_value:.6f}, "
              f"test accuracy {accuracy:.3f}, optimizer state {most_state} B per rank")
        if args.json:
            print(json.dumps({"world_size": world.size, "loss": loss_value, "accuracy": accuracy,
                              "state_bytes_per_rank": most_state, "params": params}))


if __name__ == "__main__":
    main()
