"""MultiheadAttention, with PyTorch's parameter names."""

from __future__ import annotations

import math

from netcl.core.tensor import Parameter, Tensor, dtypes, empty, full, ops, zeros
from netcl.core.tensor.dispatch import DeviceLike, resolve_device
from netcl.nn import init
from netcl.nn.functional.attention import attention_weights, scaled_dot_product_attention
from netcl.nn.functional.layers import dropout, linear
from netcl.nn.linear import Linear
from netcl.nn.module import Module


class MultiheadAttention(Module):
    """Attention over ``num_heads`` heads of ``embed_dim // num_heads`` dims (Vaswani et al.,
    2017), as ``torch.nn.MultiheadAttention``.

    Parameters ``in_proj_weight`` (3E, E) (or, when ``kdim`` or ``vdim``
    differs from E, ``q_proj_weight`` (E, E), ``k_proj_weight`` (E, kdim) and
    ``v_proj_weight`` (E, vdim)), ``in_proj_bias`` (3E,) and ``out_proj`` (a
    Linear), so a torch state dict loads as is; initialized
    as torch does (xavier-uniform projections, zero biases). Inputs are
    (N, L, E) when ``batch_first``, else (L, N, E), or unbatched (L, E).
    Masks as torch's: a bool ``attn_mask`` (L, S) or (N*heads, L, S) and a
    bool ``key_padding_mask`` (N, S) mark with True what may NOT be attended
    to; float masks are added to the scores. ``add_bias_kv`` appends learned
    ``bias_k`` and ``bias_v`` (1, 1, E) to the projected keys and values, and
    ``add_zero_attn`` a zero key and value after that; every query may attend to
    them (the masks are padded as torch pads them).

    >>> from netcl.core.tensor import ones
    >>> out, weights = MultiheadAttention(None, 8, 2, batch_first=True)(*[ones((1, 3, 8))] * 3)
    >>> out.shape, weights.shape
    ((1, 3, 8), (1, 3, 3))
    """

    def __init__(
        self, q: DeviceLike, embed_dim: int, num_heads: int, dropout: float = 0.0,
        bias: bool = True, add_bias_kv: bool = False, add_zero_attn: bool = False,
        kdim: int | None = None, vdim: int | None = None, batch_first: bool = False,
        dtype: dtypes.DTypeLike = dtypes.float32,
    ) -> None:
        super().__init__()
        if num_heads <= 0 or embed_dim % num_heads:
            raise ValueError(
                f"MultiheadAttention: embed_dim {embed_dim} must be divisible by num_heads "
                f"{num_heads}"
            )
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"MultiheadAttention: dropout must be in [0, 1], got {dropout}")
        device = resolve_device(q)
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, dropout
        self.kdim = embed_dim if kdim is None else kdim
        self.vdim = embed_dim if vdim is None else vdim
        self.head_dim = embed_dim // num_heads
        self.batch_first = batch_first
        # One (3E, E) matrix when key and value have E features, else one per projection:
        # torch's two layouts, so either state dict loads.
        self.in_proj_weight: Parameter | None = None
        self.q_proj_weight: Parameter | None = None
        self.k_proj_weight: Parameter | None = None
        self.v_proj_weight: Parameter | None = None
        if self.kdim == embed_dim and self.vdim == embed_dim:
            self.in_proj_weight = Parameter(
                init.xavier_uniform_(empty((3 * embed_dim, embed_dim), dtype, device)))
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.register_parameter("in_proj_weight", None)
            for name, features in (("q_proj_weight", embed_dim), ("k_proj_weight", self.kdim),
                                   ("v_proj_weight", self.vdim)):
                weight = empty((embed_dim, features), dtype, device)
                setattr(self, name, Parameter(init.xavier_uniform_(weight)))
        self.in_proj_bias: Parameter | None = None
        if bias:
            self.in_proj_bias = Parameter(init.zeros_(empty((3 * embed_dim,), dtype, device)))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(device, embed_dim, embed_dim, bias=bias, dtype=dtype)
        if self.out_proj.bias is not None:
            init.zeros_(self.out_proj.bias)
        self.bias_k: Parameter | None = None
        self.bias_v: Parameter | None = None
        for name in ("bias_k", "bias_v"):
            if add_bias_kv:
                weight = init.xavier_normal_(empty((1, 1, embed_dim), dtype, device))
                setattr(self, name, Parameter(weight))
            else:
                self.register_parameter(name, None)
        self.add_zero_attn = add_zero_attn

    def forward(
        self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Tensor | None = None,
        need_weights: bool = True, attn_mask: Tensor | None = None,
        average_attn_weights: bool = True, is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """(output, weights): the output as the query's layout; the attention weights
        (N, L, S), averaged over heads unless not ``average_attn_weights`` (then
        (N, heads, L, S)), only when ``need_weights`` (which forms them; without it the
        fused kernel runs). ``is_causal`` without ``attn_mask`` masks j > i."""
        unbatched = query.ndim == 2
        if unbatched:
            query, key, value = (ops.unsqueeze(t, 0) for t in (query, key, value))
        elif not self.batch_first:
            query, key, value = (ops.transpose(t, 0, 1) for t in (query, key, value))
        if (query.ndim != 3 or query.shape[-1] != self.embed_dim or key.shape[:2] !=
                value.shape[:2] or key.shape[-1] != self.kdim or value.shape[-1] != self.vdim):
            raise ValueError(
                f"MultiheadAttention: query {query.shape}, key {key.shape} and value "
                f"{value.shape} must be (N, L, {self.embed_dim}), (N, S, {self.kdim}) and "
                f"(N, S, {self.vdim})"
            )
        q, k, v = (self._project(t, i) for i, t in enumerate((query, key, value)))
        mask = self._mask(attn_mask, key_padding_mask, query.shape[0], query.shape[1],
                          key.shape[1], query.dtype)
        causal = is_causal and mask is None
        k, v, extra = self._append_keys(k, v)
        if extra:
            if causal:  # the mask is_causal stands for, over the given keys
                causal = False
                mask = ops.triu(full((query.shape[1], key.shape[1]), -math.inf, query.dtype,
                                     query.device), 1)
            if mask is not None:  # the appended keys are open to every query
                padding = zeros((*mask.shape[:-1], extra), mask.dtype, mask.device)
                mask = ops.cat([mask, padding], -1)
        p = self.dropout if self.training else 0.0
        weights = None
        if need_weights:
            weights = attention_weights(q, k, mask, causal)
            attended = ops.matmul(dropout(weights, p), v)
            if average_attn_weights:
                weights = ops.mean(weights, 1)
        else:
            attended = scaled_dot_product_attention(q, k, v, mask, p, causal)
        n, length = query.shape[:2]
        merged = ops.reshape(ops.permute(attended, (0, 2, 1, 3)), (n, length, self.embed_dim))
        out = self.out_proj(merged)
        if unbatched:
            out = ops.squeeze(out, 0)
            weights = None if weights is None else ops.squeeze(weights, 0)
        elif not self.batch_first:
            out = ops.transpose(out, 0, 1)
        return out, weights

    def _project(self, x: Tensor, which: int) -> Tensor:
        """Projection ``which`` (0 query, 1 key, 2 value) of (N, L, E) as (N, heads, L, d)."""
        rows = slice(which * self.embed_dim, (which + 1) * self.embed_dim)
        bias = None if self.in_proj_bias is None else self.in_proj_bias[rows]
        if self.in_proj_weight is not None:
            weight = self.in_proj_weight[rows]
        else:
            separate = (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)[which]
            assert separate is not None
            weight = separate
        projected = linear(x, weight, bias)
        split = ops.reshape(projected, (x.shape[0], x.shape[1], self.num_heads, self.head_dim))
        return ops.permute(split, (0, 2, 1, 3))

    def _append_keys(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor, int]:
        """(N, heads, S, d) keys and values with ``bias_k``/``bias_v`` and then a zero key
        and value appended, as configured, and how many keys were appended."""
        n, heads, _, d = k.shape
        extra = 0
        if self.bias_k is not None and self.bias_v is not None:
            k, v = (ops.cat([t, ops.expand(ops.reshape(bias, (1, heads, 1, d)),
                                           (n, heads, 1, d))], 2)
                    for t, bias in ((k, self.bias_k), (v, self.bias_v)))
            extra += 1
        if self.add_zero_attn:
            k, v = (ops.cat([t, zeros((n, heads, 1, d), t.dtype, t.device)], 2) for t in (k, v))
            extra += 1
        return k, v, extra

    def _mask(
        self, attn_mask: Tensor | None, key_padding_mask: Tensor | None, n: int, length: int,
        source: int, dtype: dtypes.DTypeLike,
    ) -> Tensor | None:
        """torch's two masks as one additive (N or 1, heads or 1, L, S) mask (or None)."""
        merged: Tensor | None = None
        if attn_mask is not None:
            per_head = (n * self.num_heads, length, source)
            if attn_mask.shape not in ((length, source), per_head):
                raise ValueError(
                    f"MultiheadAttention: attn_mask must be {(length, source)} or {per_head}, "
                    f"got {attn_mask.shape}"
                )
            if attn_mask.ndim == 3:
                attn_mask = ops.reshape(attn_mask, (n, self.num_heads, length, source))
            merged = _additive(attn_mask, dtype)
        if key_padding_mask is not None:
            if key_padding_mask.shape != (n, source):
                raise ValueError(
                    f"MultiheadAttention: key_padding_mask must be {(n, source)}, got "
                    f"{key_padding_mask.shape}"
                )
            padding = ops.reshape(_additive(key_padding_mask, dtype), (n, 1, 1, source))
            merged = padding if merged is None else ops.add(merged, padding)
        return merged

    def extra_repr(self) -> str:
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, "
                f"dropout={self.dropout}, batch_first={self.batch_first}")


def _additive(mask: Tensor, dtype: dtypes.DTypeLike) -> Tensor:
    """A torch-style mask (bool: True is masked out) as scores to add."""
    if mask.dtype == dtypes.bool_:
        return ops.cast(ops.where(mask, -math.inf, 0.0), dtype)
    return mask
