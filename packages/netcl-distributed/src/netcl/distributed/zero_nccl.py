"""ZeRO-1's reduce-scatter and all-gather over NCCL, on memory CUDA allocated and OpenCL imported.

NCCL's ``ncclReduceScatter`` and ``ncclAllGather`` move equal counts per rank,
so the shards are cut evenly (:func:`netcl.distributed.shards.cut` with
``even``: ``ceil(total / N)`` elements a rank) and each flat bucket takes
``N * ceil(total / N)`` elements of two shared blocks, the tail padding:

* the gradient block: each parameter's grad home is its range there
  (``Tensor.set_grad_home``), so backward writes the gradients where NCCL
  averages them, and the reduce-scatter leaves this rank's averaged range in
  place (NCCL's in-place form, ``recvbuff = sendbuff + rank * count``), where
  the shard's optimizer reads it;
* the parameter block, a staging area: netcl-optim's flat layout keeps
  parameters only in memory netcl's pool allocated, so after the step each
  rank copies its updated range in on the device, NCCL all-gathers in place,
  and the whole bucket is copied back into the parameters on the device.

Nothing waits on the host: the collectives start from the communicator's
helper thread (:class:`netcl.distributed.nccl.CollectiveThread`) once an
OpenCL marker completes, and the queue waits for a user event the thread
sets when NCCL's stream is done, as DDP's NCCL reducer does.

The layout owner's own gradient buffer (an optimizer built before the grad
homes move, see :class:`ZeroRedundancyOptimizer`) stays allocated and unused:
one float32 copy of the gradients' size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

from netcl.core.tensor import Tensor, float32
from netcl.core.tensor.launch import marker, transfer, wait_for
from netcl.distributed import nccl
from netcl.distributed.shards import Shard, even_chunk, flat_view


class NcclShards:
    """The gradient and parameter blocks of ``shards`` (this rank's cut, in order), and the
    two collectives over ``communicator``."""

    def __init__(self, shards: Sequence[Shard], communicator: nccl.ShardCollectives) -> None:
        self._communicator = communicator
        self._base: dict[int, int] = {}  # by id(shard): its first element in both blocks
        at = 0
        for s in shards:
            self._base[id(s)] = at
            at += even_chunk(s.total, communicator.size) * communicator.size
        first = shards[0].param_flat
        device = first.device
        # Never freed, as NcclReducer's block (see its docstring): grad homes are views of it.
        self.grads = communicator.allocate(device.context, max(at, 1) * 4)
        self.params = communicator.allocate(device.context, max(at, 1) * 4)
        for block in (self.grads, self.params):
            # The padding is reduced and gathered too: zeros, not whatever was there.
            Tensor(block.buffer, (max(at, 1),), float32, device).fill_(0.0)
        for s in shards:
            base = self._base[id(s)]
            s.bucket_grads = Tensor(self.grads.buffer, (s.total,), float32, device, offset=base)
            for p, start in zip(s.params, s.starts, strict=True):
                p.set_grad_home(Tensor(self.grads.buffer, p.shape, p.dtype, device,
                                       offset=base + start))
        self._thread = nccl.collective_thread(communicator)

    def reduce_scatter(self, live: Sequence[Shard]) -> None:
        """Each live shard's range of the gradients becomes their mean over the ranks."""
        if not live:
            return
        self._thread.raise_if_failed()
        self._in_place(live, self._communicator.start_reduce_scatter, self.grads)
        for s in live:
            if s.tensor is not None:
                s.tensor.grad = flat_view(s.grad_flat(), s.lo, s.hi)

    def all_gather(self, live: Sequence[Shard]) -> None:
        """Every rank's stepped range of each live shard, into every rank's parameters."""
        if not live:
            return
        queue = live[0].param_flat.queue
        for s in live:
            if s.hi > s.lo:
                transfer(queue, self.params.buffer, s.param_flat.buffer,
                         byte_count=(s.hi - s.lo) * 4,
                         src_offset=(s.param_flat.offset + s.lo) * 4,
                         dst_offset=(self._base[id(s)] + s.lo) * 4)
        self._in_place(live, self._communicator.start_all_gather, self.params)
        for s in live:
            transfer(queue, s.param_flat.buffer, self.params.buffer, byte_count=s.total * 4,
                     src_offset=self._base[id(s)] * 4, dst_offset=s.param_flat.offset * 4)

    def _in_place(self, live: Sequence[Shard], start: Callable[[int, int], None],
                  block: nccl.Memory) -> None:
        """``start(address, count)`` over each live shard's padded range of ``block``, from
        the helper thread once everything queued so far is done; the queue then waits for
        them."""
        queue = live[0].param_flat.queue
        ready = marker(queue)
        queue.flush()  # so that the marker completes without anyone waiting on the queue
        size = self._communicator.size
        for s in live:
            self._thread.start_after(ready, partial(
                start, block.pointer + self._base[id(s)] * 4, even_chunk(s.total, size)))
        wait_for(queue, self._thread.done(queue.context))
