"""Scaled dot-product attention, as ``torch.nn.functional.scaled_dot_product_attention``."""

from __future__ import annotations

import math

from netcl.core.tensor import Tensor, dtypes, ops
from netcl.core.tensor.autocast import to_float32, to_low_precision
from netcl.core.tensor.ops import attention as fused
from netcl.core.tensor.ops.masks import triangle
from netcl.nn.functional.layers import dropout


def scaled_dot_product_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask: Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
) -> Tensor:
    """softmax(query @ key^T * scale + mask) @ value, PyTorch's semantics.

    ``query`` (..., L, E), ``key`` (..., S, E), ``value`` (..., S, Ev) with up
    to two leading dims; the result is (..., L, Ev). ``scale`` defaults to
    1/sqrt(E). ``attn_mask`` broadcasts to (..., L, S): bool (True takes part)
    or float (added to the scores). ``is_causal`` keeps key j for query i only
    where j <= i. Without dropout this is one fused kernel forward and two
    backward that never form the (L, S) weights (memory O(L) per row of
    batch and head; a row with no key left gives 0). With ``dropout_p > 0``
    (applied whatever the module's mode, as in PyTorch) the (..., L, S)
    weights are formed and dropped out as ``dropout`` does, with the device
    generator (so a jitted step replays fresh masks), then multiplied by
    ``value``: O(L S) memory on that path.

    Under autocast query, key, value and a float ``attn_mask`` are cast to its
    dtype (PyTorch's lower-precision list); the fused kernels take float16 and
    bfloat16 alike (computed in float32, rounded once on store).
    """
    if not 0.0 <= dropout_p <= 1.0:
        raise ValueError(f"scaled_dot_product_attention: dropout_p must be in [0, 1], got "
                         f"{dropout_p}")
    query, key, value = to_low_precision(query, key, value)
    if attn_mask is not None and attn_mask.dtype != dtypes.bool_:
        (attn_mask,) = to_low_precision(attn_mask)
    if dropout_p == 0.0 and query.dtype in fused.DTYPES:
        return ops.scaled_dot_product_attention(query, key, value, attn_mask, is_causal, scale)
    weights = attention_weights(query, key, attn_mask, is_causal, scale)
    return ops.matmul(dropout(weights, dropout_p), value)


def attention_weights(
    query: Tensor, key: Tensor, attn_mask: Tensor | None = None, is_causal: bool = False,
    scale: float | None = None,
) -> Tensor:
    """softmax(query @ key^T * scale + mask) as a (..., L, S) tensor: the unfused math
    (a row with every key masked gives NaN, as PyTorch's math path without its guard).
    Under autocast the scores' matmul runs in its dtype and the softmax in float32."""
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    (scores,) = to_float32(ops.matmul(query, ops.transpose(key, -2, -1)))
    scores = ops.mul(scores, scale)
    if is_causal:
        above = triangle(scores.shape[-2], scores.shape[-1], 1, False, scores.device)
        scores = ops.masked_fill(scores, above, -math.inf)
    if attn_mask is not None:
        if attn_mask.dtype == dtypes.bool_:
            scores = ops.where(attn_mask, scores, -math.inf)
        else:
            scores = ops.add(scores, attn_mask)
    return ops.exp(ops.sub(scores, ops.logsumexp(scores, -1, keepdims=True)))
