"""Dropout: random zeroing in training mode, identity in eval mode."""

from __future__ import annotations

from netcl.core.tensor import Tensor
from netcl.nn.functional.layers import dropout
from netcl.nn.module import Module


class Dropout(Module):
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p) while training.

    The mask is random on every call (the tensor layer's seeded generator);
    after ``eval()`` the layer passes its input through unchanged. ``inplace``
    (PyTorch's) gives the same value, computed out of place (see ``functional.dropout``).

    >>> Dropout(0.1)
    Dropout(p=0.1, inplace=False)
    """

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p = p
        self.inplace = inplace

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training, self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
