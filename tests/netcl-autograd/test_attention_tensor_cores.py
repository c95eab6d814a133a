"""attention_mma.cl (float16 and bfloat16 SDPA on tensor cores) against float64, on every
device: emulated (gemm.emulated_tensor_cores) where the device has no tensor cores. The
cases are test_ag_attention.py's table, inputs rounded to the 16-bit dtype."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import ml_dtypes
import numpy as np
import pytest
import torch
from test_ag_attention import CASES, TOL, _inputs

import netcl.autograd as ag
from netcl.core.device import manager
from netcl.core.device.kernels import KernelCache
from netcl.core.tensor import from_numpy, ops
from netcl.core.tensor.ops import attention, gemm
from netcl.core.tensor.ops.attention import MmaAttentionTile

Array = np.ndarray[Any, Any]

# Small tiles (groups of 2 or 3 warps of 16 rows, steps of 32), so the table's shapes
# span several blocks and end in partial ones, and every step's loop over 16-key slices
# runs twice; PoCL compiles them in seconds.
SMALL_MMA_TILES = {"sdpa_forward": [MmaAttentionTile(2, 32)],
                   "sdpa_backward_q": [MmaAttentionTile(2, 32)],
                   "sdpa_backward_kv": [MmaAttentionTile(3, 32)]}
# Unit roundoff of each dtype: 8 and 11 significant bits.
UNIT = {"bf16": 2.0**-8, "fp16": 2.0**-11}
DTYPE = {"bf16": ml_dtypes.bfloat16, "fp16": np.float16}


@pytest.fixture
def kernel_names(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the attention kernels launched, in order."""
    names: list[str] = []
    enqueue = attention.enqueue

    def spy(device: Any, kernel: Any, *args: Any) -> None:
        names.append(kernel.function_name)
        enqueue(device, kernel, *args)

    monkeypatch.setattr(attention, "enqueue", spy)
    return names


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """Each attention kernel launched, in order: its name and the defines it was built
    with."""
    built: dict[int, dict[str, Any]] = {}
    fetch = KernelCache.kernel

    def spy_fetch(cache: KernelCache, sources: Any, name: str, defines: Any = None,
                  options: tuple[str, ...] = ()) -> Any:
        kernel = fetch(cache, sources, name, defines, options)
        built[id(kernel)] = dict(defines or {})
        return kernel

    launches: list[tuple[str, dict[str, Any]]] = []
    enqueue = attention.enqueue

    def spy_enqueue(device: Any, kernel: Any, *args: Any) -> None:
        launches.append((kernel.function_name, built.get(id(kernel), {})))
        enqueue(device, kernel, *args)

    monkeypatch.setattr(KernelCache, "kernel", spy_fetch)
    monkeypatch.setattr(attention, "enqueue", spy_enqueue)
    return launches


def tiles_of(launches: list[tuple[str, dict[str, Any]]]) -> dict[str, tuple[int, ...]]:
    """Each tensor-core kernel launched: its WARPS, BN, PIPELINED, FUSED_BACKWARD and
    DQ_ATOMIC (the last launch of each name)."""
    return {name: tuple(d.get(key, 0) for key in ("WARPS", "BN", "PIPELINED",
                                                  "FUSED_BACKWARD", "DQ_ATOMIC"))
            for name, d in launches if name.endswith("_mma")}


# The table runs at the small tiles everywhere and, on tensor-core hardware, at each of
# attention.py's default tiles as well (emulated, PoCL would compile each for minutes).
TILE_SETS = ["small", *(f"{t.warps}x{t.bn}" for t in attention._MMA_CANDIDATES)]


