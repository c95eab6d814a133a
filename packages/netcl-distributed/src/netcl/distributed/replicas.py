"""Keeping replicas equal: every rank's tensors checked against rank 0's, then set to them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from mpi4py import MPI

import netcl.autograd as ag
from netcl.core.tensor import Tensor, float32, from_numpy

Described = tuple[str, tuple[int, ...], str]


def refuse_unless_float32(named: Iterable[tuple[str, Tensor]], where: str) -> None:
    """TypeError naming the first tensor that is not float32: the gradients are averaged in
    float32 (MPI's sums and NCCL's), as the parameters' own dtype."""
    for name, t in named:
        if t.dtype != float32:
            raise TypeError(
                f"{where}: {name} has dtype {t.dtype}; gradients are averaged in float32 only"
            )


def check_same_everywhere(
    comm: MPI.Intracomm, named: Sequence[tuple[str, Tensor]], where: str
) -> None:
    """ValueError on every rank unless every rank has the same names, shapes and dtypes.

    A collective: every rank must call it. The message names the first rank and the
    first tensor that differ from rank 0.
    """
    mine: list[Described] = [(name, t.shape, str(t.dtype)) for name, t in named]
    everyone: list[list[Described]] = comm.allgather(mine)
    root = everyone[0]
    for rank, theirs in enumerate(everyone):
        if theirs == root:
            continue
        for i, (have, want) in enumerate(zip(theirs, root, strict=False)):
            if have != want:
                raise ValueError(
                    f"{where}: the ranks' models differ: tensor {i} is {_say(have)} on rank "
                    f"{rank} but {_say(want)} on rank 0"
                )
        raise ValueError(
            f"{where}: the ranks' models differ: rank {rank} has {len(theirs)} parameters and "
            f"buffers, rank 0 has {len(root)}"
        )


def _say(described: Described) -> str:
    name, shape, dtype = described
    return f"{name!r} of shape {shape} and dtype {dtype}"


def broadcast_from_root(comm: MPI.Intracomm, tensors: Sequence[Tensor]) -> None:
    """Overwrite each tensor, on every rank, with rank 0's values (a collective)."""
    for t in tensors:
        host = t.numpy()
        comm.Bcast(host, root=0)
        if comm.rank != 0:
            with ag.no_grad():
                t.copy_(from_numpy(host, t.device))
