"""The MPI library that belongs to the launcher that started this process.

mpi4py's wheels load whichever ``libmpi`` they find first: one already in the
process, ``$MPI4PY_LIBMPI``, then the library path. On a machine with a system
Open MPI beside the mpich wheel (the lent GPU machines have one), a job that the
wheel's ``mpiexec`` (Hydra) starts could load Open MPI, and then every rank
initialises as a world of one: K copies of the same job, training side by side
without a word. So, before ``mpi4py.MPI`` is first imported, a process that
Hydra started is pointed at the mpich wheel's library; and ``init()`` refuses a
world whose size is not the one the launcher announced.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
from collections.abc import Mapping

# What each launcher tells the processes it starts about the job's size.
LAUNCHER_SIZE = {"PMI_SIZE": "MPICH's mpiexec (Hydra)",
                 "OMPI_COMM_WORLD_SIZE": "Open MPI's mpirun"}


def mpich_wheel_library() -> str | None:
    """The path of the mpich wheel's ``libmpi.so.12``, None if the wheel is not installed."""
    try:
        files = importlib.metadata.distribution("mpich").files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in files:
        if file.name == "libmpi.so.12":
            return str(file.locate())
    return None


def prefer_launchers_library(environ: dict[str, str] | None = None) -> None:
    """Under Hydra, have mpi4py load the mpich wheel's library (unless told otherwise).

    Does nothing once ``mpi4py.MPI`` is imported (the library is loaded by then) or when
    ``$MPI4PY_LIBMPI`` or ``$MPI4PY_MPIABI`` already names a choice.
    """
    env = os.environ if environ is None else environ
    if "mpi4py.MPI" in sys.modules or "PMI_SIZE" not in env:
        return
    if "MPI4PY_LIBMPI" in env or "MPI4PY_MPIABI" in env:
        return
    library = mpich_wheel_library()
    if library is not None:
        env["MPI4PY_LIBMPI"] = library


def check_world_size(size: int, library: str, environ: Mapping[str, str] | None = None) -> None:
    """RuntimeError if the launcher started this process as one of N ranks but MPI sees
    ``size``: the library mpi4py loaded (``library``, its version line) is not the
    launcher's, and each rank would run alone."""
    env = os.environ if environ is None else environ
    for variable, launcher in LAUNCHER_SIZE.items():
        announced = env.get(variable, "")
        if announced.isdigit() and int(announced) != size:
            raise RuntimeError(
                f"netcl.distributed.init: {launcher} started this process as one of "
                f"{announced} ranks, but the MPI library mpi4py loaded ({library}) sees a world "
                f"of {size}: that library does not belong to the launcher. Start the job with "
                "the mpiexec of the library mpi4py loads, or set MPI4PY_LIBMPI to the "
                "launcher's libmpi"
            )
