"""DistributedDataParallel: one model replica per rank, gradients averaged during backward."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from netcl.core.tensor import Tensor
from netcl.distributed.bf16_reducer import Bf16Reducer
from netcl.distributed.comm_hooks import BUILT_IN, CommHook, allreduce_hook
from netcl.distributed.reducer import NcclReducer, Reducer
from netcl.distributed.replicas import (
    broadcast_from_root,
    check_same_everywhere,
    refuse_unless_float32,
)
from netcl.distributed.world import World, world_or_default
from netcl.nn import Module


class DistributedDataParallel(Module):
    """Wraps ``module`` so that each rank trains a replica on its own share of every batch.

    At wrap time every rank's parameters and buffers are checked to have the
    same names, shapes and dtypes (ValueError on every rank, naming the first
    difference, otherwise), then overwritten by rank 0's values, so all
    replicas start equal.

    During ``tape.backward(loss)`` the gradients are averaged across ranks:
    one all-reduce per bucket (about ``bucket_cap_mb`` megabytes of
    consecutive parameters; 25 by default, as PyTorch's DDP), each started as
    soon as its bucket's gradients are complete, while the rest of backward
    still runs (see :mod:`netcl.distributed.reducer`). When backward returns,
    every rank holds the same averaged ``.grad``, so the same optimizer step
    keeps the replicas equal. With an optimizer's flat layout, a bucket is a
    range of its flat grad buffer and crosses to the host in one copy. Over
    NCCL (``world.backend == "nccl"``) the gradients live in the memory NCCL
    averages (:class:`netcl.distributed.reducer.NcclReducer`): build the
    optimizer after the wrapper, so that its flat grad buffer is that memory.

    ``register_comm_hook(None, comm_hooks.bf16_compress_hook)`` sends the
    gradients as bfloat16 and sums them in float32 (half the bytes; see
    :mod:`netcl.distributed.comm_hooks`).

    Every parameter that requires grad must receive one in every backward:
    one left out is reported (RuntimeError) at the next forward. Inside
    ``with ddp.no_sync():`` forward and backward accumulate local gradients
    without communicating; the first backward after it averages the sum.

    With a world of one process nothing is hooked or sent: the wrapper is
    the module itself.

    >>> import netcl.distributed as dist
    >>> from netcl.nn import Linear
    >>> world = dist.init()  # under mpiexec -n N, rank r of N; run alone, a world of one
    >>> ddp = dist.DistributedDataParallel(Linear(world.device.queue, 3, 2))
    >>> ddp.bucket_sizes  # one process: no bucket to average
    []
    >>> ddp.register_comm_hook(None, dist.comm_hooks.bf16_compress_hook)
    """

    def __init__(
        self, module: Module, *, world: World | None = None, bucket_cap_mb: float = 25.0
    ) -> None:
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(
                f"DistributedDataParallel: expected a netcl.nn.Module, got {type(module).__name__}"
            )
        if isinstance(bucket_cap_mb, bool) or not isinstance(bucket_cap_mb, int | float) or not (
            bucket_cap_mb > 0
        ):
            raise ValueError(
                f"DistributedDataParallel: bucket_cap_mb must be a positive number, "
                f"got {bucket_cap_mb!r}"
            )
        the_world = world_or_default(world)
        trained = [(name, p) for name, p in module.named_parameters() if p.requires_grad]
        state = list(module.named_parameters()) + list(module.named_buffers())
        # The collective check first: a dtype that differs between ranks raises on every rank.
        check_same_everywhere(the_world.comm, state, "DistributedDataParallel")
        refuse_unless_float32([(f"parameter {name!r}", p) for name, p in trained],
                              "DistributedDataParallel")
        broadcast_from_root(the_world.comm, [t for _, t in state])
        self.module = module
        object.__setattr__(self, "world", the_world)
        reducer = None
        cap_bytes = int(bucket_cap_mb * 1024 * 1024)
        if the_world.size > 1 and trained:
            reducer = (Reducer(trained, the_world.comm, cap_bytes) if the_world.nccl is None
                       else NcclReducer(trained, the_world.comm, cap_bytes, the_world.nccl))
        object.__setattr__(self, "_reducer", reducer)
        object.__setattr__(self, "_trained", trained)
        object.__setattr__(self, "_cap_bytes", cap_bytes)
        object.__setattr__(self, "_comm_hook", None)

    world: World
    module: Module
    _reducer: Reducer | None
    _trained: list[tuple[str, Tensor]]
    _cap_bytes: int
    _comm_hook: CommHook | None

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self._reducer is not None:
            self._reducer.check_finished("DistributedDataParallel forward")
        return self.module(*args, **kwargs)

    def register_comm_hook(self, state: object, hook: CommHook) -> None:
        """Average the gradients the way ``hook`` says, from the next backward on.

        As PyTorch's ``DistributedDataParallel.register_comm_hook``, with
        ``hook`` one of the built-ins in :mod:`netcl.distributed.comm_hooks`
        (``allreduce_hook``, the default, or ``bf16_compress_hook``) and
        ``state`` None: netcl runs a hook inside its reducer's pipeline, not
        as a Python call per bucket. Call it once, on every rank, with the
        same hook, between backward passes. Every rank's arguments are
        gathered before any is checked, so a bad argument on one rank raises
        the same error on every rank (naming that rank), and nothing changes.
        ``bf16_compress_hook`` runs on the host (MPI) path
        only: with the NCCL backend it raises RuntimeError. In a world of one
        nothing is sent, so nothing is compressed: the gradients stay those
        of float32.
        """
        where = "DistributedDataParallel.register_comm_hook"
        built_in = any(hook is known for known in BUILT_IN)
        the_world = self.world
        # Strings only: a hook that is not built in may be any object, unpicklable.
        everyone: list[tuple[str | None, str | None, str | None, str | None]] = (
            the_world.comm.allgather((
                None if state is None else type(state).__name__,
                None if built_in else repr(hook),
                None if self._comm_hook is None else repr(self._comm_hook),
                hook.name if built_in else None,
            )))

        def at(rank: int) -> str:
            return "" if len(everyone) == 1 else f" on rank {rank}"

        for rank, (state_type, unknown, registered, _) in enumerate(everyone):
            if state_type is not None:
                raise TypeError(
                    f"{where}: netcl's built-in hooks take no state; pass None, got "
                    f"{state_type}{at(rank)}"
                )
            if unknown is not None:
                raise TypeError(
                    f"{where}: hook must be one of netcl's built-ins "
                    f"{[repr(known) for known in BUILT_IN]} (netcl calls no Python function "
                    f"per bucket), got {unknown}{at(rank)}"
                )
            if registered is not None:
                raise RuntimeError(
                    f"{where} can only be called once; {registered} is registered{at(rank)}"
                )
        names = [name for *_, name in everyone]
        if len(set(names)) > 1:
            raise ValueError(
                f"{where}: every rank must register the same hook, got {names} (rank by rank)"
            )
        if hook is not allreduce_hook and the_world.nccl is not None:
            raise RuntimeError(
                f"DistributedDataParallel.register_comm_hook: {hook!r} runs on the host (MPI) "
                "path only, and this world averages through NCCL; init(backend='mpi') takes "
                "the host path"
            )
        old = self._reducer
        if old is not None and hook is not allreduce_hook:
            old.check_finished("DistributedDataParallel.register_comm_hook")
            new = Bf16Reducer(self._trained, old.comm, self._cap_bytes)
            new.enabled = old.enabled
            old.detach()
            object.__setattr__(self, "_reducer", new)
        object.__setattr__(self, "_comm_hook", hook)

    @contextmanager
    def no_sync(self) -> Iterator[None]:
        """Backward passes inside accumulate local gradients and send nothing."""
        reducer = self._reducer
        if reducer is None:
            yield
            return
        previous = reducer.enabled
        reducer.enabled = False
        try:
            yield
        finally:
            reducer.enabled = previous

    @property
    def bucket_sizes(self) -> list[int]:
        """The number of parameters in each bucket, in the order backward sends them."""
        return [] if self._reducer is None else [len(b.params) for b in self._reducer.buckets]
