"""scaled_dot_product_attention's fused kernels against PyTorch in float64, forward and
backward, one table row per case; the memory the forward keeps for backward."""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import netcl.autograd as ag
from netcl.core.tensor import from_numpy, ops
from netcl.core.tensor.ops import attention
from netcl.core.tensor.ops.attention import AttentionTile
from netcl.core.tensor.tensor import Shape

# Small tiles, so the test shapes span several blocks and end in partial ones; each
# kernel a different shape (blocks of 8 and 16, work-groups of 16 and 32, 2 or 4 columns).
SMALL_TILES = {
    "sdpa_forward": AttentionTile(16, 8, 4, 4),
    "sdpa_backward_q": AttentionTile(8, 16, 4, 4),
    "sdpa_backward_kv": AttentionTile(16, 8, 8, 4),
}
# The same with each work-item's rows consecutive, read four at a time.
SMALL_VEC_TILES = {
    "sdpa_forward": AttentionTile(16, 8, 4, 4, vec=True),
    "sdpa_backward_q": AttentionTile(16, 16, 4, 4, vec=True),
    "sdpa_backward_kv": AttentionTile(32, 8, 8, 4, vec=True),
}


@pytest.fixture(params=["rows", "tiles", "vec tiles", "cpu"])
def kernels(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test once with each form of the kernels (attention.cl, attention_tiled.cl
    with and without ``vec``, attention_cpu.cl)."""
    form = "tiles" if request.param == "vec tiles" else request.param
    monkeypatch.setattr(attention, "KERNELS", form)
    monkeypatch.setattr(attention, "TILES",
                        SMALL_VEC_TILES if request.param == "vec tiles" else SMALL_TILES)
    return str(request.param)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240611)

# Each output is a softmax-weighted mean of S values, and each gradient a sum over L or S
# of products of such terms: fp32 rounding of a length-E dot and an S-term sum is a few
# times 2^-24 of the entries' scale per term, so 2e-6 relative to the largest entry
# (about sqrt(S) * 2^-24 * a few for S <= 100) holds with margin and a wrong mask,
# scale or tile boundary (errors of order 1e-1) fails it.
TOL = 2e-6

CASES: list[tuple[str, dict[str, Any]]] = [
    ("plain", dict(shape=(2, 3, 70, 45, 8, 8))),
    ("causal_square", dict(shape=(1, 2, 100, 100, 8, 8), causal=True)),
    ("causal_rectangular", dict(shape=(1, 1, 40, 90, 8, 8), causal=True)),
    ("bool_mask_broadcast", dict(shape=(2, 1, 33, 65, 8, 8), mask="bool", mask_shape=(33, 65))),
    ("additive_mask_per_batch", dict(shape=(2, 2, 33, 65, 8, 4), mask="float",
                                     mask_shape=(2, 1, 1, 65))),
    ("bool_mask_per_head", dict(shape=(1, 2, 70, 70, 8, 8), mask="bool",
                                mask_shape=(2, 70, 70))),
    ("fully_masked_rows", dict(shape=(1, 1, 5, 7, 8, 8), mask="rows")),
    ("scale_three_dims", dict(shape=(None, 4, 9, 11, 8, 8), scale=0.3)),
    ("transposed_views", dict(shape=(2, 3, 20, 20, 8, 8), transposed=True)),
]


def _inputs(rng: np.random.Generator, spec: dict[str, Any]) -> dict[str, Any]:
    b, h, lq, lk, e, ev = spec["shape"]
    lead = (h,) if b is None else (b, h)
    q = rng.standard_normal((*lead, lq, e))
    k = rng.standard_normal((*lead, lk, e))
    v = rng.standard_normal((*lead, lk, ev))
    grad = rng.standard_normal((*lead, lq, ev))
    mask = None
    if spec.get("mask") == "bool":
        mask = rng.random(spec["mask_shape"]) > 0.3
    elif spec.get("mask") == "float":
        mask = rng.standard_normal(spec["mask_shape"])
    elif spec.get("mask") == "rows":
        mask = rng.random((lq, lk)) > 0.5
        mask[1] = mask[3] = False  # rows 1 and 3 attend to nothing
    return dict(q=q, k=k, v=v, grad=grad, mask=mask)


def _ours(data: dict[str, Any], spec: dict[str, Any]) -> list[np.ndarray[Any, Any]]:
    def load(a: np.ndarray[Any, Any]) -> Any:
        if spec.get("transposed"):  # (..., L, E) stored as (..., E, L) and viewed back
            return ops.transpose(from_numpy(np.ascontiguousarray(
                np.swapaxes(a, -1, -2)).astype(np.float32)), -1, -2).requires_grad_()
        return from_numpy(a.astype(np.float32)).requires_grad_()

    q, k, v = (load(data[n]) for n in "qkv")
    mask = data["mask"]
    if mask is not None:
        mask = from_numpy(mask if mask.dtype == bool else mask.astype(np.float32))
    with ag.Tape() as tape:
        out = ops.scaled_dot_product_attention(q, k, v, mask, spec.get("causal", False),
                                               spec.get("scale"))
        loss = ops.sum(ops.mul(out, from_numpy(data["grad"].astype(np.float32))))
    tape.backward(loss)
    return [out.numpy(), q.grad.numpy(), k.grad.numpy(), v.grad.numpy()]


def _torch(data: dict[str, Any], spec: dict[str, Any]) -> list[np.ndarray[Any, Any]]:
    q, k, v = (torch.tensor(data[n], requires_grad=True) for n in "qkv")
    mask = None if data["mask"] is None else torch.tensor(data["mask"])
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                         is_causal=spec.get("causal", False),
                                         scale=spec.get("scale"))
    out.backward(torch.tensor(data["grad"]))
    return [t.detach().numpy() for t in (out, q.grad, k.grad, v.grad)]


@pytest.mark.parametrize(("name", "spec"), CASES, ids=[c[0] for c in CASES])
def test_matches_torch_forward_and_backward(name: str, spec: dict[str, Any],
                                             kernels: str) -> None:
    data = _inputs(np.random.default_rng(len(name)), spec)
    for label, ours, theirs in zip(("out", "dq", "dk", "dv"), _ours(data, spec),
                                   _torch(data, spec), strict=True):
        scale = max(float(np.abs(theirs).max()), 1.0)
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=TOL * scale, err_msg=label)


def test_float16_matches_float32_to_half_precision(rng: np.random.Generator,
                                                   kernels: str) -> None:
    q, k, v = (rng.standard_normal((2, 37, 16)).astype(np.float16) for _ in range(3))
    half = ops.scaled_dot_product_attention(*(from_numpy(a) for a in (q, k, v)), is_causal=True)
    full = F.scaled_dot_product_attention(*(torch.tensor(a, dtype=torch.float64)
                                            for a in (q, k, v)), is_causal=True)
    # Computed in fp32 and rounded once on store: half an fp16 ulp (2^-11 relative) plus
    # fp32's own error, far smaller; 2^-10 leaves a factor of two.
    np.testing.assert_allclose(half.numpy().astype(np.float64), full.numpy(), rtol=2**-10,
                               atol=2**-12)


def test_bfloat16_forward_and_backward_round_once(kernels: str) -> None:
    rng = np.random.default_rng(7)
    bf16 = ml_dtypes.bfloat16
    q, k, v, g = (rng.standard_normal((2, 21, 8)).astype(bf16) for _ in range(4))
    tq, tk, tv = (from_numpy(a).requires_grad_() for a in (q, k, v))
    with ag.Tape() as tape:
        out = ops.scaled_dot_product_attention(tq, tk, tv, is_causal=True)
    tape.backward(out, from_numpy(g))
    # The float64 reference of what the kernels compute in float32: the same bf16 inputs,
    # and the backward's D = rowsum(dO * O) from the output as stored, rounded to bf16.
    q64, k64, v64, g64 = (a.astype(np.float64) for a in (q, k, v, g))
    s = q64 @ np.swapaxes(k64, 1, 2) / np.sqrt(8)
    s[:, np.triu_indices(21, 1)[0], np.triu_indices(21, 1)[1]] = -np.inf
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    o = p @ v64
    d = (g64 * o.astype(bf16).astype(np.float64)).sum(-1, keepdims=True)
    ds = p * (g64 @ np.swapaxes(v64, 1, 2) - d)
    expected = {"out": o, "dq": ds @ k64 / np.sqrt(8),
                "dk": np.swapaxes(ds, 1, 2) @ q64 / np.sqrt(8), "dv": np.swapaxes(p, 1, 2) @ g64}
    ours = {"out": out, "dq": tq.grad, "dk": tk.grad, "dv": tv.grad}
    for name, ref in expected.items():
        assert ours[name].dtype == bf16, name
        # One rounding to bf16 on store: half a unit (2^-8 relative), doubled for float32's
        # error tipping a value across a rounding boundary; TOL of the largest entry for
        # float32's absolute error where a value is near zero.
        np.testing.assert_allclose(ours[name].numpy().astype(np.float64), ref, rtol=2**-7,
                                   atol=TOL * np.abs(ref).max(), err_msg=name)


def test_memory_kept_for_backward_is_linear_in_sequence_length() -> None:
    seq, dim = 4096, 8
    rng = np.random.default_rng(0)
    q, k, v = (from_numpy(rng.standard_normal((1, 1, seq, dim)).astype(np.float32))
               .requires_grad_() for _ in range(3))
    pool = q.device.pool
    before = pool.stats().bytes_in_use
    with ag.Tape():
        out = ops.scaled_dot_product_attention(q, k, v, is_causal=True)
    kept = pool.stats().bytes_in_use - before
    # The output (seq * dim floats) and one log-sum-exp per row: 36 floats a row. The
    # attention matrix would be seq * seq floats, 64 MiB.
    assert kept <= 2 * (seq * dim + seq) * 4, kept
    assert out.shape == (1, 1, seq, dim)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    (dict(q=(2, 4, 8), k=(2, 5, 6), v=(2, 5, 6)), ValueError, "same leading"),
    (dict(q=(2, 4, 8), k=(3, 5, 8), v=(3, 5, 8)), ValueError, "same leading"),
    (dict(q=(4, 8), k=(5, 8), v=(5, 8), mask=(4, 5), causal=True), ValueError, "not both"),
    (dict(q=(8,), k=(5, 8), v=(5, 8)), ValueError, "2 to 4 dimensions"),
    (dict(q=(4, 8), k=(5, 8), v=(5, 8), mask=(3, 5)), ValueError, "does not broadcast"),
    (dict(q=(4, 8), k=(5, 8), v=(5, 8), mask_dtype=np.int32), TypeError, "attn_mask must"),
])
def test_bad_input_raises_naming_it(kwargs: dict[str, Any], error: type[Exception],
                                    match: str) -> None:
    q, k, v = (from_numpy(np.zeros(kwargs[n], np.float32)) for n in "qkv")
    mask = None
    if "mask" in kwargs:
        mask = from_numpy(np.zeros(kwargs["mask"], bool))
    if "mask_dtype" in kwargs:
        mask = from_numpy(np.zeros((4, 5), kwargs["mask_dtype"]))
    with pytest.raises(error, match=match):
        ops.scaled_dot_product_attention(q, k, v, mask, kwargs.get("causal", False))


@pytest.mark.parametrize("limit", [2, 4])
def test_heads_launched_in_slices_match_one_launch_bit_for_bit(
        limit: int, kernels: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # 2 x 3 (batch, head) pairs: slices of 2 (even) and of 4 then 2 (uneven).
    name, spec = CASES[0]
    data = _inputs(np.random.default_rng(len(name)), spec)
    whole = _ours(data, spec)
    monkeypatch.setattr(attention, "MAX_HEAD_SLICE", limit)
    for label, ours, theirs in zip(("out", "dq", "dk", "dv"), _ours(data, spec), whole,
                                   strict=True):
        np.testing.assert_array_equal(ours, theirs, err_msg=label)


def test_a_view_past_32_bit_offsets_raises_naming_it() -> None:
    # Two rows 2^31 elements apart: two elements, but the second past int32.
    with pytest.raises(ValueError, match=r"query of shape \(1, 1, 2, 8\).* reaches element "
                                         r"2147483654.*at most 2147483647"):
        attention.check_reach("op", "query", 0, (1, 1, 2, 8), (0, 0, 2**31 - 1, 1))
    attention.check_reach("op", "attn_mask", 2**31 - 8, (1, 1, 2, 8), (0, 0, 0, 1))
    with pytest.raises(ValueError, match="attn_mask"):
        attention.check_reach("op", "attn_mask", 2**31 - 7, (1, 1, 2, 8), (0, 0, 0, 1))
    attention.check_reach("op", "key", 2**40, (1, 0, 2, 8), (0, 0, 8, 1))  # empty: nothing


@pytest.mark.parametrize(("limit", "name", "shapes"), [
    # Reaches: query (4, 8) 31, key (5, 8) 39, value (5, 16) 79, out (4, 16) 63.
    (30, "query", ((4, 8), (5, 8), (5, 16))),
    (35, "key", ((4, 8), (5, 8), (5, 16))),
    (70, "value", ((4, 8), (5, 8), (5, 16))),
    # The inputs within the limit (15, 3, 15), the output (8, 8) past it (63).
    (62, "out", ((8, 2), (2, 2), (2, 8))),
])
def test_each_operand_past_the_offset_limit_raises_before_any_launch(
        limit: int, name: str, shapes: tuple[Shape, ...],
        monkeypatch: pytest.MonkeyPatch) -> None:
    launches: list[Any] = []
    monkeypatch.setattr(attention, "enqueue", lambda *args: launches.append(args))
    monkeypatch.setattr(attention, "_INT32_MAX", limit)
    q, k, v = (from_numpy(np.zeros(shape, np.float32)) for shape in shapes)
    with pytest.raises(ValueError, match=f"{name} of shape"):
        ops.scaled_dot_product_attention(q, k, v)
    assert not launches


def test_a_gradient_past_the_offset_limit_raises_before_any_launch(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A query broadcast over 8 rows (stride 0) reaches 15, key 31, value 3, out (8, 2) 15;
    # the query's gradient, 8 x 16 contiguous, 127.
    q = ops.expand(from_numpy(np.ones((1, 16), np.float32)), (8, 16))
    k = from_numpy(np.ones((2, 16), np.float32))
    v = from_numpy(np.ones((2, 2), np.float32))
    out = ops.scaled_dot_product_attention(q, k, v)
    launches: list[Any] = []
    monkeypatch.setattr(attention, "enqueue", lambda *args: launches.append(args))
    monkeypatch.setattr(attention, "_INT32_MAX", 100)
    with pytest.raises(ValueError, match=r"dq of shape \(8, 16\)"):
        ops.scaled_dot_product_attention_backward(out, q, k, v, out,
                                                  from_numpy(np.zeros(8, np.float32)))
    assert not launches
