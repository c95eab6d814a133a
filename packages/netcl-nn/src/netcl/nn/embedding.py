"""Embedding: a lookup table of learned vectors."""

from __future__ import annotations

from netcl.core.tensor import Parameter, Tensor, dtypes, empty
from netcl.core.tensor.dispatch import DeviceLike, resolve_device
from netcl.nn import init
from netcl.nn.functional.layers import IndexLike, embedding
from netcl.nn.module import Module


class Embedding(Module):
    """Row ``i`` of ``weight`` (num_embeddings, embedding_dim) for each index ``i``.

    ``weight`` starts N(0, 1), as in PyTorch. Indices are int64 or int32
    (a Tensor, numpy array or list); the output has shape
    (*indices.shape, embedding_dim).
    """

    def __init__(
        self,
        q: DeviceLike,
        num_embeddings: int,
        embedding_dim: int,
        dtype: dtypes.DTypeLike = dtypes.float32,
    ) -> None:
        super().__init__()
        device = resolve_device(q)
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.weight = Parameter(empty((num_embeddings, embedding_dim), dtype, device))
        init.normal_(self.weight)

    def forward(self, indices: IndexLike) -> Tensor:
        return embedding(indices, self.weight)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"
