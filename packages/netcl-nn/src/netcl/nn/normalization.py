"""LayerNorm: normalization over the trailing axes of each sample."""

from __future__ import annotations

from collections.abc import Sequence

from netcl.core.tensor import Parameter, Tensor, dtypes, empty
from netcl.core.tensor.dispatch import DeviceLike, resolve_device
from netcl.nn import init
from netcl.nn.functional.layers import layer_norm
from netcl.nn.module import Module


class LayerNorm(Module):
    """(x - mean) / sqrt(var + eps) * weight + bias over the last ``normalized_shape`` axes.

    ``weight`` starts at 1 and ``bias`` at 0 (both of ``normalized_shape``)
    when ``elementwise_affine``; the variance is the biased one, as in PyTorch.
    """

    def __init__(
        self,
        q: DeviceLike,
        normalized_shape: int | Sequence[int],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        dtype: dtypes.DTypeLike = dtypes.float32,
    ) -> None:
        super().__init__()
        device = resolve_device(q)
        shape = (
            (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        )
        self.normalized_shape = shape
        self.eps = eps
        self.weight: Parameter | None = None
        self.bias: Parameter | None = None
        if elementwise_affine:
            self.weight = Parameter(init.ones_(empty(shape, dtype, device)))
            if bias:
                self.bias = Parameter(init.zeros_(empty(shape, dtype, device)))
        if self.weight is None:
            self.register_parameter("weight", None)
        if self.bias is None:
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        return layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, affine={self.weight is not None}"
