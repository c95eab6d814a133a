"""ZeRO over NCCL, on any device, with a stand-in for NCCL (the real calls need NVIDIA GPUs).

The stand-in plays rank ``rank`` of three whose gradients are g, 2g and 3g: its
reduce-scatter reads the whole padded bucket from its own OpenCL queue once the
helper thread starts it, sleeps (a slow collective), and writes 2g into this
rank's range; its all-gather fills the other ranks' ranges with what they would
have stepped to (a reference optimizer over the whole model, stepped with 2g),
leaving this rank's own. Two steps then equal one process stepping 2g bit for
bit, and would not if a collective read the gradients before backward wrote
them, if the shard's optimizer or the copy back ran before a collective had
written, or if a range or its padding were misplaced.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyopencl as cl
import pytest
from mpi4py import MPI
from test_nccl_ordering import backward, backward_averaged

import netcl.distributed as dist
from netcl.core.device import manager
from netcl.core.tensor import Parameter, Tensor, float16, manual_seed
from netcl.core.tensor.launch import transfer
from netcl.distributed.shards import even_chunk
from netcl.nn import Linear, Module, ReLU, Sequential
from netcl.optim import Adam

device = manager.default("auto")
BASE = 1 << 40  # the stand-in's "device address" of a block's first byte
RANKS = 3


@dataclass
class Memory:
    buffer: cl.Buffer
    pointer: int


@dataclass(eq=False)
class ShardCollectives:
    rank: int
    others: Callable[[int, int], np.ndarray]  # (first element, count) -> their values
    size: int = RANKS
    allocated: list[Memory] = field(default_factory=list)
    calls: list[tuple[str, int, int, int]] = field(default_factory=list)
    queue: cl.CommandQueue = field(default_factory=lambda: cl.CommandQueue(device.context))

    def allocate(self, context: cl.Context, nbytes: int) -> Memory:
        memory = Memory(cl.Buffer(context, cl.mem_flags.READ_WRITE, nbytes),
                        BASE * (len(self.allocated) + 1))
        self.allocated.append(memory)
        return memory

    def bind_thread(self) -> None:
        pass

    def start_all_reduce(self, send: int, count: int, recv: int | None = None,
                         average: bool = False) -> None:
        raise AssertionError("ZeRO reduce-scatters and all-gathers; it never all-reduces")

    def synchronize(self) -> None:
        pass  # the stand-in's copies were blocking

    def _at(self, address: int) -> tuple[Memory, int]:
        (memory,) = [m for m in self.allocated if 0 <= address - m.pointer < BASE]
        return memory, (address - memory.pointer) // 4

    def start_reduce_scatter(self, base: int, count: int) -> None:
        memory, first = self._at(base)
        values = np.empty(count * self.size, np.float32)
        transfer(self.queue, values, memory.buffer, src_offset=first * 4, is_blocking=True)
        time.sleep(0.05)
        mine = values[self.rank * count:(self.rank + 1) * count] * np.float32(2)
        transfer(self.queue, memory.buffer, mine, dst_offset=(first + self.rank * count) * 4,
                 is_blocking=True)
        self.calls.append(("reduce_scatter", first, count, threading.get_ident()))

    def start_all_gather(self, base: int, count: int) -> None:
        memory, first = self._at(base)
        time.sleep(0.05)
        for r in range(self.size):
            if r != self.rank:
                at = first + r * count
                transfer(self.queue, memory.buffer, self.others(at, count), dst_offset=at * 4,
                         is_blocking=True)
        self.calls.append(("all_gather", first, count, threading.get_ident()))


def model() -> Module:
    manual_seed(5)
    # 7 * 31 + 31 = 248, 31 * 5 = 155 and 5 parameters: none divides by 3 ranks.
    return Sequential(Linear(device.queue, 7, 31), ReLU(), Linear(device.queue, 31, 5))


def groups(net: Module) -> list[dict[str, object]]:
    # The last two are groups of one parameter: no flat bucket, a shard of their own.
    w1, b1, w2, b2 = net.parameters()
    return [{"params": [w1, b1]}, {"params": [w2], "lr": 0.02}, {"params": [b2], "lr": 0.03}]


def padded(net: Module) -> np.ndarray:
    """The reference's parameters laid out as the stand-in's blocks: each group padded to a
    multiple of the ranks."""
    out = []
    for group in groups(net):
        values = np.concatenate([p.numpy().ravel() for p in group["params"]])  # type: ignore[attr-defined]
        out.append(np.pad(values, (0, even_chunk(values.size, RANKS) * RANKS - values.size)))
    return np.concatenate(out).astype(np.float32)


@pytest.mark.parametrize("rank", [0, 2])
def test_two_steps_equal_one_process_with_the_average_of_three_ranks(rank: int) -> None:
    sharded, alone = model(), model()
    expected: list[np.ndarray] = []
    collectives = ShardCollectives(rank, lambda at, count: expected[-1][at:at + count])
    world = dist.World(MPI.COMM_SELF, rank, RANKS, 0, 1, device, "nccl", "a stand-in",
                       collectives)  # type: ignore[arg-type]
    zero = dist.ZeroRedundancyOptimizer(groups(sharded), Adam, world=world, lr=0.01)
    reference = Adam(groups(alone), lr=0.01)
    # Even cuts: this rank's ranges are ceil(total / 3) long, the last rank's cut short.
    own = [min(even_chunk(n, RANKS), n - min(rank * even_chunk(n, RANKS), n))
           for n in (248, 155, 5)]
    for seed in (1, 2):
        backward(sharded, seed)
        backward_averaged(alone, seed)
        reference.step()
        expected.append(padded(alone))
        zero.step()
        for a, b in zip(sharded.parameters(), alone.parameters(), strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
        zero.zero_grad()
        reference.zero_grad()
    assert zero.state_bytes() == 8 * sum(own)
    # Per step: the groups' reduce-scatters, then their all-gathers, each over its padded
    # block (3 * 83 = 249, 3 * 52 = 156, 3 * 2 = 6), from one thread that is not the main one.
    blocks = [(0, 83), (249, 52), (405, 2)]
    per_step = [(kind, first, count) for kind in ("reduce_scatter", "all_gather")
                for first, count in blocks]
    assert [call[:3] for call in collectives.calls] == 2 * per_step
    (thread,) = {call[3] for call in collectives.calls}
    assert thread != threading.get_ident()


def stand_in_world() -> tuple[dist.World, ShardCollectives]:
    collectives = ShardCollectives(1, lambda at, count: np.zeros(count, np.float32))
    world = dist.World(MPI.COMM_SELF, 1, RANKS, 0, 1, device, "nccl", "a stand-in",
                       collectives)  # type: ignore[arg-type]
    return world, collectives


def test_gradients_land_in_the_memory_nccl_reduces() -> None:
    net = model()
    world, collectives = stand_in_world()
    # Groups from generators: read once to home the grads, once by the optimizer.
    zero = dist.ZeroRedundancyOptimizer(
        ({**group, "params": iter(group["params"])} for group in groups(net)),  # type: ignore[call-overload]
        Adam, world=world, lr=0.01)
    grads, _ = collectives.allocated
    # The layout owner adopted the homes: its flat grad buffer is that memory, not a copy.
    (bucket,) = zero._layout_owner.flat_layout.buckets
    assert bucket.grad_flat.buffer is grads.buffer and bucket.grad_flat.offset == 0
    backward(net, 3)
    starts = [0, 217, 249, 405]  # each group's block padded to a multiple of 3
    for p, start in zip(net.parameters(), starts, strict=True):
        assert p.grad is not None and p.grad.buffer is grads.buffer, "a grad outside the block"
        assert p.grad.offset == start


def test_a_failed_construction_leaves_the_grad_homes_as_they_were() -> None:
    net = model()
    world, _ = stand_in_world()
    with pytest.raises(ValueError, match="lr"):
        dist.ZeroRedundancyOptimizer(net.parameters(), Adam, world=world, lr=-1.0)
    assert all(p.grad_home is None for p in net.parameters())


def test_a_parameter_in_memory_netcl_did_not_allocate_is_refused() -> None:
    net = model()
    w1, b1, w2, b2 = net.parameters()
    outside = cl.Buffer(device.context, cl.mem_flags.READ_WRITE, w2.nbytes)
    foreign = Parameter(Tensor(outside, w2.shape, w2.dtype, device))
    world, collectives = stand_in_world()
    with pytest.raises(TypeError, match=r"memory NCCL reduces.*backend='mpi'"):
        dist.ZeroRedundancyOptimizer([w1, b1, foreign, b2], Adam, world=world, lr=0.01)
    assert collectives.allocated == [] and w1.grad_home is None


def test_a_parameter_that_is_not_float32_is_refused_before_anything_moves() -> None:
    net = model()
    w1, b1, w2, b2 = net.parameters()
    half = Parameter(w2.astype(float16))
    world, collectives = stand_in_world()
    with pytest.raises(TypeError, match=r"param_groups\[0\]\[2\] has dtype float16"):
        dist.ZeroRedundancyOptimizer([w1, b1, half, b2], Adam, world=world, lr=0.01)
    assert collectives.allocated == []
    assert all(p.grad_home is None for p in (w1, b1, half, b2))


class Disagreeing:
    """COMM_SELF, but its all-gather shows a second rank whose model lacks the last tensor."""

    def __init__(self) -> None:
        self.comm = MPI.COMM_SELF

    def __getattr__(self, name: str) -> Any:
        return getattr(self.comm, name)

    def allgather(self, mine: list[Any]) -> list[list[Any]]:
        return [mine, mine[:-1]]


def test_ranks_that_disagree_leave_the_grad_homes_as_they_were() -> None:
    net = model()
    world, _ = stand_in_world()
    world = dataclasses.replace(world, comm=Disagreeing())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rank 1 has 3 parameters"):
        dist.ZeroRedundancyOptimizer(net.parameters(), Adam, world=world, lr=0.01)
    assert all(p.grad_home is None for p in net.parameters())


@pytest.mark.parametrize("params", [[], [{"params": []}], [{"params": []}, {"params": []}]],
                         ids=["no parameters", "an empty group", "two empty groups"])
def test_no_parameters_is_refused_as_the_optimizer_refuses_it(params: list[Any]) -> None:
    world, collectives = stand_in_world()
    with pytest.raises(ValueError, match="empty parameter list"):
        dist.ZeroRedundancyOptimizer(params, Adam, world=world, lr=0.01)
    assert collectives.allocated == []
