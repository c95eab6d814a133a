"""The host path with bfloat16 on the wire and float32 sums (``comm_hooks.bf16_compress_hook``).

The pipeline is the float32 reducer's (:mod:`netcl.distributed.reducer`):
chunks copied to pinned host memory as backward completes their bucket, a
non-blocking collective per chunk as soon as its copy is done, copies back
before backward returns. What differs is what crosses: each chunk is
rounded to bfloat16 on the device first, so the device-to-host copy and the
bytes each rank sends are half the float32 path's. MPI has no bfloat16
type, and its sums cannot widen a 16-bit value to float32, so each chunk is
all-gathered (``Iallgather`` of 16-bit words: the receive holds every rank's
chunk, in rank order) and the K chunks are summed on the device in float32,
in rank order, then scaled by ``float32(1 / K)`` (``sum_in_rank_order``). Every rank runs the same
operations on the same bits, so all end with the same float32 gradients.

Bytes a rank receives for N gradients: 2 (K-1) N here; a float32 all-reduce
that reduce-scatters and all-gathers receives 8 (K-1) N / K. The all-gather
moves less for K = 2 and 3 (half and two thirds), as much at K = 4, and more
beyond: there a reduce-scatter of bfloat16 (an all-to-all, each rank summing
its 1/K of the elements in float32) followed by an all-gather of the float32
sums would move 6 (K-1) N / K; it is not built.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyopencl as cl
from mpi4py import MPI

from netcl.autograd import no_grad
from netcl.core.tensor import Tensor, bfloat16
from netcl.core.tensor.dispatch import empty
from netcl.core.tensor.launch import transfer
from netcl.core.tensor.ops.elementwise import elementwise
from netcl.distributed import host_copy
from netcl.distributed.reducer import Bucket, Chunk, Reducer

_WIRE = np.dtype(np.uint16)  # bfloat16's bits, as MPI sees them: 16-bit words it only moves


class Bf16Reducer(Reducer):
    """Averages float32 gradients over ``comm`` with bfloat16 on the wire and float32 sums.

    The result on every rank is
    ``fl32(fl32(... fl32(g_0 + g_1) ... + g_(K-1)) * fl32(1 / K))``, where
    ``g_r`` is rank r's gradient rounded to bfloat16 (nearest, ties to even)
    and ``fl32`` rounds to float32.
    """

    def __init__(
        self, named: Sequence[tuple[str, Tensor]], comm: MPI.Intracomm, cap_bytes: int
    ) -> None:
        # One chunk's worth of device memory each way, reused chunk after chunk: the queue
        # is in order, so a chunk's copy is done before the next chunk's cast overwrites it.
        self._outgoing: Tensor | None = None
        self._incoming: Tensor | None = None
        super().__init__(named, comm, cap_bytes)

    def _allocate(self, bucket: Bucket) -> None:
        queue = bucket.params[0].queue
        bucket.host = host_copy.pinned_array(queue, bucket.total, _WIRE)
        bucket.gathered = host_copy.pinned_array(queue, bucket.total * self.comm.size, _WIRE)

    def _copy_out_chunk(self, bucket: Bucket, chunk: Chunk) -> cl.Event | None:
        like = bucket.params[0]
        count = chunk.hi - chunk.lo
        self._outgoing = _at_least(self._outgoing, count, like)
        outgoing = self._outgoing
        with no_grad():
            for span in chunk.copies:
                _part(outgoing, span.host_offset - chunk.lo, span.size).copy_(
                    host_copy.device_view(like, span))
        # A copy to the host moves as many bytes as the host array holds.
        return transfer(like.queue, bucket.host[chunk.lo:chunk.hi], outgoing.buffer,
                        src_offset=outgoing.offset * _WIRE.itemsize, is_blocking=False)

    def _start(self, bucket: Bucket, chunk: Chunk) -> None:
        ranks = self.comm.size
        chunk.request = self.comm.Iallgather(bucket.host[chunk.lo:chunk.hi],
                                             bucket.gathered[chunk.lo * ranks:chunk.hi * ranks])
        chunk.started = True

    def _finish(self) -> None:
        self._start_the_rest()
        ranks = self.comm.size
        scale = 1.0 / ranks
        for bucket in self._started:
            like = bucket.params[0]
            for chunk in bucket.chunks:
                assert chunk.request is not None
                host_copy.wait(chunk.request)
                count = chunk.hi - chunk.lo
                self._incoming = _at_least(self._incoming, count * ranks, like)
                incoming = self._incoming
                transfer(like.queue, incoming.buffer,
                         bucket.gathered[chunk.lo * ranks:chunk.hi * ranks],
                         dst_offset=incoming.offset * _WIRE.itemsize, is_blocking=False)
                for span in chunk.copies:
                    at = span.host_offset - chunk.lo
                    sum_in_rank_order(host_copy.device_view(like, span),
                                      [_part(incoming, rank * count + at, span.size)
                                       for rank in range(ranks)], scale)
        self._reset()


def sum_in_rank_order(out: Tensor, rows: Sequence[Tensor], scale: float) -> None:
    """``out = fl32(fl32(... fl32(rows[0] + rows[1]) ... + rows[-1]) * fl32(scale))``,
    with ``rows`` bfloat16 and the sums float32: K - 1 launches of the tensor layer's
    elementwise kernel (3 operands at most), not K + 1 of copy, add and multiply. Each
    ``+`` and ``*`` is one IEEE float32 operation, rounded to nearest: OpenCL C computes
    float expressions in float, and no multiply precedes an add, so there is nothing to
    contract into a fused multiply-add."""
    if len(rows) == 1:
        elementwise("bf16_average", "a * b", [rows[0], scale], out=out)
        return
    total = rows[0]
    for summed, row in enumerate(rows[1:], start=2):
        last = summed == len(rows)
        elementwise("bf16_average", "(a + b) * c" if last else "a + b",
                    [total, row, *([scale] if last else [])], out=out)
        total = out


def _at_least(staging: Tensor | None, count: int, like: Tensor) -> Tensor:
    """``staging``, or a new bfloat16 tensor on ``like``'s device if it holds fewer than
    ``count`` elements."""
    if staging is not None and staging.size >= count:
        return staging
    return empty((count,), bfloat16, like.device)


def _part(staging: Tensor, at: int, size: int) -> Tensor:
    return Tensor(staging.buffer, (size,), bfloat16, staging.device, offset=staging.offset + at)
