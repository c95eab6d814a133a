"""TransformerEncoderLayer and TransformerDecoderLayer, and the stacks of them
TransformerEncoder and TransformerDecoder, with PyTorch's submodule names."""

from __future__ import annotations

import copy
from collections.abc import Callable

from netcl.core.tensor import Tensor, dtypes, ops
from netcl.core.tensor.dispatch import DeviceLike, resolve_device
from netcl.nn.attention import MultiheadAttention
from netcl.nn.container import ModuleList
from netcl.nn.dropout import Dropout
from netcl.nn.functional.activations import gelu, relu
from netcl.nn.linear import Linear
from netcl.nn.module import Module
from netcl.nn.normalization import LayerNorm

Activation = str | Callable[[Tensor], Tensor]


def _activation(layer: str, activation: Activation) -> Callable[[Tensor], Tensor]:
    if not isinstance(activation, str):
        return activation
    if activation not in ("relu", "gelu"):
        raise ValueError(
            f"{layer}: activation must be 'relu', 'gelu' or a callable, got {activation!r}"
        )
    return relu if activation == "relu" else gelu


class _Layer(Module):
    """What both layers hold: the feed-forward block, its dropouts and the first two norms."""

    def __init__(self, layer: str, q: DeviceLike, d_model: int, nhead: int,
                 dim_feedforward: int, dropout: float, activation: Activation,
                 layer_norm_eps: float, batch_first: bool, norm_first: bool, bias: bool,
                 dtype: dtypes.DTypeLike) -> None:
        super().__init__()
        device = resolve_device(q)
        self.activation = _activation(layer, activation)
        self.norm_first = norm_first
        self.self_attn = MultiheadAttention(device, d_model, nhead, dropout, bias,
                                            batch_first=batch_first, dtype=dtype)
        self.linear1 = Linear(device, d_model, dim_feedforward, bias, dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(device, dim_feedforward, d_model, bias, dtype)
        self.norm1 = LayerNorm(device, d_model, layer_norm_eps, bias=bias, dtype=dtype)
        self.norm2 = LayerNorm(device, d_model, layer_norm_eps, bias=bias, dtype=dtype)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)

    def _attend(self, attention: Module, dropout: Module, x: Tensor, memory: Tensor,
                mask: Tensor | None, padding: Tensor | None, is_causal: bool) -> Tensor:
        out: Tensor = attention(x, memory, memory, padding, need_weights=False, attn_mask=mask,
                                is_causal=is_causal)[0]
        dropped: Tensor = dropout(out)
        return dropped

    def _feed_forward(self, x: Tensor, dropout: Module) -> Tensor:
        out: Tensor = dropout(self.linear2(self.dropout(self.activation(self.linear1(x)))))
        return out


class TransformerEncoderLayer(_Layer):
    """Self-attention then a feed-forward block, each with a residual connection and a
    LayerNorm, as ``torch.nn.TransformerEncoderLayer`` (same submodule names:
    ``self_attn``, ``linear1``, ``dropout``, ``linear2``, ``norm1``, ``norm2``,
    ``dropout1``, ``dropout2``). ``norm_first`` normalises before each block (the
    GPT-2 arrangement); ``activation`` is "relu", "gelu" or a callable.
    """

    def __init__(
        self, q: DeviceLike, d_model: int, nhead: int, dim_feedforward: int = 2048,
        dropout: float = 0.1, activation: Activation = "relu", layer_norm_eps: float = 1e-5,
        batch_first: bool = False, norm_first: bool = False, bias: bool = True,
        dtype: dtypes.DTypeLike = dtypes.float32,
    ) -> None:
        super().__init__("TransformerEncoderLayer", q, d_model, nhead, dim_feedforward, dropout,
                         activation, layer_norm_eps, batch_first, norm_first, bias, dtype)

    def forward(
        self, src: Tensor, src_mask: Tensor | None = None,
        src_key_padding_mask: Tensor | None = None, is_causal: bool = False,
    ) -> Tensor:
        def attend(x: Tensor) -> Tensor:
            return self._attend(self.self_attn, self.dropout1, x, x, src_mask,
                                src_key_padding_mask, is_causal)

        x = src
        if self.norm_first:
            x = ops.add(x, attend(self.norm1(x)))
            return ops.add(x, self._feed_forward(self.norm2(x), self.dropout2))
        x = self.norm1(ops.add(x, attend(x)))
        out: Tensor = self.norm2(ops.add(x, self._feed_forward(x, self.dropout2)))
        return out


