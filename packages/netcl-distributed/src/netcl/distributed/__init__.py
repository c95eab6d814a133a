"""netcl.distributed: data-parallel training over MPI (mpi4py).

``init()`` joins the job started by ``mpiexec -n K`` (or makes a world of
one process) and picks this rank's device; ``DistributedSampler`` gives each
rank a disjoint share of the data; ``DistributedDataParallel`` averages
gradients across ranks during backward, one all-reduce per bucket;
``ZeroRedundancyOptimizer`` (ZeRO-1) wraps any netcl optimizer so that each
rank keeps the state of 1/N of the parameters.
"""

# First: it chooses the MPI library before any module below imports mpi4py.MPI.
from netcl.distributed.mpi_library import prefer_launchers_library

prefer_launchers_library()

from netcl.distributed import comm_hooks  # noqa: E402
from netcl.distributed._version import __version__  # noqa: E402
from netcl.distributed.ddp import DistributedDataParallel  # noqa: E402
from netcl.distributed.sampler import DistributedSampler  # noqa: E402
from netcl.distributed.world import World, init, world  # noqa: E402
from netcl.distributed.zero import ZeroRedundancyOptimizer  # noqa: E402

__all__ = [
    "DistributedDataParallel",
    "DistributedSampler",
    "World",
    "ZeroRedundancyOptimizer",
    "__version__",
    "comm_hooks",
    "init",
    "world",
]
