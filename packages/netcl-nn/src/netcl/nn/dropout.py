"""Dropout: random zeroing in training mode, identity in eval mode."""

from __future__ import annotations

from netcl.core.tensor import Tensor
from netcl.nn.functional.layers import dropout
from netcl.nn.module import Module


class Dropout(Module):
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p) while training.

    The mask is random on every call (the tensor layer's seeded generator);
    after ``eval()`` the layer passes its input through unchanged.
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
