"""The world: this process's rank among the MPI job's processes, and its one device.

``init()`` is the first call of a data-parallel program. It works the same
under ``mpiexec -n K`` and as a plain process (a world of one).
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from dataclasses import dataclass
from types import TracebackType

from mpi4py import MPI

from netcl.core.device import Device, manager
from netcl.core.device.manager import ENV_VAR
from netcl.distributed.mpi_library import check_world_size

# PoCL starts one worker thread per core in every process: K ranks on one machine would run
# K times as many threads as cores, which slows every rank down many times over.
_POCL_THREADS = "POCL_MAX_PTHREAD_COUNT"
_REPORT_S = 0.5


@dataclass(frozen=True, eq=False)
class World:
    """This process's place in the job.

    ``rank`` of ``size`` processes in ``comm`` (MPI's world communicator by
    default); ``local_rank`` of ``local_size`` on this machine, which picks
    ``device``.
    """

    comm: MPI.Intracomm
    rank: int
    size: int
    local_rank: int
    local_size: int
    device: Device


_world: World | None = None


def init(kind: str = "auto", comm: MPI.Intracomm | None = None) -> World:
    """Join the job: learn this process's rank and take one OpenCL device for it.

    ``kind`` is "auto", "gpu", "cpu" (``$NETCL_DEVICE`` decides "auto" when
    set) or an explicit "PLATFORM:DEVICE". For a kind, the ranks on one
    machine take that kind's devices round-robin by local rank (GPU i for
    local rank i). Afterwards ``netcl.core.device.manager.default("auto")``
    returns the same device, so code that asks for the default device
    follows this rank's choice.

    With more than one rank: each rank's PoCL gets ``cores / local ranks``
    threads unless ``$POCL_MAX_PTHREAD_COUNT`` is set (set here, before any
    OpenCL call of this process), and an exception that nothing catches
    prints its traceback, prefixed by the rank, and aborts the whole job
    with ``MPI_Abort``: the other ranks, perhaps waiting in a collective for
    this one, are ended instead of hanging.

    Calling ``init()`` again returns the same World.
    """
    global _world
    if _world is not None:
        return _world
    comm = MPI.COMM_WORLD if comm is None else comm
    local = comm.Split_type(MPI.COMM_TYPE_SHARED)
    rank, size, local_rank, local_size = comm.rank, comm.size, local.rank, local.size
    local.Free()
    if comm is MPI.COMM_WORLD:
        check_world_size(size, MPI.Get_library_version().splitlines()[0].strip())
    if size > 1:
        cores = os.cpu_count() or 1
        os.environ.setdefault(_POCL_THREADS, str(max(1, cores // local_size)))
        _abort_on_uncaught_exception(comm, rank, size)
    device = _device_for(kind, local_rank)
    os.environ[ENV_VAR] = device.spec
    _world = World(comm, rank, size, local_rank, local_size, device)
    return _world


def world() -> World:
    """The World that ``init()`` made; RuntimeError before it."""
    if _world is None:
        raise RuntimeError(
            "netcl.distributed: call netcl.distributed.init() first (it joins the MPI job "
            "and picks this rank's device)"
        )
    return _world


def world_or_default(given: World | None) -> World:
    """``given``, checked, or the World ``init()`` made."""
    if given is None:
        return world()
    if not isinstance(given, World):
        raise TypeError(f"expected a netcl.distributed.World, got {type(given).__name__}")
    return given


def _device_for(kind: str, local_rank: int) -> Device:
    """Device number ``local_rank`` (round-robin) of ``kind``; an explicit spec is kept."""
    if kind == "auto":
        kind = os.environ.get(ENV_VAR, "").strip() or "auto"
    if ":" in kind:
        return manager.default(kind)
    first = manager.default(kind)  # resolves "auto" to a type, raises if there is none
    same_type = [info.spec for info in manager.devices() if info.type == first.type]
    return manager.default(same_type[local_rank % len(same_type)])


def _abort_on_uncaught_exception(comm: MPI.Intracomm, rank: int, size: int) -> None:
    def abort(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        text = "".join(traceback.format_exception(kind, value, tb))
        sys.stderr.flush()
        # One write, so that the ranks' reports do not interleave line by line.
        os.write(2, f"netcl.distributed: rank {rank} of {size} raised; aborting the job\n"
                    f"{text}".encode())
        # The launcher forwards each rank's output as it reads it, and tears the job down
        # when the abort reaches it: a moment first, so that it reads this report (measured
        # on a loaded 2-core machine: without the pause, now and then no report came out).
        time.sleep(_REPORT_S)
        comm.Abort(1)

    sys.excepthook = abort
