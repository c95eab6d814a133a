"""Embedding: a lookup table of learned vectors."""

from __future__ import annotations

from netcl.autograd import no_grad
from netcl.core.tensor import Parameter, Tensor, dtypes, empty
from netcl.core.tensor.dispatch import DeviceLike, resolve_device
from netcl.nn import init
from netcl.nn.functional.layers import IndexLike, embedding
from netcl.nn.module import Module


class Embedding(Module):
    """Row ``i`` of ``weight`` (num_embeddings, embedding_dim) for each index ``i``.

    ``weight`` starts N(0, 1), as in PyTorch. Indices are int64 or int32
    (a Tensor, numpy array or list) in ``[0, num_embeddings)``; the output has
    shape (*indices.shape, embedding_dim). With ``padding_idx`` that row starts
    at zero and receives no gradient (see ``netcl.nn.functional.embedding``).
    """

    def __init__(
        self,
        q: DeviceLike,
        num_embeddings: int,
        embedding_dim: int,
        dtype: dtypes.DTypeLike = dtypes.float32,
        padding_idx: int | None = None,
    ) -> None:
        super().__init__()
        device = resolve_device(q)
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        if padding_idx is not None and not -num_embeddings <= padding_idx < num_embeddings:
            raise ValueError(
                f"Embedding: padding_idx {padding_idx} is out of range for {num_embeddings} "
                "embeddings"
            )
        self.padding_idx = None if padding_idx is None else padding_idx % num_embeddings
        self.weight = Parameter(empty((num_embeddings, embedding_dim), dtype, device))
        init.normal_(self.weight)
        if self.padding_idx is not None:
            with no_grad():
                self.weight[self.padding_idx].fill_(0.0)

    def forward(self, indices: IndexLike) -> Tensor:
        return embedding(indices, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        padding = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{padding}"
