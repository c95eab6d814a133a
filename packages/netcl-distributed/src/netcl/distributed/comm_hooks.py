"""The ways DistributedDataParallel can average gradients, for ``register_comm_hook``.

PyTorch's DDP takes a Python function per bucket (``hook(state, bucket)``
returning a future), with ready-made ones in
``torch.distributed.algorithms.ddp_comm_hooks.default_hooks``. netcl's reducer
runs its buckets through a pipeline of device copies and non-blocking MPI
calls that no per-bucket Python callback fits into, so a netcl hook is a name
the reducer knows, spelled as PyTorch's: code that registers
``default_hooks.bf16_compress_hook`` ports by importing it from here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, eq=False)
class CommHook:
    """A built-in way of averaging, named as PyTorch's; what crosses between ranks is the
    business of the reducer it selects (``bf16_reducer`` says how bfloat16 travels)."""

    name: str

    def __repr__(self) -> str:
        return f"netcl.distributed.comm_hooks.{self.name}"


allreduce_hook = CommHook("allreduce_hook")
"""The default: a float32 all-reduce of each bucket, then a division by the world size."""

bf16_compress_hook = CommHook("bf16_compress_hook")
"""Gradients cross between ranks as bfloat16, and are summed in float32.

Each bucket is rounded to bfloat16 on the device (to nearest, ties to
even), so the copies to the host and the bytes MPI moves are half those of
float32. MPI has no bfloat16 type and no sum that widens, so the ranks
all-gather each other's bfloat16 buckets; every rank then copies the K
gathered buckets to its device and sums them there in float32, in rank
order, and multiplies by ``float32(1 / K)``, as the float32 path does. Every
rank computes the same operations on the same bits, so all ranks end with
identical float32 gradients:
``fl32(fl32(...fl32(g_0 + g_1) ... + g_(K-1)) * fl32(1 / K))`` with
``g_r`` rank r's gradient rounded to bfloat16.

PyTorch's hook of the same name all-reduces in bfloat16 and hands back the
bfloat16 mean, widened; this one keeps the float32 sum of the bfloat16
values, so only each rank's own rounding (relative 2**-9) is lost.
"""

BUILT_IN = (allreduce_hook, bf16_compress_hook)
