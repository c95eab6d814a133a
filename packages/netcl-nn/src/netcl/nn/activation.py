"""Activation layers (no parameters, no queue): ReLU, GELU, SiLU, LeakyReLU, Tanh, Sigmoid,
Softmax, LogSoftmax, and Identity."""

from __future__ import annotations

from typing import Any

from netcl.core.tensor import Tensor
from netcl.nn.functional import activations as F
from netcl.nn.module import Module


class _Inplace(Module):
    """An activation that takes PyTorch's ``inplace`` and computes out of place: the value is
    the same, the input is left unchanged (see ``functional.relu``)."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class ReLU(_Inplace):
    """max(x, 0). ``inplace=True`` (PyTorch's) gives the same value, computed out of place:
    netcl's autograd records out-of-place ops only, so the input is left unchanged (see
    ``functional.relu``).

    >>> ReLU(inplace=True)
    ReLU(inplace=True)
    """

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x, self.inplace)


class GELU(Module):
    """x * Phi(x); ``approximate`` "none" (exact, erf; PyTorch's default) or "tanh"."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(x, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Tanh(Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.tanh(x)


class Sigmoid(Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.sigmoid(x)


class SiLU(_Inplace):
    """x * sigmoid(x). ``inplace=True`` gives the same value, computed out of place, the
    input left unchanged (see ``ReLU``)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.silu(x, self.inplace)


class LeakyReLU(_Inplace):
    """x where x > 0, else ``negative_slope`` * x. ``inplace=True`` gives the same value,
    computed out of place, the input left unchanged (see ``ReLU``)."""

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        super().__init__(inplace)
        self.negative_slope = negative_slope

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, self.negative_slope, self.inplace)

    def extra_repr(self) -> str:
        inplace = ", inplace=True" if self.inplace else ""
        return f"negative_slope={self.negative_slope}{inplace}"


class _AlongDim(Module):
    """An activation along one axis. ``dim`` is required: torch's ``dim=None`` picks an
    axis from the input's rank, with a deprecation warning; a guess netcl does not copy."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Softmax(_AlongDim):
    """exp(x) / sum(exp(x)) along ``dim`` (required)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.softmax(x, self.dim)


class LogSoftmax(_AlongDim):
    """log_softmax along ``dim`` (required)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.log_softmax(x, self.dim)


class Identity(Module):
    """Returns its input; takes and ignores any constructor arguments, as torch's does (so a
    layer can be swapped for it without editing the call)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, x: Any) -> Any:
        return x
