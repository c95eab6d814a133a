"""netcl's OpenCL kernels and NCCL on the same GPU memory (NVIDIA only; skipped elsewhere).

The memory is allocated by the CUDA driver and imported into OpenCL; a netcl
kernel writes it, a single-rank NCCL communicator sums it into a second such
buffer, and netcl reads that back: bit for bit, since a sum over one rank is
the value itself.
"""

from __future__ import annotations

import numpy as np
import pytest
from mpi4py import MPI

import netcl.autograd as ag
from netcl.core.device import manager
from netcl.core.tensor import float32, from_buffer, from_numpy, manual_seed
from netcl.distributed import nccl
from netcl.distributed.reducer import NcclReducer
from netcl.nn import Linear, Module, ReLU, Sequential, cross_entropy
from netcl.optim import Adam

device = manager.default("auto")
why_not = nccl.unavailable(device.cl_device)


@pytest.mark.skipif(why_not is not None, reason=f"no NCCL path: {why_not}")
def test_opencl_kernels_and_nccl_share_memory() -> None:
    n = 1 << 20
    sent = nccl.SharedBuffer(device.context, device.cl_device, n * 4)
    summed = nccl.SharedBuffer(device.context, device.cl_device, n * 4)
    communicator = nccl.Communicator(MPI.COMM_SELF, device.cl_device)
    try:
        values = np.random.default_rng(0).standard_normal(n).astype(np.float32)
        written = from_buffer(sent.buffer, (n,), float32, device.queue)
        written.copy_(from_numpy(values, device.queue))
        written.mul_(3.0)  # a netcl kernel writes the shared memory
        communicator.all_reduce(device.queue, sent.pointer, n, recv=summed.pointer)
        got = from_buffer(summed.buffer, (n,), float32, device.queue).numpy()
        np.testing.assert_array_equal(got, values * np.float32(3.0))
    finally:
        communicator.close()
        sent.close()
        summed.close()


@pytest.mark.skipif(why_not is not None, reason=f"no NCCL path: {why_not}")
@pytest.mark.parametrize("optimizer_first", [False, True])
def test_the_nccl_reducer_averages_in_place_on_the_device(optimizer_first: bool) -> None:
    """Over one rank the average is the gradient itself, so every element must come back
    exactly where it was, whatever the bucket cuts: in place in the shared memory (the
    optimizer built after the reducer adopts it as its flat grad buffer), or copied in and
    back (the optimizer built first keeps its own), and so must two Adam steps."""
    def model() -> Module:
        manual_seed(5)
        return Sequential(Linear(device.queue, 7, 33), ReLU(), Linear(device.queue, 33, 5))

    reduced, alone = model(), model()
    first = Adam(reduced.parameters(), lr=0.01) if optimizer_first else None
    communicator = nccl.Communicator(MPI.COMM_SELF, device.cl_device)
    reducer = NcclReducer(list(reduced.named_parameters()), MPI.COMM_SELF, 200, communicator)
    optimizer = first or Adam(reduced.parameters(), lr=0.01)
    reference = Adam(alone.parameters(), lr=0.01)
    assert len(reducer.buckets) > 1
    (flat,) = optimizer.flat_layout.buckets
    assert (flat.grad_flat.buffer is reducer.shared.buffer) is not optimizer_first
    rng = np.random.default_rng(1)
    for _ in range(2):
        x = from_numpy(rng.standard_normal((9, 7)).astype(np.float32), device.queue)
        y = from_numpy(rng.integers(0, 5, 9), device.queue)
        for net in (reduced, alone):
            with ag.Tape() as tape:
                loss = cross_entropy(net(x), y)
            tape.backward(loss)
        for a, b in zip(reduced.parameters(), alone.parameters(), strict=True):
            assert a.grad is not None and b.grad is not None
            np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())
        for opt in (optimizer, reference):
            opt.step()
            opt.zero_grad()
    for a, b in zip(reduced.parameters(), alone.parameters(), strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    reducer.check_finished("test")  # every bucket was reduced, and no collective failed


@pytest.mark.skipif("cl_khr_external_memory_opaque_fd" in device.cl_device.extensions,
                    reason="the device imports external memory")
def test_a_device_without_external_memory_says_so() -> None:
    assert why_not == (f"the OpenCL device {device.cl_device.name!r} lacks "
                       "cl_khr_external_memory_opaque_fd")
