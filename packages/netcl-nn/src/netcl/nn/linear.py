"""Linear: y = x W^T + b."""

from __future__ import annotations

import math

from netcl.core.tensor import Parameter, Tensor, dtypes, empty
from netcl.core.tensor.dispatch import DeviceLike, resolve_device
from netcl.nn import init
from netcl.nn.functional.layers import linear
from netcl.nn.module import Module


class Linear(Module):
    """y = x @ weight.T + bias, for x of shape (..., in_features).

    ``q`` is where the parameters live: a pyopencl CommandQueue, a netcl
    Device, or None for the default device. ``weight`` is
    (out_features, in_features), initialized as PyTorch does:
    kaiming_uniform_ with a = sqrt(5), i.e. U(-1/sqrt(in), 1/sqrt(in)); the
    ``bias`` (out_features,) is U(-1/sqrt(in), 1/sqrt(in)). Draws come from
    the tensor layer's generator (``netcl.core.tensor.manual_seed``).
    """

    def __init__(
        self,
        q: DeviceLike,
        in_features: int,
        out_features: int,
        bias: bool = True,
        dtype: dtypes.DTypeLike = dtypes.float32,
    ) -> None:
        super().__init__()
        device = resolve_device(q)
        self.in_features = in_features
        self.out_features = out_features
        self.weight = Parameter(empty((out_features, in_features), dtype, device))
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.bias: Parameter | None = None
        if bias:
            self.bias = Parameter(empty((out_features,), dtype, device))
            bound = 1.0 / math.sqrt(in_features) if in_features else 0.0
            init.uniform_(self.bias, -bound, bound)
        else:
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        return linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )
