"""The MPI library follows the launcher, and a mismatch is an error on every rank, never a
silent world of one per process."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from netcl.distributed.mpi_library import (
    check_world_size,
    mpich_wheel_library,
    prefer_launchers_library,
)


def test_the_mpich_wheels_library_is_found() -> None:
    library = mpich_wheel_library()
    assert library is not None and Path(library).is_file(), library


@pytest.mark.parametrize("variable", ["PMI_SIZE", "OMPI_COMM_WORLD_SIZE"])
def test_a_world_smaller_than_the_launchers_is_refused(variable: str) -> None:
    with pytest.raises(RuntimeError, match="started this process as one of 4 ranks, but the "
                                           "MPI library mpi4py loaded \\(Open MPI v5\\) sees a "
                                           "world of 1"):
        check_world_size(1, "Open MPI v5", {variable: "4"})


def test_a_matching_world_passes() -> None:
    check_world_size(3, "MPICH", {"PMI_SIZE": "3"})
    check_world_size(1, "MPICH", {})  # no launcher: a plain process is a world of one


def test_hydra_gets_the_mpich_wheels_library_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The choice is made before mpi4py.MPI is loaded; in this test process it already is.
    monkeypatch.delitem(sys.modules, "mpi4py.MPI")
    environ = {"PMI_SIZE": "2"}
    prefer_launchers_library(environ)
    assert environ["MPI4PY_LIBMPI"] == mpich_wheel_library()
    chosen = {"PMI_SIZE": "2", "MPI4PY_LIBMPI": "/opt/other/libmpi.so"}
    prefer_launchers_library(chosen)
    assert chosen["MPI4PY_LIBMPI"] == "/opt/other/libmpi.so"
    plain: dict[str, str] = {}
    prefer_launchers_library(plain)
    assert plain == {}
