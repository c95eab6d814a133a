"""ZeroRedundancyOptimizer (ZeRO-1): each rank keeps the optimizer state of 1/N of every bucket.

Rajbhandari et al., "ZeRO: Memory Optimizations Toward Training Trillion
Parameter Models" (2020), stage 1: optimizer state partitioned across the
data-parallel ranks; parameters and gradients stay whole on every rank.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from mpi4py import MPI

from netcl.core.tensor import Tensor
from netcl.distributed import host_copy
from netcl.distributed.replicas import (
    broadcast_from_root,
    check_same_everywhere,
    refuse_unless_float32,
)
from netcl.distributed.shards import Shard, cut
from netcl.distributed.world import World, world_or_default
from netcl.distributed.zero_nccl import NcclShards
from netcl.optim import Optimizer
from netcl.optim.optimizer import ParamsLike
from netcl.optim.param_state import ParamState
from netcl.optim.state_dict import pack_state, unpack_groups, unpack_state

HostState = tuple[float | None, dict[str, float], dict[str, np.ndarray[Any, Any]]]


class ZeroRedundancyOptimizer:
    """Data-parallel training with any netcl optimizer whose state is sharded over the ranks.

    ``ZeroRedundancyOptimizer(model.parameters(), Adam, lr=1e-3)`` lays the
    parameters out flat as ``Adam(params, fused=True, lr=1e-3)`` would (that
    optimizer is built and holds ``param_groups``, but never steps and keeps no
    state), and cuts every flat bucket into one contiguous element range per
    rank (:mod:`netcl.distributed.shards`). Each rank keeps an
    ``optimizer_class`` over its ranges only, so its float32 state is 1/N of
    the whole: Adam's 8 bytes per parameter become 8 / N.

    At construction, as ``DistributedDataParallel`` at wrap: every rank's
    parameters are checked to match rank 0's (ValueError naming the first
    difference) and set to rank 0's values. Use it *instead of* DDP: it
    averages the gradients itself. ``step()`` is, per bucket: a reduce-scatter
    of the gradients (each rank receives the average of its own range), one
    launch of the algorithm on the range, and an all-gather of the updated
    parameters, so every rank ends the step with the same whole model.

    A bucket steps as one: its parameters all have grads or none do
    (ValueError otherwise), and every rank must agree on which buckets step
    (RuntimeError on every rank otherwise). ``param_groups`` are the whole
    model's, so learning-rate schedulers work on this object as on any
    optimizer; changed hyperparameters reach the shards at the next step.

    ``consolidate_state_dict(to=0)`` gathers the state into one PyTorch-layout
    state dict on rank ``to`` (what the wrapped optimizer alone would have
    saved), and ``load_state_dict`` takes such a dict on every rank, whatever
    number of ranks saved it.

    Over NCCL (``world.backend == "nccl"``) the shards are cut evenly, the
    gradients live in memory NCCL reduce-scatters in place, and the
    parameters are all-gathered through a staging block on the device
    (:mod:`netcl.distributed.zero_nccl`); nothing crosses to the host.

    >>> import numpy as np
    >>> import netcl.distributed as dist
    >>> from netcl.core.tensor import Parameter, from_numpy
    >>> from netcl.optim import Adam
    >>> world = dist.init()  # under mpiexec -n N, rank r of N; run alone, a world of one
    >>> w = Parameter(from_numpy(np.ones(4, np.float32)))
    >>> zero = dist.ZeroRedundancyOptimizer([w], Adam, lr=0.1)
    >>> w.grad = from_numpy(np.ones(4, np.float32))
    >>> zero.step()
    >>> w.numpy(), zero.state_bytes()  # Adam's 8 bytes a parameter, divided by world.size
    (array([0.9, 0.9, 0.9, 0.9], dtype=float32), 32)
    """

    def __init__(
        self,
        params: ParamsLike,
        optimizer_class: type[Optimizer],
        *,
        world: World | None = None,
        **defaults: Any,
    ) -> None:
        if not (isinstance(optimizer_class, type) and issubclass(optimizer_class, Optimizer)):
            raise TypeError(
                f"ZeroRedundancyOptimizer: optimizer_class must be a netcl.optim.Optimizer "
                f"subclass (Adam, SGD, ...), got {optimizer_class!r}"
            )
        if not optimizer_class.shards_elementwise:
            raise TypeError(
                f"ZeroRedundancyOptimizer: {optimizer_class.__name__} steps whole matrices "
                "or blocks (its update is not element by element), so its state cannot be "
                "sharded by element ranges; use it without ZeRO, or an element-wise algorithm "
                "(Adam, NAdam, Lion, ...)"
            )
        if "fused" in defaults:
            raise TypeError("ZeroRedundancyOptimizer: takes no 'fused': it always lays out flat")
        self.world = world_or_default(world)
        size = self.world.size
        self.optimizer_class = optimizer_class
        communicator = self.world.nccl if size > 1 else None
        self._nccl: NcclShards | None = None
        try:
            if communicator is not None:
                params, groups = _listed_groups(params)
                if groups:  # else the optimizer below says what is wrong with params
                    self._nccl = NcclShards(groups, communicator)
            self._build(params, defaults)
        except BaseException:
            if self._nccl is not None:
                self._nccl.restore()  # no parameter's gradient stays in the NCCL block
            raise
        self._consolidated: dict[str, Any] | None = None

    def _build(self, params: ParamsLike, defaults: Mapping[str, Any]) -> None:
        """The layout owner (it checks every hyperparameter; never stepped), the replicas made
        equal, the shards cut from the owner's layout, and the optimizer of this rank's."""
        comm, rank, size = self.world.comm, self.world.rank, self.world.size
        optimizer_class = self.optimizer_class
        self._layout_owner = optimizer_class(params, fused=True, **defaults)
        self.param_groups = self._layout_owner.param_groups
        self.defaults = self._layout_owner.defaults
        named = [(f"param_groups[{g}][{i}]", p) for g, group in enumerate(self.param_groups)
                 for i, p in enumerate(group["params"])]
        # The collective check first: a dtype that differs between ranks raises on every rank.
        check_same_everywhere(comm, named, "ZeroRedundancyOptimizer")
        refuse_unless_float32(named, "ZeroRedundancyOptimizer")
        broadcast_from_root(comm, [p for _, p in named])
        self._shards = [cut(self._layout_owner, group["params"], rank, size,
                            even=self._nccl is not None)
                        for group in self.param_groups]
        if self._nccl is not None:
            self._nccl.attach(self._all_shards())
        inner_groups: list[dict[str, Any]] = []
        self._inner_index: list[int | None] = []
        for group, shards in zip(self.param_groups, self._shards, strict=True):
            tensors = [s.tensor for s in shards if s.tensor is not None]
            self._inner_index.append(len(inner_groups) if tensors else None)
            if tensors:
                inner_groups.append({**_hyperparameters(group), "params": tensors})
        self._inner = optimizer_class(inner_groups, fused=False, **defaults) if (
            inner_groups) else None

    @property
    def state(self) -> Mapping[Tensor, ParamState]:
        """This rank's state: one entry per shard it owns, keyed by the shard's 1-D tensor."""
        return {} if self._inner is None else self._inner.state

    def state_bytes(self) -> int:
        """The bytes of optimizer state this rank holds."""
        return sum(buffer.nbytes for st in self.state.values() for buffer in st.buffers.values())

    # -- stepping ------------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """As ``Optimizer.zero_grad`` over the whole model's parameters."""
        self._layout_owner.zero_grad(set_to_none)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Reduce-scatter the gradients, step this rank's ranges, all-gather the parameters."""
        loss = closure() if closure is not None else None
        where = "ZeroRedundancyOptimizer.step"
        for g, group in enumerate(self.param_groups):
            self._layout_owner.check_group(group, f"{where}: param group {g}")
        shards = self._all_shards()
        stepping = self._agreed_stepping(shards, where)
        for index, group in zip(self._inner_index, self.param_groups, strict=True):
            if index is not None and self._inner is not None:
                self._inner.param_groups[index].update(_hyperparameters(group))
        live = [s for s, steps in zip(shards, stepping, strict=True) if steps]
        for s in shards:
            if s.tensor is not None:
                s.tensor.grad = None
        if self.world.size == 1:
            # A world of one owns every whole bucket: the averaged grads are the grads, in
            # place, and the parameters its shards step are the model's own. Nothing moves.
            for s in live:
                s.take_own_grads()
        elif self._nccl is not None:
            self._nccl.reduce_scatter(live)
        else:
            self._reduce_scatter(live)
        if self._inner is not None:
            self._inner.step()
        if self._nccl is not None:
            self._nccl.all_gather(live)
        elif self.world.size > 1:
            self._all_gather(live)
        return loss

    def _agreed_stepping(self, shards: list[Shard], where: str) -> list[bool]:
        """Which shards step: every parameter of a bucket has a grad in place, or none does;
        the same on every rank (else each rank would wait in a different collective)."""
        mine = np.zeros(len(shards), np.int8)
        for i, s in enumerate(shards):
            with_grad = [p.grad is not None for p in s.params]
            if any(with_grad) and not all(with_grad):
                missing = [j for j, has in enumerate(with_grad) if not has]
                raise ValueError(
                    f"{where}: a flat bucket of {len(s.params)} parameters steps as one, but "
                    f"its parameters {missing} have no grad while the others have one"
                )
            if all(with_grad) and s.bucket_grads is not None:
                home = s.bucket_grads
                for p, start in zip(s.params, s.starts, strict=True):
                    if p.grad is None or p.grad.buffer is not home.buffer or (
                        p.grad.offset != home.offset + start
                    ):
                        raise ValueError(
                            f"{where}: a parameter of shape {p.shape} has a grad outside its "
                            "flat grad buffer (assigned by hand?); assign grads with p.grad = g"
                        )
            mine[i] = all(with_grad)
        if self.world.size == 1:
            return [bool(v) for v in mine]
        # One collective for both ends: the max of the flags is minus the min of their negatives.
        ends = np.empty(2 * len(mine), np.int8)
        self.world.comm.Allreduce(np.concatenate([mine, -mine]), ends, op=MPI.MIN)
        lowest, highest = ends[:len(mine)], -ends[len(mine):]
        if not np.array_equal(lowest, highest):
            raise RuntimeError(
                f"{where}: the ranks disagree on which flat buckets have grads (buckets "
                f"{np.flatnonzero(lowest != highest).tolist()}); every rank must run backward "
                "through the same parameters"
            )
        return [bool(v) for v in mine]

    def _reduce_scatter(self, live: list[Shard]) -> None:
        """Each rank's range of every live bucket's grads becomes the average over ranks."""
        comm = self.world.comm
        events = []
        for s in live:
            grads = s.grad_flat()
            events.append(host_copy.to_host(
                grads.queue, [host_copy.Span(grads.buffer, grads.offset, 0, s.total)], s.host))
        received: list[tuple[Shard, np.ndarray[Any, Any], MPI.Request]] = []
        for s, event in zip(live, events, strict=True):
            if event is not None:
                event.wait()
            mine = np.empty(s.hi - s.lo, np.float32)
            request = comm.Ireduce_scatter(s.host, mine, s.counts, op=MPI.SUM)
            received.append((s, mine, request))
        scale = np.float32(1.0 / comm.size)
        for s, mine, request in received:
            host_copy.wait(request)
            if s.tensor is None:
                continue
            mine *= scale
            s.host[s.lo:s.hi] = mine
            grads = s.grad_flat()
            host_copy.to_device(grads.queue, [host_copy.Span(grads.buffer, grads.offset + s.lo,
                                                             s.lo, s.hi - s.lo)], s.host)
            s.take_own_grads()

    def _all_gather(self, live: list[Shard]) -> None:
        """Every rank's updated range of every live bucket, onto every rank."""
        comm = self.world.comm
        gathers: list[tuple[Shard, MPI.Request]] = []
        for s in live:
            if s.tensor is not None:
                copied = host_copy.to_host(s.tensor.queue, [host_copy.Span(
                    s.param_flat.buffer, s.param_flat.offset + s.lo, s.lo, s.hi - s.lo)],
                    s.host)
                if copied is not None:
                    copied.wait()
            request = comm.Iallgatherv(MPI.IN_PLACE, [s.host, (s.counts, s.displs), MPI.FLOAT])
            gathers.append((s, request))
        for s, request in gathers:
            host_copy.wait(request)
            flat = s.param_flat
            host_copy.to_device(flat.queue, [host_copy.Span(flat.buffer, flat.offset, 0, s.total)],
                                s.host)

    # -- state dicts ---------------------------------------------------------------------
    def consolidate_state_dict(self, to: int = 0) -> dict[str, Any] | None:
        """The whole state, PyTorch's layout, on rank ``to`` (None on the others); a collective.

        The dict is what ``optimizer_class`` over the same parameters would
        save; it is also kept for ``state_dict()`` on rank ``to``.
        """
        if isinstance(to, bool) or not isinstance(to, int) or not 0 <= to < self.world.size:
            raise ValueError(
                f"ZeroRedundancyOptimizer.consolidate_state_dict: to must be a rank in "
                f"[0, {self.world.size}), got {to!r}"
            )
        mine: dict[int, HostState] = {}
        for i, s in enumerate(self._all_shards()):
            st = self.state.get(s.tensor) if s.tensor is not None else None
            if st is not None:
                mine[i] = (st.step, dict(st.scalars),
                           {name: b.numpy() for name, b in st.buffers.items()})
        everyone = self.world.comm.gather(mine, root=to)
        if everyone is None:
            self._consolidated = None
            return None
        packed = pack_state(self.param_groups, {})
        state: dict[int, dict[str, Any]] = {}
        index_of = {id(p): i for i, p in enumerate(
            p for group in self.param_groups for p in group["params"])}
        for i, s in enumerate(self._all_shards()):
            pieces = [(r, theirs[i]) for r, theirs in enumerate(everyone) if i in theirs]
            if not pieces:
                continue
            step, scalars = pieces[0][1][0], pieces[0][1][1]
            names = pieces[0][1][2].keys()
            whole = {name: np.concatenate([arrays[name] for _, (_, _, arrays) in pieces])
                     for name in names}
            for p, start in zip(s.params, s.starts, strict=True):
                entry: dict[str, Any] = {} if step is None else {"step": step}
                entry.update(scalars)
                for name in names:
                    entry[name] = whole[name][start:start + p.size].reshape(p.shape).copy()
                state[index_of[id(p)]] = entry
        packed["state"] = dict(sorted(state.items()))
        self._consolidated = packed
        return packed

    def state_dict(self) -> dict[str, Any]:
        """The dict the last ``consolidate_state_dict`` made on this rank."""
        consolidated = self._consolidated
        if consolidated is None:
            raise RuntimeError(
                "ZeroRedundancyOptimizer.state_dict: call consolidate_state_dict(to=rank) on "
                "every rank first; the state dict is then available on that rank"
            )
        return consolidated

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Take a whole state dict (from any number of ranks, or a plain optimizer) on every rank.

        Each rank keeps its ranges. Checked before anything changes (ValueError):
        the wrapped optimizer's checks, and, since a bucket steps as one, one step
        count for all the parameters of a bucket, and state for all of them or none.
        """
        where = "ZeroRedundancyOptimizer.load_state_dict"
        owner = self._layout_owner
        groups, id_map = unpack_groups(
            state_dict, self.param_groups, owner.check_group, where, owner.hyperparameters
        )
        loaded = unpack_state(
            state_dict, id_map, groups,
            lambda group: owner.check_group(group, where), owner.counts_steps,
            where, tuple(owner.hyperparameters.scalar_state),
        )
        inner_state: dict[int, dict[str, Any]] = {}
        inner_groups: list[dict[str, Any]] = []
        for group, shards in zip(groups, self._shards, strict=True):
            indices: list[int] = []
            for s in shards:
                entry = _shard_entry(s, loaded, where)
                if s.tensor is None:
                    continue
                index = sum(len(g["params"]) for g in inner_groups) + len(indices)
                indices.append(index)
                if entry is not None:
                    inner_state[index] = entry
            if indices:
                inner_groups.append({**_hyperparameters(group), "params": indices})
        if self._inner is not None:
            self._inner.load_state_dict({"state": inner_state, "param_groups": inner_groups})
        for group, new in zip(self.param_groups, groups, strict=True):
            group.clear()
            group.update(new)

    def _all_shards(self) -> list[Shard]:
        return [s for group_shards in self._shards for s in group_shards]

    def __repr__(self) -> str:
        return (f"ZeroRedundancyOptimizer({self.optimizer_class.__name__}, rank "
                f"{self.world.rank} of {self.world.size})")


def _hyperparameters(group: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in group.items() if k != "params"}


def _listed_groups(params: ParamsLike) -> tuple[ParamsLike, list[list[Tensor]]]:
    """``params`` with every iterable read into a list (it is read twice: by ZeRO over NCCL,
    then by the optimizer), and each param group's Tensors; no groups where ``params`` is not
    an iterable of Tensors or of group dicts, or a group is empty (the optimizer then says what
    is wrong)."""
    if isinstance(params, Tensor):
        return params, []
    try:
        items: list[Any] = list(params)  # unchecked: what the user passed
    except TypeError:
        return params, []
    if items and all(isinstance(item, Tensor) for item in items):
        return items, [items]
    if not items or not all(isinstance(item, Mapping) for item in items):
        return items, []
    listed: list[dict[str, Any]] = []
    groups: list[list[Tensor]] = []
    for item in items:
        group = dict(item)
        members: Any = group.get("params")
        if not isinstance(members, Tensor):
            try:
                group["params"] = members = list(members)
            except TypeError:
                return items, []
        listed.append(group)
        groups.append([members] if isinstance(members, Tensor) else members)
    if not all(params and all(isinstance(p, Tensor) for p in params) for params in groups):
        return listed, []
    return listed, groups

def _shard_entry(s: Shard, loaded: Mapping[Tensor, HostState], where: str
                 ) -> dict[str, Any] | None:
    """This rank's range of the loaded state of bucket ``s``, or None if it has none."""
    states = [loaded.get(p) for p in s.params]
    if all(st is None for st in states):
        return None
    if any(st is None for st in states):
        raise ValueError(
            f"{where}: a flat bucket steps as one, but only some of its {len(s.params)} "
            "parameters have state in the state dict"
        )
    steps = {st[0] for st in states if st is not None}
    if len(steps) > 1:
        raise ValueError(
            f"{where}: the parameters of a flat bucket must share one step count; the state "
            f"dict has {sorted(steps, key=str)}"
        )
    scalars = [st[1] for st in states if st is not None]
    if any(other != scalars[0] for other in scalars):
        raise ValueError(
            f"{where}: the parameters of a flat bucket must share their per-parameter numbers "
            f"({sorted(scalars[0])}); the state dict has {scalars}"
        )
    names = next(st for st in states if st is not None)[2].keys()
    entry: dict[str, Any] = {}
    (step,) = steps
    if step is not None:
        entry["step"] = step
    entry.update(scalars[0])
    for name in names:
        whole = np.concatenate([st[2][name].reshape(-1) for st in states if st is not None])
        entry[name] = whole[s.lo:s.hi]
    return entry
