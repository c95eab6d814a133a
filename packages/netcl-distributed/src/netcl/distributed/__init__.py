"""netcl.distributed: data-parallel training over MPI (mpi4py).

``init()`` joins the job started by ``mpiexec -n K`` (or makes a world of
one process) and picks this rank's device; ``DistributedSampler`` gives each
rank a disjoint share of the data; ``DistributedDataParallel`` averages
gradients across ranks during backward, one all-reduce per bucket;
``ZeroRedundancyOptimizer`` (ZeRO-1) wraps any netcl optimizer so that each
rank keeps the state of 1/N of the parameters.
"""

from netcl.distributed._version import __version__
from netcl.distributed.ddp import DistributedDataParallel
from netcl.distributed.sampler import DistributedSampler
from netcl.distributed.world import World, init, world
from netcl.distributed.zero import ZeroRedundancyOptimizer

__all__ = [
    "DistributedDataParallel",
    "DistributedSampler",
    "World",
    "ZeroRedundancyOptimizer",
    "__version__",
    "init",
    "world",
]