@pytest.fixture(params=TILE_SETS)
def launched(request: pytest.FixtureRequest, kernel_names: list[str],
             monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The tensor-core kernels at a set of tiles; yields the names of the kernels launched."""
    tiles = SMALL_MMA_TILES
    if request.param != "small":
        device = manager.default()
        if not gemm.tensor_cores(device.cl_device):
            pytest.skip(f"{device.name} has no tensor cores: the default tiles run on "
                        "hardware only (emulated, each compiles for minutes)")
        tile = attention._MMA_CANDIDATES[TILE_SETS.index(request.param) - 1]
        tiles = {name: [tile] for name in SMALL_MMA_TILES}
    monkeypatch.setattr(attention, "MMA_TILES", tiles)
    with gemm.emulated_tensor_cores():
        yield kernel_names


def test_without_tensor_cores_or_with_a_form_forced_the_kernels_stay(
        kernel_names: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    q = from_numpy(np.ones((1, 20, 16), ml_dtypes.bfloat16))
    if gemm.tensor_cores(q.device.cl_device):
        pytest.skip(f"{q.device.name} has tensor cores")
    ops.scaled_dot_product_attention(q, q, q)
    monkeypatch.setattr(attention, "KERNELS", "rows")
    with gemm.emulated_tensor_cores():
        ops.scaled_dot_product_attention(q, q, q)
    assert len(kernel_names) == 2 and not any(n.endswith("_mma") for n in kernel_names)
    assert kernel_names[1] == "sdpa_forward"


@pytest.mark.parametrize(("warps", "bn"), [(0, 32), (2, 8), (2, 24)])
def test_a_tile_of_partial_slices_is_refused(warps: int, bn: int) -> None:
    with pytest.raises(ValueError, match="multiple of 16"):
        MmaAttentionTile(warps, bn)


def reference(data: dict[str, Array], spec: dict[str, Any], stored_out: Array
              ) -> tuple[dict[str, Array], dict[str, Array]]:
    """The float64 attention of the (rounded) inputs and its gradients, with the backward's
    D = rowsum(dO * O) taken from ``stored_out`` as the kernels take it; and the magnitudes
    |P||V| (for the output), |P|^T|dO| (dv), |dS||K| (dq) and |dS|^T|Q| (dk) that a
    16-bit rounding of P or dS before its product scales with."""
    q, k, v, g = (torch.tensor(data[n].astype(np.float64)) for n in ("q", "k", "v", "grad"))
    scale = spec.get("scale") or 1 / np.sqrt(q.shape[-1])
    s = q @ k.transpose(-1, -2) * scale
    mask = data["mask"]
    if spec.get("causal"):
        s = s.masked_fill(torch.ones(s.shape[-2:], dtype=torch.bool).triu(1), -torch.inf)
    elif mask is not None and mask.dtype == bool:
        s = s.masked_fill(~torch.tensor(mask), -torch.inf)
    elif mask is not None:
        s = s + torch.tensor(mask.astype(np.float64))
    p = torch.nan_to_num(torch.softmax(s, -1))  # a row with no key left gives 0
    d = (g * torch.tensor(stored_out)).sum(-1, keepdim=True)
    ds = p * (g @ v.transpose(-1, -2) - d)
    dst = ds.transpose(-1, -2)
    exact = {"out": p @ v, "dq": ds @ k * scale, "dk": dst @ q * scale,
             "dv": p.transpose(-1, -2) @ g}
    magnitude = {"out": p @ v.abs(), "dq": ds.abs() @ k.abs() * scale,
                 "dk": dst.abs() @ q.abs() * scale, "dv": p.transpose(-1, -2) @ g.abs()}
    return ({n: t.numpy() for n, t in exact.items()},
            {n: t.numpy() for n, t in magnitude.items()})


# The table's head dims (8, 4) are one 16-column slice, padded; these span two (32) and
# pad a second (24).
WIDE = ("wide_heads", dict(shape=(1, 2, 40, 50, 32, 24), causal=True))
# bfloat16 runs the table; float16 differs only in its conversions, so it runs the wide
# case alone: each new combination of head dims, mask kind and dtype is three kernels
# PoCL compiles for about 13 s, and CI's time is shared.
ROWS = [(*case, "bf16") for case in CASES] + [(*WIDE, "fp16")]


def _run_table_row(name: str, spec: dict[str, Any], dtype: str
                   ) -> tuple[dict[str, Array], dict[str, Array]]:
    """One table row's inputs rounded to ``dtype`` and netcl's out, dq, dk and dv."""
    raw = _inputs(np.random.default_rng(len(name)), spec)
    data = {n: raw[n] if n == "mask" or raw[n] is None else raw[n].astype(DTYPE[dtype])
            for n in raw}
    if data["mask"] is not None and data["mask"].dtype != bool:
        data["mask"] = data["mask"].astype(DTYPE[dtype])

    def load(a: Array) -> Any:
        if spec.get("transposed"):  # (..., L, E) stored as (..., E, L) and viewed back
            return ops.transpose(from_numpy(np.ascontiguousarray(np.swapaxes(a, -1, -2))),
                                 -1, -2).requires_grad_()
        return from_numpy(a).requires_grad_()

    q, k, v = (load(data[n]) for n in "qkv")
    mask = None if data["mask"] is None else from_numpy(data["mask"])
    with ag.Tape() as tape:
        out = ops.scaled_dot_product_attention(q, k, v, mask, spec.get("causal", False),
                                               spec.get("scale"))
    tape.backward(out, from_numpy(data["grad"]))
    return data, {"out": out.numpy(), "dq": q.grad.numpy(), "dk": k.grad.numpy(),
                  "dv": v.grad.numpy()}


@pytest.mark.parametrize(("name", "spec", "dtype"), ROWS, ids=[f"{r[0]}-{r[2]}" for r in ROWS])
def test_tensor_cores_match_float64(name: str, spec: dict[str, Any], dtype: str,
                                    launched: list[str]) -> None:
    data, ours = _run_table_row(name, spec, dtype)
    assert {"sdpa_forward_mma", "sdpa_backward_q_mma", "sdpa_backward_kv_mma"} <= set(launched)
    for label, excess in excesses(ours, data, spec, dtype).items():
        assert excess <= 0, (label, excess)


def excesses(ours: dict[str, Array], data: dict[str, Array], spec: dict[str, Any],
             dtype: str) -> dict[str, float]:
    """The largest amount by which each of ``ours`` (out, dq, dk, dv) misses its float64
    reference beyond the rounding the kernels admit (not positive: within it).
    tools/bench/attention_mma_sweep.py holds its runs to the same bound."""
    exact, magnitude = reference(data, spec, ours["out"].astype(np.float64))
    u = UNIT[dtype]
    result = {}
    for label, ref in exact.items():
        # The float32 kernels' error (test_ag_attention's TOL of the largest entry); P
        # (dS for dq and dk) rounded to 16 bits before its product, in all four: u of
        # each term, u |P||V| in all; the result rounded once more on store: u of itself.
        bound = ((u * magnitude[label] + TOL * max(np.abs(ref).max(), 1.0)) * (1 + u)
                 + u * np.abs(ref))
        error = np.abs(ours[label].astype(np.float64) - ref)
        result[label] = float((error - bound).max())
    return result


def _sdpa_with_grads(data: dict[str, Array]) -> list[Array]:
    q, k, v = (from_numpy(data[n].astype(ml_dtypes.bfloat16)).requires_grad_() for n in "qkv")
    with ag.Tape() as tape:
        out = ops.scaled_dot_product_attention(q, k, v)
    tape.backward(out, from_numpy(data["grad"].astype(ml_dtypes.bfloat16)))
    return [t.numpy() for t in (out, q.grad, k.grad, v.grad)]


def test_heads_launched_in_slices_match_one_launch_bit_for_bit(
        launched: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # The table's first case (2 x 3 (batch, head) pairs), in slices of 4 then 2.
    name, spec = CASES[0]
    data = _inputs(np.random.default_rng(len(name)), spec)
    whole = _sdpa_with_grads(data)
    monkeypatch.setattr(attention, "MAX_HEAD_SLICE", 4)
    for label, ours, theirs in zip(("out", "dq", "dk", "dv"), _sdpa_with_grads(data), whole,
                                   strict=True):
        np.testing.assert_array_equal(ours, theirs, err_msg=label)
    assert {"sdpa_forward_mma", "sdpa_backward_q_mma", "sdpa_backward_kv_mma"} <= set(launched)


@pytest.mark.parametrize(("emulated", "warps"), [(False, 4), (True, 2)])
def test_the_emulation_scratch_counts_only_where_emulated(
        emulated: bool, warps: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # Head dim 112 in NVIDIA's 48 KiB: dQ's 4 warps x 32 need 46,336 bytes, 49,408 with
    # the emulation's scratch, so hardware runs 4 warps and the emulation 2.
    q = from_numpy(np.zeros((1, 16, 112), ml_dtypes.bfloat16))
    problem = attention._Problem("sdpa", q, q, q, None, False, None)
    monkeypatch.setattr(problem, "device",
                        SimpleNamespace(cl_device=SimpleNamespace(local_mem_size=48 * 1024)))
    monkeypatch.setattr(gemm, "tensor_cores", lambda cl_device: True)
    monkeypatch.setattr(gemm, "emulates_tensor_cores", lambda cl_device: emulated)
    assert problem.mma_tile("sdpa_backward_q") == MmaAttentionTile(warps, 32)


# The one-pass backward (attention.MMA_BACKWARD) on rows of the table that reach each of
# its edges, each mode at one tile (which tile changes no part of a mode's own logic):
# "partials" on causal rows with L != S (which key blocks reach a query row and are
# summed), at head dims 8 and 32/24 (two slices, 24 padded) in bf16 and fp16, with the
# group's keys in buffers of their own (3 warps of keys, 16 queries a step: emulated, the
# 3 warps share one dQ slice, two computing it again unstored) and in the walk's buffers
# (2 x 32 >= 32 keys); both walks pipelined, so they are the pipelined one-pass walks too.
# "atomic" on a bool mask and on rows with no key (2 dQ slices a warp). dK and dV come
# from the same code on the same dS as the two-pass kernel's, so they must match it bit
# for bit; dQ, a sum in another order, is held to the float64 bound. Every row reuses the
# table's two-pass programs (its dtype, head dims and mask), and each new program is
# about 5-12 s of PoCL compiling: the rows share three.
_FUSED_CASES = dict([*CASES, WIDE])
_APART = MmaAttentionTile(3, 16, pipelined=True)
_IN_WALK = MmaAttentionTile(2, 32, pipelined=True)
FUSED_ROWS = [
    ("partials", _APART, "causal_rectangular", "bf16"),
    ("partials", _IN_WALK, "wide_heads", "fp16"),
    ("atomic", MmaAttentionTile(2, 64), "bool_mask_broadcast", "bf16"),
    ("atomic", MmaAttentionTile(2, 64), "fully_masked_rows", "bf16"),
]


@pytest.mark.parametrize(("mode", "tile", "name", "dtype"), FUSED_ROWS,
                         ids=[f"{r[0]}-{r[1].warps}x{r[1].bn}{'p' * r[1].pipelined}-{r[2]}-{r[3]}"
                              for r in FUSED_ROWS])
def test_the_one_pass_backward_matches_float64_and_the_two_passes(
        mode: str, tile: MmaAttentionTile, name: str, dtype: str,
        builds: list[tuple[str, dict[str, Any]]], monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _FUSED_CASES[name]
    monkeypatch.setattr(attention, "MMA_TILES", {**SMALL_MMA_TILES, "sdpa_backward": [tile]})
    with gemm.emulated_tensor_cores():
        _, two_passes = _run_table_row(name, spec, dtype)
        monkeypatch.setattr(attention, "MMA_BACKWARD", mode)
        del builds[:]
        data, ours = _run_table_row(name, spec, dtype)
    assert [launch for launch, _ in builds] == [
        "sdpa_forward_mma", "sdpa_backward_delta_mma", "sdpa_backward_kv_mma",
        "sdpa_backward_dq_mma"]
    fused = (tile.warps, tile.bn, int(tile.pipelined), 1, int(mode == "atomic"))
    assert tiles_of(builds)["sdpa_backward_kv_mma"] == fused
    for label in ("out", "dk", "dv"):
        np.testing.assert_array_equal(ours[label], two_passes[label], err_msg=label)
    for label, excess in excesses(ours, data, spec, dtype).items():
        assert excess <= 0, (label, excess)


def test_the_one_pass_backward_is_asked_for_by_name_and_gives_way_past_its_memory(
        kernel_names: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    q = from_numpy(np.ones((1, 20, 8), ml_dtypes.bfloat16)).requires_grad_()
    monkeypatch.setattr(attention, "MMA_TILES",
                        {**SMALL_MMA_TILES, "sdpa_backward": [MmaAttentionTile(2, 32)]})
    monkeypatch.setattr(attention, "MMA_BACKWARD", "partial")
    with gemm.emulated_tensor_cores():
        with ag.Tape() as tape:
            out = ops.scaled_dot_product_attention(q, q, q)
        with pytest.raises(ValueError, match="MMA_BACKWARD must be one of"):
            tape.backward(out, from_numpy(np.ones((1, 20, 8), ml_dtypes.bfloat16)))
        # One key block of 32: 20 x 8 floats of dQ terms; one fewer and the two passes run
        # (head dim 8, not masked: the table's "plain" programs, no new build).
        monkeypatch.setattr(attention, "MMA_BACKWARD", "partials")
        monkeypatch.setattr(attention, "MAX_DQ_PARTIALS", 20 * 8 - 1)
        del kernel_names[:]
        with ag.Tape() as tape:
            out = ops.scaled_dot_product_attention(q, q, q)
        tape.backward(out, from_numpy(np.ones((1, 20, 8), ml_dtypes.bfloat16)))
    assert kernel_names == ["sdpa_forward_mma", "sdpa_backward_q_mma", "sdpa_backward_kv_mma"]


# Pipelined walks (cp.async into a second buffer while a step computes) of the forward and
# the dK/dV pass, each row one program for both: 2 warps x 32 (the dK/dV pass's keys in
# the walk's buffers: 2 x 32 >= 32) and 5 warps x 32 (in buffers of their own: 2 x 32 <
# 80). Steps of 32 keys, as the small tiles' forward: its online softmax then rescales
# at the same keys, so the same bits. The one-pass backward's pipelined walks are
# FUSED_ROWS'.
PIPELINED_ROWS = [("causal_rectangular", "bf16", _IN_WALK),
                  ("wide_heads", "fp16", MmaAttentionTile(5, 32, pipelined=True))]


@pytest.mark.parametrize(("name", "dtype", "tile"), PIPELINED_ROWS,
                         ids=[r[0] for r in PIPELINED_ROWS])
def test_pipelined_walks_give_the_bits_of_the_staged_ones(
        name: str, dtype: str, tile: MmaAttentionTile,
        builds: list[tuple[str, dict[str, Any]]], monkeypatch: pytest.MonkeyPatch) -> None:
    # Emulated, a copy lands only at the wait that covers it (mma.cl): a step read before
    # its copies land reads NaNs. (A missing barrier shows only on hardware: PoCL runs a
    # group's work-items in step.) The head dims 8 and 32/24 are read a vector at a time;
    # 24 zero-fills the padding through cp.async's size 0.
    spec = _FUSED_CASES[name]
    monkeypatch.setattr(attention, "MMA_TILES", SMALL_MMA_TILES)
    with gemm.emulated_tensor_cores():
        _, staged = _run_table_row(name, spec, dtype)
        assert {tiles_of(builds)[n][2] for n in ("sdpa_forward_mma", "sdpa_backward_kv_mma")
                } == {0}
        monkeypatch.setattr(attention, "MMA_TILES", {**SMALL_MMA_TILES, "sdpa_forward": [tile],
                                                     "sdpa_backward_kv": [tile]})
        del builds[:]
        _, pipelined = _run_table_row(name, spec, dtype)
    walks = (tile.warps, tile.bn, 1, 0, 0)
    assert tiles_of(builds)["sdpa_forward_mma"] == walks
    assert tiles_of(builds)["sdpa_backward_kv_mma"] == walks
    for label in ("out", "dq", "dk", "dv"):
        np.testing.assert_array_equal(pipelined[label], staged[label], err_msg=label)
