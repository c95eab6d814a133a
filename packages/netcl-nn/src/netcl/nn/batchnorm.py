"""BatchNorm1d, BatchNorm2d, GroupNorm and RMSNorm, with PyTorch's parameters and buffers."""

from __future__ import annotations

from collections.abc import Sequence

from netcl.core.tensor import Parameter, Tensor, dtypes, empty, ops, zeros
from netcl.core.tensor.dispatch import DeviceLike, resolve_device
from netcl.nn import init
from netcl.nn.functional.normalization import batch_norm, group_norm, rms_norm
from netcl.nn.module import Module


class _BatchNorm(Module):
    """Per-channel normalisation of (N, C, ...) input; see ``netcl.nn.functional.batch_norm``.

    Parameters ``weight`` (1) and ``bias`` (0) when ``affine``; buffers
    ``running_mean`` (0), ``running_var`` (1) and ``num_batches_tracked``
    (int64) when ``track_running_stats``: the names of PyTorch's state dict,
    so one loads as is. ``momentum=None`` makes the running statistics a
    cumulative average (factor 1 / num_batches_tracked, computed on the
    device so a jitted step replays it).
    """

    _ndims: tuple[int, ...] = ()

    def __init__(
        self,
        q: DeviceLike,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        dtype: dtypes.DTypeLike = dtypes.float32,
    ) -> None:
        super().__init__()
        if num_features <= 0:
            raise ValueError(f"{type(self).__name__}: num_features must be positive, got "
                             f"{num_features}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"{type(self).__name__}: momentum must be in [0, 1] or None, got "
                             f"{momentum}")
        device = resolve_device(q)
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        self.weight: Parameter | None = None
        self.bias: Parameter | None = None
        if affine:
            self.weight = Parameter(init.ones_(empty((num_features,), dtype, device)))
            self.bias = Parameter(init.zeros_(empty((num_features,), dtype, device)))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.running_mean: Tensor | None = None
        self.running_var: Tensor | None = None
        self.num_batches_tracked: Tensor | None = None
        if track_running_stats:
            self.register_buffer("running_mean", zeros((num_features,), dtype, device))
            self.register_buffer("running_var", init.ones_(empty((num_features,), dtype,
                                                                 device)))
            self.register_buffer("num_batches_tracked", zeros((), dtypes.int64, device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim not in self._ndims or x.shape[1] != self.num_features:
            raise ValueError(
                f"{type(self).__name__}: expected a {' or '.join(map(str, self._ndims))}-D "
                f"input with {self.num_features} channels in axis 1, got shape {x.shape}"
            )
        momentum: float | Tensor = 0.0 if self.momentum is None else self.momentum
        # Counted only for a batch batch_norm accepts, so a refused call changes nothing.
        if self.training and self.num_batches_tracked is not None and x.size > x.shape[1]:
            ops.add_(self.num_batches_tracked, 1)
            if self.momentum is None:
                momentum = ops.div(1.0, ops.cast(self.num_batches_tracked, dtypes.float32))
        return batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                          self.training or self.running_mean is None, momentum, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) input (Ioffe and Szegedy, 2015).

    >>> from netcl.core.tensor import ones
    >>> BatchNorm1d(None, 3)(ones((4, 3))).shape
    (4, 3)
    """

    _ndims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) input (Ioffe and Szegedy, 2015).

    >>> from netcl.core.tensor import ones
    >>> BatchNorm2d(None, 3)(ones((2, 3, 4, 4))).shape
    (2, 3, 4, 4)
    """

    _ndims = (4,)


class GroupNorm(Module):
    """Normalisation over groups of channels per sample (Wu and He, 2018); ``weight`` (1) and
    ``bias`` (0) per channel when ``affine``."""

    def __init__(
        self, q: DeviceLike, num_groups: int, num_channels: int, eps: float = 1e-5,
        affine: bool = True, dtype: dtypes.DTypeLike = dtypes.float32,
    ) -> None:
        super().__init__()
        if num_groups <= 0 or num_channels % num_groups:
            raise ValueError(
                f"GroupNorm: num_channels {num_channels} must be divisible by num_groups "
                f"{num_groups}"
            )
        device = resolve_device(q)
        self.num_groups, self.num_channels, self.eps, self.affine = (
            num_groups, num_channels, eps, affine)
        self.weight: Parameter | None = None
        self.bias: Parameter | None = None
        if affine:
            self.weight = Parameter(init.ones_(empty((num_channels,), dtype, device)))
            self.bias = Parameter(init.zeros_(empty((num_channels,), dtype, device)))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        return group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class RMSNorm(Module):
    """x / sqrt(mean(x^2) + eps) * weight over the last ``normalized_shape`` axes (Zhang and
    Sennrich, 2019); ``eps=None`` is the input dtype's machine epsilon, as PyTorch."""

    def __init__(
        self, q: DeviceLike, normalized_shape: int | Sequence[int], eps: float | None = None,
        elementwise_affine: bool = True, dtype: dtypes.DTypeLike = dtypes.float32,
    ) -> None:
        super().__init__()
        shape = ((normalized_shape,) if isinstance(normalized_shape, int)
                 else tuple(normalized_shape))
        self.normalized_shape = shape
        self.eps = eps
        self.weight: Parameter | None = None
        if elementwise_affine:
            self.weight = Parameter(init.ones_(empty(shape, dtype, resolve_device(q))))
        else:
            self.register_parameter("weight", None)

    def forward(self, x: Tensor) -> Tensor:
        return rms_norm(x, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, affine={self.weight is not None}"
