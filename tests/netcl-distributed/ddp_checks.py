"""DistributedDataParallel's mechanics, checked on every rank; run by test_ddp.py under mpiexec.

Each check raises AssertionError on a rank where it fails, which aborts the job
(init() installs that), so the test sees a non-zero exit with the message.
"""

from __future__ import annotations

import gc
import os
import re
from typing import Any

import numpy as np
from local_steps import backward, grads

import netcl.autograd as ag
import netcl.distributed as dist
from netcl.core.tensor import Tensor, from_numpy, manual_seed
from netcl.distributed import reducer as reducer_module
from netcl.distributed.bf16_reducer import Bf16Reducer
from netcl.nn import Linear, Module, ReLU, Sequential
from netcl.optim import Adam

world = dist.init()
rank, size, q = world.rank, world.size, world.device.queue
# The ranks share the machine's cores instead of each PoCL starting a thread per core.
assert os.environ["POCL_MAX_PTHREAD_COUNT"] == str(max(1, (os.cpu_count() or 1) // size))
rng = np.random.default_rng(rank)  # each rank its own data
# PoCL imports no CUDA memory: the job says so and averages through the host.
assert world.backend == "mpi", world.backend
assert "lacks cl_khr_external_memory_opaque_fd" in world.backend_reason, world.backend_reason


class CountingComm:
    """The world communicator, counting the all-reduces started through it."""

    def __init__(self, comm: Any) -> None:
        self.comm, self.started = comm, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.comm, name)

    def Iallreduce(self, *args: Any, **kwargs: Any) -> Any:
        self.started += 1
        return self.comm.Iallreduce(*args, **kwargs)


def batch() -> tuple[Tensor, Tensor]:
    x = rng.standard_normal((6, 5)).astype(np.float32)
    return from_numpy(x, q), from_numpy(rng.integers(0, 3, 6), q)


def all_started(bucket: reducer_module.Bucket) -> bool:
    return bool(bucket.chunks) and all(c.started for c in bucket.chunks)


def check(optimizer_first: bool, chunk_bytes: int) -> None:
    """``chunk_bytes`` of 40 cuts the buckets (24 and 42 floats) into chunks of 10 floats that
    start and end inside parameters; the default cuts none."""
    reducer_module.CHUNK_BYTES = chunk_bytes
    chunks = [-(-24 * 4 // chunk_bytes), -(-42 * 4 // chunk_bytes)]
    manual_seed(100 + rank)  # different weights on every rank: the wrap must equalise them
    model = Sequential(Linear(q, 5, 7), ReLU(), Linear(q, 7, 3))
    if optimizer_first:
        Adam(model.parameters())  # its flat layout holds the grads; the buckets adopt its ranges
    w1, b1, _, _ = model.parameters()
    seen: dict[str, object] = {}
    # Hooks registered before the wrap run before the wrapper's on the same parameter: at
    # b1 (the last bucket's first grad) the device catches up, so the wrapper finds the first
    # bucket's host copy done and starts its all-reduce; at w1 (its last grad) we look.
    ag.register_post_accumulate_grad_hook(b1, lambda t: q.finish())
    ag.register_post_accumulate_grad_hook(w1, lambda t: seen.update(
        first=all_started(reducer.buckets[0]), last=all_started(reducer.buckets[1]),
        at=counting.started))
    ddp = dist.DistributedDataParallel(model, bucket_cap_mb=60 / 2**20)  # 60 B: 2 buckets
    reducer = ddp._reducer
    assert reducer is not None and ddp.bucket_sizes == [2, 2], ddp.bucket_sizes
    counting = CountingComm(reducer.comm)
    reducer.comm = counting  # type: ignore[assignment]

    # Equal replicas after the wrap.
    everyone = world.comm.allgather([p.numpy() for p in model.parameters()])
    for theirs in everyone:
        for a, b in zip(theirs, everyone[0], strict=True):
            np.testing.assert_array_equal(a, b)

    # One all-reduce per chunk, the first bucket's started while the last bucket's grads were
    # not all in.
    xa, ya = batch()
    with ddp.no_sync():
        backward(ddp, xa, ya)
    local = grads(model)
    assert counting.started == 0
    model.zero_grad()
    backward(ddp, xa, ya)
    assert counting.started == sum(chunks), (counting.started, chunks)
    assert seen["first"] and not seen["last"] and seen["at"] == chunks[0], seen
    all_local = world.comm.allgather(local)
    for i, got in enumerate(grads(model)):
        want = np.mean([theirs[i] for theirs in all_local], axis=0)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    if optimizer_first:
        assert all(len(b.copies) == 1 for b in reducer.buckets), "a bucket took several copies"

    # no_sync accumulates locally; the next synced backward averages the sum.
    model.zero_grad()
    xb, yb = batch()
    with ddp.no_sync():
        backward(ddp, xa, ya)
        backward(ddp, xa, ya)
    unsynced = grads(model)
    backward(ddp, xb, yb)
    model.zero_grad()
    with ddp.no_sync():
        backward(ddp, xb, yb)
    local_b = grads(model)
    want_all = world.comm.allgather([u + g for u, g in zip(unsynced, local_b, strict=True)])
    model.zero_grad()
    with ddp.no_sync():
        backward(ddp, xa, ya)
        backward(ddp, xa, ya)
    backward(ddp, xb, yb)
    for i, got in enumerate(grads(model)):
        want = np.mean([theirs[i] for theirs in want_all], axis=0)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def check_unused_parameter_is_reported() -> None:
    class TwoHeads(Module):
        def __init__(self) -> None:
            super().__init__()
            self.used, self.unused = Linear(q, 5, 3), Linear(q, 5, 3)

        def forward(self, x: Tensor) -> Tensor:
            return self.used(x)  # type: ignore[no-any-return]

    ddp = dist.DistributedDataParallel(TwoHeads())
    x, y = batch()
    backward(ddp, x, y)
    try:
        ddp(x)
    except RuntimeError as error:
        assert "unused.weight" in str(error) and "unused.bias" in str(error), error
    else:
        raise AssertionError("a parameter without a grad was not reported")


def check_a_dropped_wrapper_stops_averaging() -> None:
    manual_seed(5)
    model = Sequential(Linear(q, 5, 3))
    ddp = dist.DistributedDataParallel(model)
    x, y = batch()
    backward(ddp, x, y)
    first = world.comm.allgather(grads(model))
    assert all(np.array_equal(a[0], first[0][0]) for a in first)
    del ddp
    gc.collect()
    model.zero_grad()
    backward(model, x, y)  # each rank's own batch: its own gradient, sent nowhere
    second = world.comm.allgather(grads(model))
    assert not any(np.array_equal(a[0], second[0][0]) for a in second[1:])


def check_a_bad_hook_on_one_rank_raises_on_every_rank() -> None:
    """Only the last rank passes each bad argument; every rank raises the same error, and the
    wrapper keeps averaging as before (a rank that raised alone would leave the others waiting
    in the collective)."""
    ddp = dist.DistributedDataParallel(Sequential(Linear(q, 5, 3)))
    reducer = ddp._reducer
    bf16, last = dist.comm_hooks.bf16_compress_hook, size - 1
    cases = [
        (("group", bf16), TypeError, f"pass None, got str on rank {last}"),
        ((None, lambda state, bucket: None), TypeError, f"built-ins .* on rank {last}"),
        ((None, dist.comm_hooks.allreduce_hook), ValueError, "every rank must register the same"),
    ]
    for bad, error, match in cases:
        try:
            ddp.register_comm_hook(*(bad if rank == last else (None, bf16)))
        except error as raised:
            assert re.search(match, str(raised)), (rank, raised)
        else:
            raise AssertionError(f"rank {rank}: no {error.__name__} matching {match!r}")
        assert ddp._comm_hook is None and ddp._reducer is reducer, rank
    ddp.register_comm_hook(None, bf16)  # agreed on every rank: taken
    assert isinstance(ddp._reducer, Bf16Reducer)


check(optimizer_first=False, chunk_bytes=reducer_module.CHUNK_BYTES)
check(optimizer_first=True, chunk_bytes=reducer_module.CHUNK_BYTES)
check(optimizer_first=True, chunk_bytes=40)
check_unused_parameter_is_reported()
check_a_dropped_wrapper_stops_averaging()
check_a_bad_hook_on_one_rank_raises_on_every_rank()
print(f"rank {rank} of {size}: ddp checks passed")
