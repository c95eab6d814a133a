"""The gradient reducer: gradients averaged across ranks during backward, one all-reduce a bucket.

Parameters are cut into buckets: runs of consecutive parameters of about
``cap_bytes`` each, listed from the model's last parameter back, the order in
which backward completes their gradients. A hook on each parameter
(``netcl.autograd.register_post_accumulate_grad_hook``) counts the bucket's
gradients in; when the last one arrives, the bucket's device-to-host copies
are enqueued, one per chunk of about ``CHUNK_BYTES``, into pinned host
memory, and once a chunk's copy is done a non-blocking ``Iallreduce`` of that
chunk starts: the host never waits for the device inside backward, so the
copies and the collectives of late buckets run while the device still
computes the gradients of early layers, and within a bucket the copy of one
chunk runs while the chunk before it is reduced. When every bucket has
started (the first layers' hook), the reducer waits for the collectives in
order and enqueues each summed chunk's copy back into the gradients as soon
as it is done, then divides the gradients by the world size on the device,
before backward returns.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pyopencl as cl
from mpi4py import MPI

from netcl.autograd import RemovableHandle, no_grad, register_post_accumulate_grad_hook
from netcl.core.tensor import Tensor
from netcl.core.tensor.launch import marker, transfer, wait_for
from netcl.distributed import host_copy, nccl

# A bucket crosses in chunks of this size, so that copies and the collective overlap. Small
# enough that a 25 MB bucket pipelines over several chunks, large enough that each MPI call
# and each copy moves megabytes (their fixed costs are microseconds).
CHUNK_BYTES = 4 * 1024 * 1024


@dataclass(eq=False)
class Chunk:
    """Elements ``[lo, hi)`` of a bucket's host array, and the device ranges they come from."""

    lo: int
    hi: int
    copies: list[host_copy.Span]
    copied: cl.Event | None = None
    started: bool = False
    request: MPI.Request | None = None


@dataclass(eq=False)
class Bucket:
    """Consecutive parameters (in model order) whose gradients travel as one array."""

    params: list[Tensor]
    names: list[str]
    total: int
    host: np.ndarray[Any, Any] = field(default_factory=lambda: np.empty(0, np.float32))
    # Every rank's copy of the bucket side by side, for a reducer that all-gathers.
    gathered: np.ndarray[Any, Any] = field(default_factory=lambda: np.empty(0, np.float32))
    missing: int = 0
    copies: list[host_copy.Span] = field(default_factory=list)
    chunks: list[Chunk] = field(default_factory=list)