class TransformerDecoderLayer(_Layer):
    """Self-attention, attention over ``memory`` (the encoder's output), then a feed-forward
    block, each with a residual connection and a LayerNorm, as
    ``torch.nn.TransformerDecoderLayer`` (its submodule names: the encoder layer's plus
    ``multihead_attn``, ``norm3``, ``dropout3``).
    """

    def __init__(
        self, q: DeviceLike, d_model: int, nhead: int, dim_feedforward: int = 2048,
        dropout: float = 0.1, activation: Activation = "relu", layer_norm_eps: float = 1e-5,
        batch_first: bool = False, norm_first: bool = False, bias: bool = True,
        dtype: dtypes.DTypeLike = dtypes.float32,
    ) -> None:
        super().__init__("TransformerDecoderLayer", q, d_model, nhead, dim_feedforward, dropout,
                         activation, layer_norm_eps, batch_first, norm_first, bias, dtype)
        device = resolve_device(q)
        self.multihead_attn = MultiheadAttention(device, d_model, nhead, dropout, bias,
                                                 batch_first=batch_first, dtype=dtype)
        self.norm3 = LayerNorm(device, d_model, layer_norm_eps, bias=bias, dtype=dtype)
        self.dropout3 = Dropout(dropout)

    def forward(
        self, tgt: Tensor, memory: Tensor, tgt_mask: Tensor | None = None,
        memory_mask: Tensor | None = None, tgt_key_padding_mask: Tensor | None = None,
        memory_key_padding_mask: Tensor | None = None, tgt_is_causal: bool = False,
        memory_is_causal: bool = False,
    ) -> Tensor:
        def attend_self(x: Tensor) -> Tensor:
            return self._attend(self.self_attn, self.dropout1, x, x, tgt_mask,
                                tgt_key_padding_mask, tgt_is_causal)

        def attend_memory(x: Tensor) -> Tensor:
            return self._attend(self.multihead_attn, self.dropout2, x, memory, memory_mask,
                                memory_key_padding_mask, memory_is_causal)

        x = tgt
        if self.norm_first:
            x = ops.add(x, attend_self(self.norm1(x)))
            x = ops.add(x, attend_memory(self.norm2(x)))
            return ops.add(x, self._feed_forward(self.norm3(x), self.dropout3))
        x = self.norm1(ops.add(x, attend_self(x)))
        x = self.norm2(ops.add(x, attend_memory(x)))
        out: Tensor = self.norm3(ops.add(x, self._feed_forward(x, self.dropout3)))
        return out


def _clones(layer: Module, num_layers: int) -> ModuleList:
    """``num_layers`` deep copies of ``layer``, each with its own weights (torch's
    ``_get_clones``: the layer passed in is a template, not one of them)."""
    return ModuleList(copy.deepcopy(layer) for _ in range(num_layers))


class TransformerEncoder(Module):
    """``num_layers`` copies of ``encoder_layer`` applied in turn, then ``norm`` if given, as
    ``torch.nn.TransformerEncoder`` (its names: ``layers.0.self_attn...``, ``norm``; a torch
    state dict loads as is). torch's fast-path switches ``enable_nested_tensor`` and
    ``mask_check`` are taken and change nothing: netcl computes what torch computes with
    ``enable_nested_tensor=False`` (torch's nested path zeroes padded positions' outputs in
    inference).
    """

    def __init__(self, encoder_layer: TransformerEncoderLayer, num_layers: int,
                 norm: Module | None = None, enable_nested_tensor: bool = True,
                 mask_check: bool = True) -> None:
        super().__init__()
        self.layers = _clones(encoder_layer, num_layers)
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, src: Tensor, mask: Tensor | None = None,
                src_key_padding_mask: Tensor | None = None,
                is_causal: bool | None = None) -> Tensor:
        x = src
        for layer in self.layers:
            x = layer(x, mask, src_key_padding_mask, bool(is_causal))
        return x if self.norm is None else self.norm(x)


class TransformerDecoder(Module):
    """``num_layers`` copies of ``decoder_layer`` applied in turn, each attending over
    ``memory``, then ``norm`` if given, as ``torch.nn.TransformerDecoder`` (its names)."""

    def __init__(self, decoder_layer: TransformerDecoderLayer, num_layers: int,
                 norm: Module | None = None) -> None:
        super().__init__()
        self.layers = _clones(decoder_layer, num_layers)
        self.num_layers = num_layers
        self.norm = norm

    def forward(
        self, tgt: Tensor, memory: Tensor, tgt_mask: Tensor | None = None,
        memory_mask: Tensor | None = None, tgt_key_padding_mask: Tensor | None = None,
        memory_key_padding_mask: Tensor | None = None, tgt_is_causal: bool | None = None,
        memory_is_causal: bool = False,
    ) -> Tensor:
        x = tgt
        for layer in self.layers:
            x = layer(x, memory, tgt_mask, memory_mask, tgt_key_padding_mask,
                      memory_key_padding_mask, bool(tgt_is_causal), memory_is_causal)
        return x if self.norm is None else self.norm(x)
