"""DDP with bf16_compress_hook, checked on every rank; run by test_bf16.py under mpiexec.

Each check raises AssertionError on a rank where it fails, which aborts the job
(init() installs that), so the test sees a non-zero exit with the message.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from bf16_reference import reference
from local_steps import backward, grads

import netcl.distributed as dist
from netcl.core.tensor import Tensor, from_numpy, manual_seed
from netcl.distributed import comm_hooks
from netcl.distributed import reducer as reducer_module
from netcl.distributed.bf16_reducer import Bf16Reducer
from netcl.nn import Linear, ReLU, Sequential
from netcl.optim import Adam

world = dist.init()
rank, size, q = world.rank, world.size, world.device.queue
rng = np.random.default_rng(rank)  # each rank its own data


class CountingComm:
    """The world communicator, counting the bytes each rank sends through its collectives."""

    def __init__(self, comm: Any) -> None:
        self.comm, self.sent, self.calls = comm, 0, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.comm, name)

    def Iallgather(self, send: np.ndarray[Any, Any], receive: Any) -> Any:
        self.sent += send.nbytes
        self.calls += 1
        return self.comm.Iallgather(send, receive)

    def Iallreduce(self, in_place: Any, data: np.ndarray[Any, Any], **kwargs: Any) -> Any:
        self.sent += data.nbytes
        self.calls += 1
        return self.comm.Iallreduce(in_place, data, **kwargs)


def batch() -> tuple[Tensor, Tensor]:
    # Inputs with a wide range of magnitudes, so that the gradients' bfloat16 roundings and
    # the float32 sums in rank order both matter.
    x = (rng.standard_normal((6, 5)) * np.exp(rng.uniform(-6, 6, (6, 5)))).astype(np.float32)
    return from_numpy(x, q), from_numpy(rng.integers(0, 3, 6), q)


def check(optimizer_first: bool, chunk_bytes: int) -> None:
    """``chunk_bytes`` of 40 cuts the buckets (24 and 42 floats) into chunks of 10 floats that
    start and end inside parameters; the default cuts none."""
    reducer_module.CHUNK_BYTES = chunk_bytes
    manual_seed(7)
    model = Sequential(Linear(q, 5, 7), ReLU(), Linear(q, 7, 3))
    if optimizer_first:
        Adam(model.parameters())  # its flat layout: a bucket's gradients are one device range
    ddp = dist.DistributedDataParallel(model, bucket_cap_mb=60 / 2**20)  # 60 B: 2 buckets
    ddp.register_comm_hook(None, comm_hooks.bf16_compress_hook)
    reducer = ddp._reducer
    assert isinstance(reducer, Bf16Reducer), type(reducer)
    assert all(b.host.dtype == np.uint16 for b in reducer.buckets)
    counting = CountingComm(reducer.comm)
    reducer.comm = counting  # type: ignore[assignment]

    xa, ya = batch()
    with ddp.no_sync():
        backward(ddp, xa, ya)
    local = grads(model)
    assert counting.calls == 0
    for _ in range(2):  # the second backward reuses the host and device buffers
        model.zero_grad()
        backward(ddp, xa, ya)
        got = grads(model)
        everyone = world.comm.allgather(got)
        all_local = world.comm.allgather(local)
        for i, mine in enumerate(got):
            for theirs in everyone:  # every rank holds the same bits
                assert mine.tobytes() == theirs[i].tobytes(), (i, rank)
            np.testing.assert_array_equal(mine, reference([t[i] for t in all_local]))
    # Half of float32's bytes: each parameter's gradient sent once, 2 bytes an element.
    params = sum(p.size for p in model.parameters())
    assert counting.sent == 2 * 2 * params, (counting.sent, params)
    # The bfloat16 rounding happened: the float32 mean differs, by at most each rank's
    # rounding to bfloat16 (8 significant bits: 2**-8 of |g_r|) plus the float32 sums'
    # (2**-24 of the partial sums, at most K * mean |g_r| before the division) and product.
    def flat(arrays: list[np.ndarray[Any, Any]]) -> np.ndarray[Any, Any]:
        return np.concatenate([a.ravel() for a in arrays])

    mean = np.mean([flat(t) for t in all_local], axis=0, dtype=np.float64)
    averaged = flat(got)
    assert not np.array_equal(averaged, mean.astype(np.float32))
    magnitude = np.mean([np.abs(flat(t)) for t in all_local], axis=0, dtype=np.float64)
    bound = (2.0**-8 + 2.0**-23 * size) * magnitude + 2.0**-24 * np.abs(averaged)
    assert np.all(np.abs(averaged - mean) <= bound), np.max(np.abs(averaged - mean) / bound)


def check_ranks_that_disagree_are_told() -> None:
    ddp = dist.DistributedDataParallel(Sequential(Linear(q, 5, 3)))
    before = ddp._reducer
    mixed = comm_hooks.bf16_compress_hook if rank == 0 else comm_hooks.allreduce_hook
    try:
        ddp.register_comm_hook(None, mixed)
    except ValueError as e:  # on every rank
        assert "same hook" in str(e) and "bf16_compress_hook" in str(e), e
    else:
        raise AssertionError("ranks registered different hooks unnoticed")
    assert ddp._reducer is before and ddp._comm_hook is None  # nothing changed


default_chunk = reducer_module.CHUNK_BYTES
check(optimizer_first=False, chunk_bytes=default_chunk)
check(optimizer_first=True, chunk_bytes=default_chunk)
check(optimizer_first=True, chunk_bytes=40)
check(optimizer_first=False, chunk_bytes=40)
check_ranks_that_disagree_are_told()
print(f"rank {rank} of {size}: bf16 checks passed")
