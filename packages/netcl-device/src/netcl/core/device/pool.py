"""BufferPool: device allocations reused by size class."""

from __future__ import annotations

from dataclasses import dataclass

import pyopencl as cl
import pyopencl.tools as cl_tools


@dataclass(frozen=True)
class PoolStats:
    """A snapshot of a BufferPool's counters, in bytes and calls."""

    bytes_in_use: int
    bytes_held: int
    peak_bytes_in_use: int
    allocations: int
    hits: int


class BufferPool:
    """Hands out device buffers, keeping freed ones to hand out again.

    A thin owner of ``pyopencl.tools.MemoryPool``: pyopencl already bins sizes
    (1/16 waste at most) and returns a buffer to its bin when the last
    reference to it dies. What this class adds is the statistics a training
    loop needs to prove it allocates nothing after its first step.

    Reuse is safe without events because every netcl op on a device goes
    through that device's single in-order queue: a kernel that writes a
    recycled buffer runs after every kernel that read its previous owner.
    """

    def __init__(self, context: cl.Context) -> None:
        self._pool = cl_tools.MemoryPool(cl_tools.ImmediateAllocator(cl.CommandQueue(context)))
        self._max_buffer = min(d.max_mem_alloc_size for d in context.devices)
        self._peak = 0
        self._allocations = 0
        self._hits = 0

    def allocate(self, nbytes: int) -> cl.MemoryObjectHolder:
        """A buffer of at least ``nbytes`` bytes (at least 1), from the pool when one fits.

        Raises MemoryError, naming the bytes, when the device cannot hold such a buffer.
        """
        if nbytes < 0:
            raise ValueError(f"BufferPool.allocate: nbytes must be >= 0, got {nbytes}")
        if nbytes > self._max_buffer:
            raise MemoryError(
                f"cannot allocate {nbytes:,} bytes: the device's largest buffer is "
                f"{self._max_buffer:,} bytes"
            )
        held_before = self._pool.managed_bytes
        try:
            buffer = self._pool.allocate(max(nbytes, 1))
        except cl.MemoryError as e:  # the pool already freed what it held and retried
            raise MemoryError(f"cannot allocate {nbytes:,} bytes on the device: {e}") from e
        # The pool grew only if it had to call the allocator: that is a miss.
        if self._pool.managed_bytes > held_before:
            self._allocations += 1
        else:
            self._hits += 1
        active = self._pool.active_bytes
        if active > self._peak:
            self._peak = active
        return buffer

    def stats(self) -> PoolStats:
        return PoolStats(
            bytes_in_use=self._pool.active_bytes,
            bytes_held=self._pool.managed_bytes,
            peak_bytes_in_use=self._peak,
            allocations=self._allocations,
            hits=self._hits,
        )

    def reset_peak(self) -> None:
        """Start ``peak_bytes_in_use`` again from the bytes in use now (torch's
        ``reset_peak_memory_stats``), to measure the peak of one stretch of work."""
        self._peak = self._pool.active_bytes

    def free_held(self) -> None:
        """Give every buffer not in use back to the driver."""
        self._pool.free_held()
