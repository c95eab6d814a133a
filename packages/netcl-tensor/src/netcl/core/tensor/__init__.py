"""netcl.core.tensor: Tensor, Parameter, dtypes and the op system."""

from netcl.core.tensor import backends, ops
from netcl.core.tensor._version import __version__
from netcl.core.tensor.creation import (
    arange,
    empty_like,
    from_array,
    from_buffer,
    from_numpy,
    full,
    full_like,
    get_rng_state,
    manual_seed,
    ones,
    ones_like,
    rand,
    randn,
    set_rng_state,
    tensor,
    zeros,
    zeros_like,
)
from netcl.core.tensor.creation import (
    empty_tensor as empty,
)
from netcl.core.tensor.dtypes import bfloat16, bool_, float16, float32, int32, int64, uint8
from netcl.core.tensor.pickling import loading_onto
from netcl.core.tensor.tensor import Parameter, Tensor

__all__ = [
    "Parameter", "Tensor", "__version__", "arange", "backends", "bfloat16", "bool_", "empty",
    "empty_like",
    "float16", "float32", "from_array", "from_buffer", "from_numpy", "full", "full_like",
    "get_rng_state", "int32", "int64", "loading_onto", "manual_seed", "ones", "ones_like", "ops",
    "rand", "randn", "set_rng_state", "tensor", "uint8", "zeros", "zeros_like",
]
