"""Flatten: merge a range of axes into one."""

from __future__ import annotations

from netcl.core.tensor import Tensor
from netcl.nn.functional.layers import flatten
from netcl.nn.module import Module


class Flatten(Module):
    """Axes ``start_dim`` to ``end_dim`` merged: (N, C, H, W) -> (N, C*H*W) by default."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, x: Tensor) -> Tensor:
        return flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
