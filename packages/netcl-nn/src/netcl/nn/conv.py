"""Conv2d: 2-D convolution (cross-correlation) over NCHW input."""

from __future__ import annotations

import math

from netcl.core.tensor import Parameter, Tensor, dtypes, empty
from netcl.core.tensor.dispatch import DeviceLike, resolve_device
from netcl.core.tensor.ops.conv import IntPair, pair
from netcl.nn import init
from netcl.nn.functional.layers import conv2d
from netcl.nn.module import Module


class Conv2d(Module):
    """out[n, o] = bias[o] + sum_c weight[o, c] (*) x[n, c], as PyTorch's Conv2d (groups=1).

    ``weight`` is (out_channels, in_channels, KH, KW) and ``bias``
    (out_channels,), both initialized as PyTorch does: kaiming_uniform_ with
    a = sqrt(5) and U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in * KH * KW.
    """

    def __init__(
        self,
        q: DeviceLike,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair,
        stride: IntPair = 1,
        padding: IntPair = 0,
        dilation: IntPair = 1,
        bias: bool = True,
        dtype: dtypes.DTypeLike = dtypes.float32,
    ) -> None:
        super().__init__()
        device = resolve_device(q)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = pair("Conv2d", "kernel_size", kernel_size, 1)
        self.stride = pair("Conv2d", "stride", stride, 1)
        self.padding = pair("Conv2d", "padding", padding, 0)
        self.dilation = pair("Conv2d", "dilation", dilation, 1)
        shape = (out_channels, in_channels, *self.kernel_size)
        self.weight = Parameter(empty(shape, dtype, device))
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.bias: Parameter | None = None
        if bias:
            fan_in, _ = init.fans(self.weight)
            bound = 1.0 / math.sqrt(fan_in) if fan_in else 0.0
            self.bias = Parameter(empty((out_channels,), dtype, device))
            init.uniform_(self.bias, -bound, bound)
        else:
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        return conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}"
        )
