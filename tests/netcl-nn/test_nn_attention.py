"""MultiheadAttention, TransformerEncoderLayer and functional SDPA against PyTorch, with
torch's state dicts loaded as they are; one jitted training step against eager."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import netcl.autograd as ag
import netcl.core.tensor as nt
import netcl.nn as nn
from netcl.core.tensor import Tensor, from_numpy, ops, philox
from netcl.nn import functional as F

# Sums of a few dozen fp32 products through two or three layers: a few 2^-24 of the
# largest entry each, 1e-5 of it with margin (a wrong head split or mask is 1e-1 off).
TOL = 1e-5


def assert_close(ours: np.ndarray[Any, Any], theirs: torch.Tensor, what: str = "") -> None:
    expected = theirs.detach().double().numpy()
    scale = max(float(np.abs(expected).max(initial=0.0)), 1.0)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=TOL * scale, err_msg=what)


def load_torch_state(ours: nn.Module, theirs: torch.nn.Module) -> None:
    """torch's own state dict into ours, as it is: no key renamed or dropped."""
    result = ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    assert not result.missing_keys and not result.unexpected_keys


def backward_both(ours: Tensor, theirs: torch.Tensor, rng: np.random.Generator,
                  tape: ag.Tape) -> None:
    """Both backwards from one random output gradient (``ours`` made on ``tape``)."""
    grad = rng.standard_normal(ours.shape).astype(np.float32)
    tape.backward(ours, from_numpy(grad))
    theirs.backward(torch.tensor(grad))


def assert_param_grads_close(ours: nn.Module, theirs: torch.nn.Module) -> None:
    """Every parameter's gradient against torch's of the same name."""
    reference = dict(theirs.named_parameters())
    for name, param in ours.named_parameters():
        assert param.grad is not None, name
        assert_close(param.grad.numpy(), reference[name].grad, name)


MHA_CASES: list[tuple[str, dict[str, Any]]] = [
    ("batch_first_weights", dict(batch_first=True, need_weights=True)),
    ("seq_first_fused", dict(batch_first=False, need_weights=False)),
    ("bool_mask_and_padding", dict(batch_first=True, need_weights=False, mask="bool",
                                   padding=True)),
    ("float_mask_per_head_weights", dict(batch_first=True, need_weights=True, mask="float3",
                                         average=False)),
    ("causal_cross_attention", dict(batch_first=True, need_weights=False, causal=True,
                                    source=6)),
    ("key_and_value_dims_differ", dict(batch_first=True, need_weights=True, source=4,
                                       kdim=5, vdim=3)),
    # Appended keys (learned bias, then zeros) open to every query through padded masks.
    ("bias_kv_zero_attn_masked_weights", dict(batch_first=True, need_weights=True,
                                              mask="bool", padding=True, bias_kv=True,
                                              zero_attn=True)),
    ("bias_kv_per_head_mask_fused", dict(batch_first=False, need_weights=False,
                                         mask="float3", bias_kv=True, source=4)),
    ("zero_attn_fused", dict(batch_first=True, need_weights=False, zero_attn=True)),
]


