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

The grad homes are set before ZeRO builds its layout owner, so the owner's
flat grad buffers are the gradient block itself: no second copy of the
gradients is allocated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

from netcl.core.tensor import Tensor, float32
from netcl.core.tensor.launch import marker, transfer, wait_for
from netcl.distributed import nccl
from netcl.distributed.replicas import refuse_unless_float32
from netcl.distributed.shards import Shard, even_chunk
from netcl.optim.flat_layout import unmovable_reason


class NcclShards:
    """The gradient and parameter blocks of ZeRO over NCCL, and its two collectives.

    Made before the layout owner (the optimizer ZeRO builds to lay the
    parameters out flat) from the param groups' parameters: each group takes
    ``N * ceil(total / N)`` elements of each block, and every parameter's grad
    home is its range of the gradient block, so the owner adopts those homes as
    its flat grad buffer (they tile it in order) instead of allocating one.
    ``attach`` then takes the shards cut from the owner's layout, one a group.
    """

    def __init__(self, groups: Sequence[Sequence[Tensor]],
                 communicator: nccl.ShardCollectives) -> None:
        """``groups``: each param group's parameters, none empty; checked before any memory
        is allocated."""
        named = [(f"param_groups[{g}][{i}]", p) for g, params in enumerate(groups)
                 for i, p in enumerate(params)]
        refuse_unless_float32(named, "ZeroRedundancyOptimizer")
        for name, p in named:
            why = unmovable_reason(p)
            if why is not None:
                raise TypeError(
                    f"ZeroRedundancyOptimizer over NCCL: {name} (shape {p.shape}) "
                    f"{why}, so its gradient cannot live in the memory NCCL reduces; "
                    "init(backend='mpi') takes the host path"
                )
        self._communicator = communicator
        self._groups = [list(params) for params in groups]
        # Where each group's range starts in both blocks, by id of the group's first parameter;
        # attach() finds each shard's there and keeps it by id of the shard.
        self._start_by_first_param: dict[int, int] = {}
        self._start_by_shard: dict[int, int] = {}
        at = 0
        for params in self._groups:
            self._start_by_first_param[id(params[0])] = at
            at += even_chunk(sum(p.size for p in params), communicator.size) * communicator.size
        device = self._groups[0][0].device
        # Never freed, as NcclReducer's block (see its docstring): grad homes are views of it.
        self.grads = communicator.allocate(device.context, max(at, 1) * 4)
        self.params = communicator.allocate(device.context, max(at, 1) * 4)
        for block in (self.grads, self.params):
            # The padding is reduced and gathered too: zeros, not whatever was there.
            Tensor(block.buffer, (max(at, 1),), float32, device).fill_(0.0)
        self._previous = [(p, p.grad_home) for params in self._groups for p in params]
        for params in self._groups:
            first = self._start_by_first_param[id(params[0])]
            for p in params:
                p.set_grad_home(Tensor(self.grads.buffer, p.shape, p.dtype, device,
                                       offset=first))
                first += p.size
        self._thread = nccl.collective_thread(communicator)

    def restore(self) -> None:
        """Give the parameters back the grad homes they had (ZeRO's construction failed)."""
        for p, home in self._previous:
            p.set_grad_home(home)

    def attach(self, shards: Sequence[Shard]) -> None:
        """Check that each shard is one group's run of parameters with its gradients in the
        block (the owner adopted the homes), and make the block's range its gradients."""
        for s in shards:
            first = self._start_by_first_param.get(id(s.params[0]))
            grads = s.grad_flat() if s.bucket_grads is not None else s.params[0].grad_home
            if first is None or grads is None or grads.buffer is not self.grads.buffer or (
                    grads.offset != first):
                raise RuntimeError(
                    "ZeroRedundancyOptimizer over NCCL: the optimizer did not lay a param "
                    f"group of {len(s.params)} parameter(s) out over the gradient memory NCCL "
                    "reduces; init(backend='mpi') takes the host path"
                )
            self._start_by_shard[id(s)] = first
            s.bucket_grads = Tensor(self.grads.buffer, (s.total,), float32, grads.device,
                                    offset=first)

    def reduce_scatter(self, live: Sequence[Shard]) -> None:
        """Each live shard's range of the gradients becomes their mean over the ranks."""
        if not live:
            return
        self._thread.raise_if_failed()
        self._in_place(live, self._communicator.start_reduce_scatter, self.grads)
        for s in live:
            s.take_own_grads()

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
                         dst_offset=(self._start_by_shard[id(s)] + s.lo) * 4)
        self._in_place(live, self._communicator.start_all_gather, self.params)
        for s in live:
            transfer(queue, s.param_flat.buffer, self.params.buffer, byte_count=s.total * 4,
                     src_offset=self._start_by_shard[id(s)] * 4, dst_offset=s.param_flat.offset * 4)

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
            address = block.pointer + self._start_by_shard[id(s)] * 4
            self._thread.start_after(ready, partial(start, address, even_chunk(s.total, size)))
        wait_for(queue, self._thread.done(queue.context))

