"""The NCCL reducer's ordering and in-place layout, on any device, with a stand-in for NCCL.

The stand-in "averages over three ranks whose gradients are g, 2g and 3g": it
reads the range from its own OpenCL queue once the reducer's helper thread
starts it, sleeps (a slow collective), and writes back 2g. Every result below
is then exactly twice one process's gradient, and would not be if a collective
read a bucket before backward had written it, or if anything on the model's
queue (a read, the optimizer) ran before the collective had written it back.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyopencl as cl
import pytest
from mpi4py import MPI

import netcl.autograd as ag
from netcl.core.device import manager
from netcl.core.tensor import Tensor, from_numpy, manual_seed
from netcl.core.tensor.launch import transfer
from netcl.distributed import nccl
from netcl.distributed.reducer import NcclReducer
from netcl.nn import Linear, Module, ReLU, Sequential, cross_entropy
from netcl.optim import Adam

device = manager.default("auto")
BASE = 1 << 40  # the stand-in's "device address" of its memory's first byte


@dataclass
class Memory:
    buffer: cl.Buffer
    pointer: int


@dataclass(eq=False)
class Collectives:
    fail: bool = False
    memory: Memory | None = None  # the last allocated
    allocated: list[Memory] = field(default_factory=list)
    calls: list[tuple[int, int, int]] = field(default_factory=list)  # first, count, thread
    queue: cl.CommandQueue = field(default_factory=lambda: cl.CommandQueue(device.context))

    def allocate(self, context: cl.Context, nbytes: int) -> Memory:
        base = BASE * (len(self.allocated) + 1)  # far apart: each block's addresses its own
        self.memory = Memory(cl.Buffer(context, cl.mem_flags.READ_WRITE, nbytes), base)
        self.allocated.append(self.memory)
        return self.memory

    def bind_thread(self) -> None:
        pass

    def start_all_reduce(self, send: int, count: int, recv: int | None = None,
                         average: bool = False) -> None:
        assert recv is None and average
        if self.fail:
            raise RuntimeError("simulated NCCL failure")
        (memory,) = [m for m in self.allocated if 0 <= send - m.pointer < BASE]
        offset = send - memory.pointer
        values = np.empty(count, np.float32)
        transfer(self.queue, values, memory.buffer, src_offset=offset, is_blocking=True)
        time.sleep(0.05)
        transfer(self.queue, memory.buffer, values * np.float32(2), dst_offset=offset,
                 is_blocking=True)
        self.calls.append((offset // 4, count, threading.get_ident()))

    def synchronize(self) -> None:
        pass  # the stand-in's copies were blocking


def model() -> Module:
    manual_seed(5)
    return Sequential(Linear(device.queue, 7, 33), ReLU(), Linear(device.queue, 33, 5))


def batch(seed: int) -> tuple[Tensor, Tensor]:
    rng = np.random.default_rng(seed)
    return (from_numpy(rng.standard_normal((9, 7)).astype(np.float32), device.queue),
            from_numpy(rng.integers(0, 5, 9), device.queue))


def backward(net: Module, seed: int) -> None:
    x, y = batch(seed)
    with ag.Tape() as tape:
        loss = cross_entropy(net(x), y)
    tape.backward(loss)


def backward_averaged(net: Module, seed: int) -> None:
    """What one process holds after ranks holding g, 2g and 3g average: 2g."""
    backward(net, seed)
    for p in net.parameters():
        assert p.grad is not None
        p.grad.mul_(2.0)


@pytest.mark.parametrize("optimizer_first", [False, True])
def test_two_steps_equal_one_process_with_the_average_of_three_ranks(
    optimizer_first: bool,
) -> None:
    reduced, alone = model(), model()
    collectives = Collectives()
    optimizer: Any = Adam(reduced.parameters(), lr=0.01) if optimizer_first else None
    reducer = NcclReducer(list(reduced.named_parameters()), MPI.COMM_SELF, 200, collectives)
    optimizer = optimizer or Adam(reduced.parameters(), lr=0.01)
    reference = Adam(alone.parameters(), lr=0.01)
    assert len(reducer.buckets) > 1
    memory = collectives.memory
    assert memory is not None
    (flat,) = optimizer.flat_layout.buckets
    # Built after the reducer, the optimizer's flat grad buffer is the shared memory itself.
    assert (flat.grad_flat.buffer is memory.buffer) is not optimizer_first
    for seed in (1, 2):
        backward(reduced, seed)
        backward_averaged(alone, seed)
        for a, b in zip(reduced.parameters(), alone.parameters(), strict=True):
            assert a.grad is not None and b.grad is not None
            np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())
        optimizer.step()
        reference.step()
        optimizer.zero_grad()
        reference.zero_grad()
    for a, b in zip(reduced.parameters(), alone.parameters(), strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    reducer.check_finished("test")
    # Each bucket's range once a step, from the helper thread, the ranges tiling the memory.
    total = sum(p.size for p in reduced.parameters())
    ranges = sorted((first, count) for first, count, _ in collectives.calls[:len(reducer.buckets)])
    assert [first for first, _ in ranges] == [0, *np.cumsum([c for _, c in ranges])[:-1]]
    assert sum(count for _, count in ranges) == total
    assert len(collectives.calls) == 2 * len(reducer.buckets)
    # Exactly one thread started them all, and not the main thread.
    (thread,) = {thread for _, _, thread in collectives.calls}
    assert thread != threading.get_ident()


def test_a_failed_collective_is_raised_on_the_main_thread() -> None:
    net = model()
    collectives = Collectives(fail=True)
    reducer = NcclReducer(list(net.named_parameters()), MPI.COMM_SELF, 1 << 20, collectives)
    backward(net, 1)
    device.synchronize()  # the queue waited for the thread, which had failed by then
    with pytest.raises(RuntimeError, match="a collective failed") as raised:
        reducer.check_finished("DistributedDataParallel forward")
    assert "simulated NCCL failure" in str(raised.value.__cause__)
    assert "no further collectives will run on this communicator" in str(raised.value)


def test_a_failure_completing_an_event_is_recorded_and_later_events_still_complete() -> None:
    """set_status raising must neither end the helper thread, which would leave every later
    done() event, and so the queue, waiting for ever, nor go unreported. The raising event is
    a stand-in: completing a real event twice raises on PoCL but not on NVIDIA's driver."""

    class Refusing(cl.UserEvent):  # type: ignore[misc]
        def set_status(self, status: int) -> None:
            raise cl.LogicError("clSetUserEventStatus: the event is already complete")

    thread = nccl.CollectiveThread(Collectives())
    refusing = Refusing(device.context)
    thread._work.put(refusing)
    later = thread.done(device.context)
    deadline = time.monotonic() + 10
    while (later.command_execution_status != cl.command_execution_status.COMPLETE
           and time.monotonic() < deadline):
        time.sleep(0.01)
    assert later.command_execution_status == cl.command_execution_status.COMPLETE
    with pytest.raises(RuntimeError, match="no further collectives") as raised:
        thread.raise_if_failed()
    assert isinstance(raised.value.__cause__, cl.Error)


def test_two_reducers_over_one_communicator_share_its_thread() -> None:
    """Two wrapped models (a GAN's generator and discriminator) over one communicator: their
    collectives start from one thread, in the order backward asked for them."""
    collectives = Collectives()
    first, second = model(), model()
    reducers = [NcclReducer(list(net.named_parameters()), MPI.COMM_SELF, 1 << 20, collectives)
                for net in (first, second)]
    assert reducers[0]._collectives is reducers[1]._collectives
    backward(first, 1)
    backward(second, 2)
    device.synchronize()
    assert len(collectives.calls) == 2 and len({thread for _, _, thread in collectives.calls}) == 1