@pytest.mark.parametrize(("name", "case"), MHA_CASES, ids=[c[0] for c in MHA_CASES])
def test_multihead_attention_matches_torch(name: str, case: dict[str, Any]) -> None:
    rng = np.random.default_rng(len(name))
    n, length, source, embed, heads = 2, 6, case.get("source", 6), 8, 2
    torch.manual_seed(0)
    dims = dict(kdim=case.get("kdim"), vdim=case.get("vdim"),
                add_bias_kv=case.get("bias_kv", False), add_zero_attn=case.get("zero_attn", False))
    theirs = torch.nn.MultiheadAttention(embed, heads, batch_first=case["batch_first"], **dims)
    with torch.no_grad():  # nonzero biases, so a misplaced one shows
        theirs.in_proj_bias.normal_()
        theirs.out_proj.bias.normal_()
    ours = nn.MultiheadAttention(None, embed, heads, batch_first=case["batch_first"], **dims)
    load_torch_state(ours, theirs)

    def layout(rows: int, features: int) -> np.ndarray[Any, Any]:
        shape = (n, rows, features) if case["batch_first"] else (rows, n, features)
        return rng.standard_normal(shape).astype(np.float32)

    query = layout(length, embed)
    key = layout(source, case.get("kdim") or embed)
    value = layout(source, case.get("vdim") or embed)
    kwargs: dict[str, Any] = dict(need_weights=case["need_weights"],
                                  average_attn_weights=case.get("average", True))
    theirs_kwargs = dict(kwargs)
    if case.get("mask") == "bool":
        mask = rng.random((length, source)) > 0.7
        mask[:, 0] = False  # every query keeps a key
        kwargs["attn_mask"], theirs_kwargs["attn_mask"] = from_numpy(mask), torch.tensor(mask)
    elif case.get("mask") == "float3":
        mask = rng.standard_normal((n * heads, length, source)).astype(np.float32)
        kwargs["attn_mask"], theirs_kwargs["attn_mask"] = from_numpy(mask), torch.tensor(mask)
    if case.get("padding"):
        padding = np.zeros((n, source), bool)
        padding[0, -2:] = True
        kwargs["key_padding_mask"] = from_numpy(padding)
        theirs_kwargs["key_padding_mask"] = torch.tensor(padding)
    if case.get("causal"):
        causal = torch.nn.Transformer.generate_square_subsequent_mask(length)
        kwargs["is_causal"] = True
        theirs_kwargs.update(attn_mask=causal, is_causal=True)

    q_ours, k_ours, v_ours = (from_numpy(a).requires_grad_() for a in (query, key, value))
    q_t, k_t, v_t = (torch.tensor(a, requires_grad=True) for a in (query, key, value))
    with ag.Tape() as tape:
        out, weights = ours(q_ours, k_ours, v_ours, **kwargs)
    expected, expected_weights = theirs(q_t, k_t, v_t, **theirs_kwargs)
    assert_close(out.numpy(), expected, "output")
    if case["need_weights"]:
        assert weights is not None
        assert_close(weights.numpy(), expected_weights, "weights")
    else:
        assert weights is None
    backward_both(out, expected, rng, tape)
    for t_ours, t_theirs, what in ((q_ours, q_t, "dq"), (k_ours, k_t, "dk"), (v_ours, v_t, "dv")):
        assert_close(t_ours.grad.numpy(), t_theirs.grad, what)
    assert_param_grads_close(ours, theirs)


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_with_torch_weights_matches_torch(norm_first: bool) -> None:
    rng = np.random.default_rng(7)
    torch.manual_seed(1)
    theirs = torch.nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, activation="gelu",
                                              batch_first=True, norm_first=norm_first)
    ours = nn.TransformerEncoderLayer(None, 16, 4, 32, dropout=0.0, activation="gelu",
                                      batch_first=True, norm_first=norm_first)
    load_torch_state(ours, theirs)
    x = rng.standard_normal((2, 7, 16)).astype(np.float32)
    causal = torch.nn.Transformer.generate_square_subsequent_mask(7)
    x_ours, x_t = from_numpy(x).requires_grad_(), torch.tensor(x, requires_grad=True)
    with ag.Tape() as tape:
        out = ours(x_ours, is_causal=True)
    expected = theirs(x_t, src_mask=causal, is_causal=True)
    assert_close(out.numpy(), expected)
    backward_both(out, expected, rng, tape)
    assert_close(x_ours.grad.numpy(), x_t.grad, "dx")
    assert_param_grads_close(ours, theirs)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_with_torch_weights_matches_torch(norm_first: bool) -> None:
    rng = np.random.default_rng(8)
    torch.manual_seed(3)
    theirs = torch.nn.TransformerDecoderLayer(16, 4, 32, dropout=0.0, batch_first=True,
                                              norm_first=norm_first)
    ours = nn.TransformerDecoderLayer(None, 16, 4, 32, dropout=0.0, batch_first=True,
                                      norm_first=norm_first)
    load_torch_state(ours, theirs)
    tgt = rng.standard_normal((2, 5, 16)).astype(np.float32)
    memory = rng.standard_normal((2, 7, 16)).astype(np.float32)
    padding = np.zeros((2, 7), bool)
    padding[1, -3:] = True
    causal = torch.nn.Transformer.generate_square_subsequent_mask(5)
    ours_in = [from_numpy(a).requires_grad_() for a in (tgt, memory)]
    theirs_in = [torch.tensor(a, requires_grad=True) for a in (tgt, memory)]
    with ag.Tape() as tape:
        out = ours(*ours_in, tgt_is_causal=True, memory_key_padding_mask=from_numpy(padding))
    expected = theirs(*theirs_in, tgt_mask=causal, tgt_is_causal=True,
                      memory_key_padding_mask=torch.tensor(padding))
    assert_close(out.numpy(), expected)
    backward_both(out, expected, rng, tape)
    for t_ours, t_theirs, what in zip(ours_in, theirs_in, ("dtgt", "dmemory"), strict=True):
        assert_close(t_ours.grad.numpy(), t_theirs.grad, what)
    assert_param_grads_close(ours, theirs)


