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
from netcl.distributed import nccl
from netcl.distributed.mpi_library import check_world_size
from netcl.distributed.nccl import Communicator

# PoCL starts one worker thread per core in every process: K ranks on one machine would run
# K times as many threads as cores, which slows every rank down many times over.
_POCL_THREADS = "POCL_MAX_PTHREAD_COUNT"
_REPORT_S = 0.5


@dataclass(frozen=True, eq=False)
class World:
    """This process's place in the job.

    ``rank`` of ``size`` processes in ``comm`` (MPI's world communicator by
    default); ``local_rank`` of ``local_size`` on this machine, which picks
    ``device``. ``backend`` is what averages gradients: "nccl" (on the GPUs,
    through ``nccl``) or "mpi" (through host memory); ``backend_reason`` says
    why that one.
    """

    comm: MPI.Intracomm
    rank: int
    size: int
    local_rank: int
    local_size: int
    device: Device
    backend: str = "mpi"
    backend_reason: str = "a world of one sends nothing"
    nccl: Communicator | None = None


_world: World | None = None


def init(kind: str = "auto", comm: MPI.Intracomm | None = None, backend: str = "auto"
         ) -> World:
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

    ``backend`` "auto" takes NCCL where every rank can (an NVIDIA GPU of its
    own that imports CUDA memory, cuda-bindings and NCCL installed: the
    ``netcl-distributed[nccl]`` extra), else MPI; "nccl" raises RuntimeError
    where NCCL cannot run, saying why; "mpi" never uses NCCL.

    Calling ``init()`` again returns the same World.
    """
    global _world
    if backend not in ("auto", "nccl", "mpi"):
        raise ValueError(f"init: backend must be 'auto', 'nccl' or 'mpi', got {backend!r}")
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
    chosen, reason = _backend(backend, comm, device, size, local_size)
    communicator = nccl.Communicator(comm, device.cl_device) if chosen == "nccl" else None
    _world = World(comm, rank, size, local_rank, local_size, device, chosen, reason,
                   communicator)
    return _world


def _backend(asked: str, comm: MPI.Intracomm, device: Device, size: int, local_size: int
             ) -> tuple[str, str]:
    """The backend and why: NCCL only if every rank can run it (they agree, collectively)."""
    if size == 1:
        return "mpi", "a world of one sends nothing"
    if asked == "mpi":
        why_not: str | None = "backend='mpi' was asked for"
    else:
        why_not = nccl.unavailable(device.cl_device)
        same_type = sum(info.type == device.type for info in manager.devices())
        if why_not is None and local_size > same_type:
            why_not = (f"{local_size} ranks share {same_type} GPU(s) on this machine; NCCL "
                       "needs a GPU of its own for every rank")
        reasons = comm.allgather(why_not)
        why_not = next((r for r in reasons if r is not None), None)
    if asked == "nccl" and why_not is not None:
        raise RuntimeError(f"netcl.distributed.init(backend='nccl'): {why_not}")
    if why_not is None:
        return "nccl", "every rank has an NVIDIA GPU of its own that NCCL can reach"
    return "mpi", why_not


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