def chunk_elements() -> int:
    """The float32 gradients in one chunk (``CHUNK_BYTES`` is read at each backward)."""
    return max(1, CHUNK_BYTES // 4)


def make_buckets(named: Sequence[tuple[str, Tensor]], cap_bytes: int) -> list[Bucket]:
    """Buckets of about ``cap_bytes`` over ``named`` parameters, the last parameters' first.

    A bucket closes once it holds ``cap_bytes`` or more, so a parameter larger
    than the cap gets a bucket of its own. Every rank cuts the same buckets
    from the same shapes, so the collectives match.
    """
    buckets: list[Bucket] = []
    members: list[tuple[str, Tensor]] = []
    size = 0
    for name, p in reversed(named):
        members.append((name, p))
        size += p.nbytes
        if size >= cap_bytes:
            buckets.append(_bucket(members))
            members, size = [], 0
    if members:
        buckets.append(_bucket(members))
    return buckets


def _call_on_grad(reducer: weakref.ref[Reducer], p: Tensor) -> None:
    alive = reducer()
    if alive is not None:
        alive._on_grad(p)


def _remove(handles: list[RemovableHandle]) -> None:
    for handle in handles:
        handle.remove()


def _bucket(members: list[tuple[str, Tensor]]) -> Bucket:
    members = members[::-1]  # model order, so that ranges adjacent on the device merge
    total = sum(p.size for _, p in members)
    return Bucket([p for _, p in members], [name for name, _ in members], total,
                  missing=len(members))


class Reducer:
    """Averages the gradients of ``named`` parameters over ``comm`` as backward produces them."""

    def __init__(
        self, named: Sequence[tuple[str, Tensor]], comm: MPI.Intracomm, cap_bytes: int
    ) -> None:
        self.comm = comm
        self.enabled = True
        self.buckets = make_buckets(named, cap_bytes)
        for bucket in self.buckets:
            self._allocate(bucket)
        self._bucket_of = {id(p): b for b in self.buckets for p in b.params}
        self._ready: set[int] = set()
        self._started: list[Bucket] = []
        # The hooks hold the reducer weakly and go when it goes: a wrapper the user has
        # dropped must not go on sending its model's gradients at every backward.
        hook = partial(_call_on_grad, weakref.ref(self))
        handles = [register_post_accumulate_grad_hook(p, hook) for _, p in named]
        self._unhook = weakref.finalize(self, _remove, handles)

    def detach(self) -> None:
        """Stop averaging: the hooks on the parameters go now (else when the reducer goes)."""
        self._unhook()

    def check_finished(self, where: str) -> None:
        """RuntimeError if the last backward left a bucket unreduced (a parameter got no grad)."""
        if self._ready:
            names = [name for b in self.buckets for name, p in zip(b.names, b.params, strict=True)
                     if id(p) not in self._ready]
            raise RuntimeError(
                f"{where}: the previous backward gave no gradient to parameter(s) {names}, so "
                "their buckets were never averaged across ranks. Every parameter that requires "
                "grad must take part in the loss (or set requires_grad=False before wrapping)."
            )

    def _allocate(self, bucket: Bucket) -> None:
        """Where the bucket's gradients are reduced: pinned host memory, for MPI."""
        bucket.host = host_copy.pinned_array(bucket.params[0].queue, bucket.total)

    # -- during backward ------------------------------------------------------------------
    def _on_grad(self, p: Tensor) -> None:
        if not self.enabled:
            return
        key = id(p)
        if key in self._ready:
            self.check_finished("DistributedDataParallel backward")
        self._ready.add(key)
        bucket = self._bucket_of[key]
        bucket.missing -= 1
        if bucket.missing == 0:
            self._copy_out(bucket)
        self._start_copied()
        if len(self._started) == len(self.buckets):
            self._finish()

    def _copy_out(self, bucket: Bucket) -> None:
        grads = []
        for p in bucket.params:
            assert p.grad is not None  # its hook ran after its grad was accumulated
            grads.append(p.grad)
        bucket.copies = host_copy.spans(grads)
        bucket.chunks = [Chunk(lo, hi, host_copy.clip(bucket.copies, lo, hi))
                         for lo, hi in self._cuts(bucket.total)]
        for chunk in bucket.chunks:
            chunk.copied = self._copy_out_chunk(bucket, chunk)
        self._started.append(bucket)

    def _cuts(self, total: int) -> list[tuple[int, int]]:
        step = chunk_elements()
        return [(lo, min(lo + step, total)) for lo in range(0, total, step)]

    def _copy_out_chunk(self, bucket: Bucket, chunk: Chunk) -> cl.Event | None:
        return host_copy.to_host(bucket.params[0].queue, chunk.copies, bucket.host)

    def _start(self, bucket: Bucket, chunk: Chunk) -> None:
        chunk.request = self.comm.Iallreduce(MPI.IN_PLACE, bucket.host[chunk.lo:chunk.hi],
                                             op=MPI.SUM)
        chunk.started = True

    def _start_copied(self) -> None:
        """Start, in order, the all-reduce of each chunk whose host copy is done.

        Strictly in order, stopping at the first copy still running: MPI needs every
        rank to start its collectives in the same order, and a later copy may finish
        between two status reads.
        """
        for bucket in self._started:
            for chunk in bucket.chunks:
                if chunk.started:
                    continue
                if chunk.copied is not None and (
                    chunk.copied.command_execution_status
                    != cl.command_execution_status.COMPLETE
                ):
                    return
                self._start(bucket, chunk)

    def _start_the_rest(self) -> None:
        for bucket in self._started:
            for chunk in bucket.chunks:
                if not chunk.started:
                    if chunk.copied is not None:
                        chunk.copied.wait()
                    self._start(bucket, chunk)

    def _finish(self) -> None:
        self._start_the_rest()
        for bucket in self._started:
            queue = bucket.params[0].queue
            for chunk in bucket.chunks:
                assert chunk.request is not None
                host_copy.wait(chunk.request)
                host_copy.to_device(queue, chunk.copies, bucket.host)
            # The sum becomes the mean on the device: a pass over the gradients there costs
            # far less than over the host array (one launch per merged range).
            with no_grad():
                for span in bucket.copies:
                    host_copy.device_view(bucket.params[0], span).mul_(1.0 / self.comm.size)
        self._reset()

    def _reset(self) -> None:
        for bucket in self._started:
            bucket.chunks = []
            bucket.missing = len(bucket.params)
        self._started = []
        self._ready.clear()


class NcclReducer(Reducer):
    """The reducer on NVIDIA GPUs, one a rank: nothing crosses to the host, nothing is copied.

    At construction it allocates one block of memory that CUDA allocated and
    OpenCL imported (``communicator.allocate``, a
    :class:`netcl.distributed.nccl.SharedBuffer`) for all the gradients, in
    model order, and makes each parameter's range of it the parameter's grad
    home (``Tensor.set_grad_home``), as PyTorch's DDP does with
    ``gradient_as_bucket_view``. An optimizer built afterwards lays its flat
    grad buffer over those homes (they tile one buffer in order), so backward
    writes the gradients where NCCL averages them and the optimizer steps them
    there. A gradient that lives elsewhere (a parameter that already had a
    home, from an optimizer built before the wrapper) is copied in on the
    device and back afterwards.

    When a bucket's gradients are complete, an OpenCL marker is enqueued and a
    helper thread (:class:`netcl.distributed.nccl.CollectiveThread`) starts
    ``ncclAllReduce(ncclAvg)`` on the bucket's range once the marker completes,
    while OpenCL computes the rest of backward (one thread a communicator, shared by
    every reducer over it). Before backward returns, the
    OpenCL queue is made to wait for a user event that the thread sets when
    NCCL's stream is done: backward returns without waiting, and the optimizer's
    launches queue up behind the averages.

    The shared block is never freed: each construction allocates one block of
    the size of the model's gradients (float32) and keeps it to the end of the
    process, even after the wrapper, the reducer, the model and its optimizer
    are gone; wrapping models again and again (a new wrapper each epoch, a
    search over models) leaks that much GPU memory each time. Freeing it needs
    both (a) a hook on the last owner of the grad homes, which are views of
    its OpenCL buffer held by the parameters, by an optimizer's flat grad
    buffer and by any view taken of them (a ``pyopencl.Buffer`` cannot be
    weakly referenced, so there is no one object to tie a ``weakref.finalize``
    to), and (b) the CUDA side freed only after the helper thread has started
    every all-reduce submitted on that range and NCCL's stream is done with it
    (freed from the main thread at once, an all-reduce still in the thread's
    queue would write to unmapped memory). Until then, wrap a model once.

    Do not call ``Communicator.all_reduce`` on a communicator a reducer uses:
    its collectives start from the helper thread, and one started from
    another thread can come between them in a different order on each rank.
    """

    def __init__(self, named: Sequence[tuple[str, Tensor]], comm: MPI.Intracomm,
                 cap_bytes: int, communicator: nccl.Collectives) -> None:
        params = [p for _, p in named]
        device = params[0].device
        self._starts: dict[int, int] = {}
        at = 0
        for p in params:
            self._starts[id(p)] = at
            at += p.size
        # Never freed (see the class docstring): the parameters' grad homes and an
        # optimizer's flat grad buffer are views of this memory and may outlive the reducer.
        self.shared = communicator.allocate(device.context, at * 4)
        for p in params:
            if p.grad_home is None:
                p.set_grad_home(Tensor(self.shared.buffer, p.shape, p.dtype, p.device,
                                       offset=self._starts[id(p)]))
        self._collectives = nccl.collective_thread(communicator)
        super().__init__(named, comm, cap_bytes)

    def _allocate(self, bucket: Bucket) -> None:
        pass  # every bucket is a range of self.shared

    def check_finished(self, where: str) -> None:
        self._collectives.raise_if_failed()
        super().check_finished(where)

    def _copy_out(self, bucket: Bucket) -> None:
        grads = []
        for p in bucket.params:
            assert p.grad is not None  # its hook ran after its grad was accumulated
            grads.append(p.grad)
        first = self._starts[id(bucket.params[0])]
        shared = self.shared.buffer
        # Only the gradients that are not already at their place in the shared memory move.
        bucket.copies = [span for span in host_copy.spans(grads)
                         if span.buffer is not shared
                         or span.device_offset != first + span.host_offset]
        queue = bucket.params[0].queue
        for span in bucket.copies:
            transfer(queue, shared, span.buffer, byte_count=span.size * 4,
                     src_offset=span.device_offset * 4,
                     dst_offset=(first + span.host_offset) * 4)
        ready = marker(queue)
        queue.flush()  # so that the marker completes without anyone waiting on the queue
        self._collectives.all_reduce_after(ready, self.shared.pointer + first * 4, bucket.total)
        self._started.append(bucket)

    def _on_grad(self, p: Tensor) -> None:
        self._collectives.raise_if_failed()
        super()._on_grad(p)

    def _finish(self) -> None:
        queue = self._started[0].params[0].queue
        wait_for(queue, self._collectives.done(queue.context))
        shared = self.shared.buffer
        for bucket in self._started:
            first = self._starts[id(bucket.params[0])]
            for span in bucket.copies:
                transfer(queue, span.buffer, shared, byte_count=span.size * 4,
                         src_offset=(first + span.host_offset) * 4,
                         dst_offset=span.device_offset * 4)
        self._reset()