def test_encoder_and_decoder_stacks_load_torch_s_state_and_match_it() -> None:
    # Two layers each and a final norm: the same sums as the single layers' tests, twice
    # over, within TOL (a layer shared instead of copied, or a norm skipped, is 1e-1 off).
    rng = np.random.default_rng(9)
    torch.manual_seed(4)
    layer_args = dict(d_model=16, nhead=2, dim_feedforward=24, dropout=0.0, batch_first=True)
    theirs_encoder = torch.nn.TransformerEncoder(
        torch.nn.TransformerEncoderLayer(**layer_args), 2, torch.nn.LayerNorm(16),
        enable_nested_tensor=False)
    theirs_decoder = torch.nn.TransformerDecoder(
        torch.nn.TransformerDecoderLayer(**layer_args), 2, torch.nn.LayerNorm(16))
    template = nn.TransformerEncoderLayer(None, **layer_args)
    ours_encoder = nn.TransformerEncoder(template, 2, nn.LayerNorm(None, 16),
                                         enable_nested_tensor=False)
    ours_decoder = nn.TransformerDecoder(nn.TransformerDecoderLayer(None, **layer_args), 2,
                                         nn.LayerNorm(None, 16))
    assert template.linear1 not in list(ours_encoder.modules())  # copies, not the template
    load_torch_state(ours_encoder, theirs_encoder)  # also each layer's own keys
    load_torch_state(ours_decoder, theirs_decoder)
    src, tgt = (rng.standard_normal((2, n, 16)).astype(np.float32) for n in (6, 4))
    padding = np.zeros((2, 6), bool)
    padding[1, -2:] = True
    causal = torch.nn.Transformer.generate_square_subsequent_mask(4)
    src_ours, src_t = from_numpy(src).requires_grad_(), torch.tensor(src, requires_grad=True)
    with ag.Tape() as tape:
        memory = ours_encoder(src_ours, src_key_padding_mask=from_numpy(padding))
        out = ours_decoder(from_numpy(tgt), memory, tgt_is_causal=True,
                           memory_key_padding_mask=from_numpy(padding))
    theirs_memory = theirs_encoder(src_t, src_key_padding_mask=torch.tensor(padding))
    expected = theirs_decoder(torch.tensor(tgt), theirs_memory, tgt_mask=causal,
                              tgt_is_causal=True, memory_key_padding_mask=torch.tensor(padding))
    assert_close(memory.numpy(), theirs_memory, "memory")
    assert_close(out.numpy(), expected, "output")
    backward_both(out, expected, rng, tape)
    assert_close(src_ours.grad.numpy(), src_t.grad, "dsrc")
    assert_param_grads_close(ours_encoder, theirs_encoder)
    assert_param_grads_close(ours_decoder, theirs_decoder)


def test_sdpa_dropout_drops_the_weights_with_the_device_generator() -> None:
    rng = np.random.default_rng(3)
    q, k, v = (from_numpy(rng.standard_normal((2, 5, 4)).astype(np.float32)) for _ in range(3))
    nt.manual_seed(11)
    dropped = F.scaled_dot_product_attention(q, k, v, dropout_p=0.4, is_causal=True)
    nt.manual_seed(11)
    keep = ops.ge(philox.uniform((2, 5, 5), q.device), 0.4).numpy()
    weights = F.softmax(ops.masked_fill(ops.mul(q @ ops.transpose(k, 1, 2), 0.5),
                                        ops.triu(nt.ones((5, 5), nt.bool_), 1), -np.inf))
    expected = (weights.numpy() * keep / 0.6) @ v.numpy()
    np.testing.assert_allclose(dropped.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert not keep.all() and keep.any()
    with pytest.raises(ValueError, match="dropout_p"):
        F.scaled_dot_product_attention(q, k, v, dropout_p=1.5)


def test_softmax_takes_dim_as_torch_and_refuses_both_spellings() -> None:
    values = np.random.default_rng(1).standard_normal((2, 3)).astype(np.float32)
    ours = F.softmax(from_numpy(values), dim=0).numpy()
    np.testing.assert_allclose(ours, torch.softmax(torch.tensor(values), dim=0), rtol=1e-6)
    with pytest.raises(TypeError, match="one argument"):
        F.log_softmax(from_numpy(values), 0, dim=1)


def test_bias_kv_starts_as_torch_draws_it() -> None:
    # torch draws bias_k and bias_v (1, 1, E) by xavier_normal_: fan_in = fan_out = E, so
    # std 1/sqrt(E). E = 4096 draws give the sample std within 1/sqrt(2 * 4096) = 1.1% of it
    # (one sd): 5% is 4.5 sd; the mean within 4.5 sd of 0 likewise.
    embed = 4096
    mha = nn.MultiheadAttention(None, embed, 8, add_bias_kv=True)
    for bias in (mha.bias_k, mha.bias_v):
        assert bias is not None and bias.shape == (1, 1, embed)
        values = bias.numpy().astype(np.float64)
        assert abs(values.std() * np.sqrt(embed) - 1.0) < 0.05
        assert abs(values.mean()) < 4.5 / embed
    assert "bias_k" not in nn.MultiheadAttention(None, 8, 2).state_dict()
