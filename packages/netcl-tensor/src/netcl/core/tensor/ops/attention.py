"""Scaled dot-product attention as fused kernels: the forward keeps only each query
row's log-sum-exp for the backward, never the (L, S) attention matrix.

Three forms of the same three kernels: attention.cl gives each work-item one row (any
shape), attention_tiled.cl gives each work-group a block of rows and each work-item a
register tile of its products (a GPU's, where the head dims divide the tile), and
attention_cpu.cl one row a work-item without local memory or barriers (a CPU's).
float16 and bfloat16 run attention_mma.cl's kernels on tensor cores where the device
has them (gemm.tensor_cores) and their tiles fit its local memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyopencl.cltypes as cltypes

from netcl.core.device import Device
from netcl.core.tensor import dtypes
from netcl.core.tensor.dispatch import common_device, empty, needs_grad, record
from netcl.core.tensor.launch import enqueue
from netcl.core.tensor.ops import gemm
from netcl.core.tensor.ops.elementwise import broadcast_strides, broadcasts_to, rows_group
from netcl.core.tensor.strides import contiguous_strides
from netcl.core.tensor.tensor import Shape, Tensor

KERNEL_FILE = Path(__file__).with_name("attention.cl")
MASK_FILE = Path(__file__).with_name("attention_mask.cl")
TILED_FILE = Path(__file__).with_name("attention_tiled.cl")
CPU_KERNEL_FILE = Path(__file__).with_name("attention_cpu.cl")
MMA_FILE = Path(__file__).with_name("attention_mma.cl")
FUSED_FILE = Path(__file__).with_name("attention_mma_fused.cl")
STAGE_FILE = Path(__file__).with_name("attention_mma_stage.cl")
# What every form's source starts with: bf16's load and store, the mask and strided reads.
_SHARED = (dtypes.BFLOAT16_CL, MASK_FILE)
# Rows a work-group (one work-item each) and rows a local-memory tile. 64 rows
# share each K/V tile; a tile of 32 rows of 64 floats for K and for V is 16 KiB
# of local memory, well inside every device's 32 KiB minimum.
ROWS = 64
TILE = 32
# Rows a work-item of attention_cpu.cl (its R: the lanes of a float8).
CPU_ROWS = 8
# The dtypes the fused kernels take, 16-bit floats computed in float32 and rounded once on
# store (netcl.nn's scaled_dot_product_attention computes any other by the unfused math).
DTYPES = dtypes.FLOATING
# Head dims the kernels keep in private arrays; past this they would spill.
MAX_HEAD_DIM = 256
_INT32_MAX = 2**31 - 1
# (batch, head) pairs one launch puts on grid dimension 1: NVIDIA allows 65,535 work-groups
# there, so more go in slices, each told its first pair.
MAX_HEAD_SLICE = 65535


@dataclass(frozen=True)
class AttentionTile:
    """One shape of attention_tiled.cl's kernels: a work-group of ``ry x rx`` work-items
    owns ``bm`` rows and stages ``bn`` rows of the other side a step; each work-item
    holds ``bm / ry`` rows of every product and every ``rx``-th column. ``vec``: a
    work-item's rows are consecutive and read from local memory four at a time (its
    ``bm / ry`` a multiple of 4), where they are otherwise every ``ry``-th."""

    bm: int
    bn: int
    ry: int
    rx: int
    vec: bool = False

    def fits(self, dqk: int, dv: int) -> bool:
        """Whether the tile divides the problem's head dims and its own blocks."""
        return not (self.bm % self.ry or self.bn % self.rx or dqk % self.rx or dv % self.rx
                    or (self.vec and (self.bm // self.ry) % 4))

    def local_bytes(self, kernel: str, dqk: int, dv: int) -> int:
        """The local memory ``kernel`` declares (attention_tiled.cl's arrays) at this tile."""
        pm, pn = self.bm + (4 if self.vec else 1), self.bn + 1
        floats = {
            "sdpa_forward": dqk * pm + max(dqk * pn, self.bn * pm) + dv * pn + self.bm * self.rx,
            "sdpa_backward_q": (dqk + dv) * (pm + pn) + self.bn * pm + 2 * self.bm,
            "sdpa_backward_kv": (dqk + dv) * (pm + pn) + 2 * self.bn * pm + 2 * self.bn,
        }[kernel]
        return 4 * floats


# The tiles a GPU runs: each kernel's fastest on an H200 at causal 8x12x1024x64
# (tools/bench/attention_sweep.py; history/2026-12-04-attention-h200-tiled.md).
TILES: dict[str, AttentionTile] = {
    "sdpa_forward": AttentionTile(64, 32, 8, 16, vec=True),
    "sdpa_backward_q": AttentionTile(32, 32, 8, 16, vec=True),
    "sdpa_backward_kv": AttentionTile(32, 32, 8, 16, vec=True),
}


@dataclass(frozen=True)
class MmaAttentionTile:
    """One shape of attention_mma.cl's kernels: ``warps`` warps, each owning 16 rows,
    stage ``bn`` rows (a multiple of 16) of the other side a step. ``pipelined``: the
    forward's and the dK/dV pass's walks copy the next step's tiles by cp.async while a
    step computes (two buffers of each; the dQ pass ignores it)."""

    warps: int
    bn: int
    pipelined: bool = False

    def __post_init__(self) -> None:
        if self.warps < 1 or self.bn < 16 or self.bn % 16:
            raise ValueError(
                f"MmaAttentionTile: warps must be at least 1 and bn a positive multiple of 16 "
                f"(a step is whole 16-key slices), got warps={self.warps}, bn={self.bn}"
            )

    def local_bytes(self, kernel: str, dqk: int, dv: int, emulated: bool) -> int:
        """The local memory ``kernel`` declares at this tile: 16-bit tiles of rows padded
        to multiples of 16 plus 8 elements, and where ``emulated`` mma.cl's scratch."""
        pq, pv = -(-dqk // 16) * 16 + 8, -(-dv // 16) * 16 + 8
        bm = 16 * self.warps
        walked = (2 if self.pipelined else 1) * self.bn  # rows of the walk's buffers
        # Pipelined, the dK/dV walk's keys (V, and K but in the one-pass form) are staged
        # in its buffers where they fit.
        aliased = self.pipelined and walked >= bm
        halves = {"sdpa_forward": bm * pq + walked * (pq + pv),
                  "sdpa_backward_q": (bm + self.bn) * (pq + pv),
                  "sdpa_backward_kv": (0 if aliased else bm) * (pq + pv) + walked * (pq + pv),
                  "sdpa_backward": bm * pq + (0 if aliased else bm * pv) + walked * (pq + pv)
                  + self.bn * (bm + 8)}[kernel]
        floats = {"sdpa_forward": 0, "sdpa_backward_q": bm, "sdpa_backward_kv": 2 * walked,
                  "sdpa_backward": 2 * walked}
        scratch = 32 * self.warps * gemm.MMA_SCRATCH_BYTES if emulated else 0
        return 2 * halves + 4 * floats[kernel] + scratch


# Each kernel's tensor-core tiles, the first that fits local memory taken: 64 rows a
# group and steps of 64 (head dim 64: 27 KiB forward, 36.5 KiB backward), of 32 (head dim
# 128 forward: 34 KiB), or 32 rows and steps of 32 (head dim 128 backward: 34.25 KiB);
# NVIDIA's OpenCL gives a work-group 48 KiB. Not yet timed on a GPU.
_MMA_CANDIDATES = [MmaAttentionTile(4, 64), MmaAttentionTile(4, 32), MmaAttentionTile(2, 32)]
MMA_TILES: dict[str, list[MmaAttentionTile]] = {
    name: _MMA_CANDIDATES for name in ("sdpa_forward", "sdpa_backward_q", "sdpa_backward_kv",
                                       "sdpa_backward")
}
# The tensor-core backward: None, two passes (dQ over query blocks, then dK/dV over key
# blocks; S and dP computed in both: 7 products a block pair); "partials" or "atomic",
# one pass over key blocks that computes dS once for dK and dQ (5 products; MMA_TILES'
# "sdpa_backward" tile). "partials" writes each key block's dQ terms to a float32 plane of
# its own, summed in order after (the same bits every run; batch x heads x Lq x DQK x 4
# bytes a key block: 402 MB at 8x12x1024x64 in blocks of 64 keys, under MAX_DQ_PARTIALS
# or the two passes run); "atomic" adds them into one float32 plane (FlashAttention-2's
# way: the order of the additions, so the last bits of dQ, vary between runs).
# Opt-in until the H200 shows which is faster (tools/bench/attention_mma_sweep.py).
MMA_BACKWARD: str | None = None
MMA_BACKWARDS = (None, "partials", "atomic")
# The most float32 elements "partials" takes for its planes (1 GiB).
MAX_DQ_PARTIALS = 2**28
# The fused backward's kernels (all at the tile of MMA_TILES["sdpa_backward"]), and whether
# each runs a work-item a row or element (D = rowsum(dO * O), the dQ sum) rather than a
# warp per 16 rows (the dK/dV walk).
_ITEM_PER_ROW = {"sdpa_backward_delta": True, "sdpa_backward_kv": False,
                 "sdpa_backward_dq": True}
# The 16-bit dtypes attention_mma.cl takes, as mma.cl's MMA_TYPE.
MMA_TYPES = {dtypes.float16: 1, dtypes.bfloat16: 2}
# "rows", "tiles" or "cpu" runs that form everywhere it fits; None: tiles on a GPU, cpu
# (attention_cpu.cl) elsewhere.
KERNELS: str | None = None


def _form(device: Device) -> str:
    return KERNELS or ("tiles" if device.type == "gpu" else "cpu")


def _as4(op: str, name: str, t: Tensor) -> tuple[Shape, np.ndarray[Any, Any]]:
    """``t`` (2 to 4 dims) as a 4-D (batch, head, row, column) shape and its int4 strides."""
    if not 2 <= t.ndim <= 4:
        raise ValueError(
            f"{op}: {name} must have 2 to 4 dimensions (..., L, E), got shape {t.shape}"
        )
    if t.dtype not in DTYPES:
        raise TypeError(f"{op}: {name} must be one of {[str(d) for d in DTYPES]}, got {t.dtype}")
    pad = 4 - t.ndim
    shape = (1,) * pad + t.shape
    strides = (0,) * pad + t.strides
    return shape, np.array(strides, dtype=cltypes.int4)


def _defines(q: Tensor, dqk: int, dv: int, mask: int, causal: bool) -> dict[str, str | int]:
    access = {"T": dtypes.STORAGE_C_TYPE[q.dtype],
              "LOAD(p, i)": dtypes.cl_load(q.dtype, "(p)", "(i)"),
              "STORE(p, i, v)": dtypes.cl_store(q.dtype, "(p)", "(i)", "(v)")}
    return {**access, "DQK": dqk, "DV": dv, "BQ": ROWS, "BK": TILE, "MASK": mask,
            "CAUSAL": int(causal)}


class _Problem:
    """The checked shapes and kernel arguments one attention call shares with its backward."""

    def __init__(self, op: str, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None,
                 causal: bool, scale: float | None) -> None:
        qs, self.q_st = _as4(op, "query", q)
        ks, self.k_st = _as4(op, "key", k)
        vs, self.v_st = _as4(op, "value", v)
        if q.dtype != k.dtype or q.dtype != v.dtype:
            raise TypeError(
                f"{op}: query, key and value must have one dtype, got {q.dtype}, {k.dtype}, "
                f"{v.dtype}"
            )
        if qs[:2] != ks[:2] or ks[:2] != vs[:2] or qs[3] != ks[3] or ks[2] != vs[2]:
            raise ValueError(
                f"{op}: query {q.shape}, key {k.shape} and value {v.shape} must be "
                "(..., L, E), (..., S, E) and (..., S, Ev) with the same leading dimensions"
            )
        self.device = common_device(op, [q, k, v] + ([mask] if mask is not None else []))
        self.batch, self.heads, self.lq, self.dqk = qs
        self.lk, self.dv = ks[2], vs[3]
        if self.dqk > MAX_HEAD_DIM or self.dv > MAX_HEAD_DIM:
            raise ValueError(
                f"{op}: head dims up to {MAX_HEAD_DIM} are supported, got {self.dqk} "
                f"(query/key) and {self.dv} (value)"
            )
        self.out_shape = (*q.shape[:-1], self.dv)
        for name, t in (("query", q), ("key", k), ("value", v)):
            check_reach(op, name, t.offset, t.shape, t.strides)
        # out and the backward's grads are contiguous, of q's, k's and v's sizes.
        check_reach(op, "out", 0, self.out_shape, contiguous_strides(self.out_shape))
        self.scale = 1.0 / math.sqrt(self.dqk) if scale is None else float(scale)
        if causal and mask is not None:
            raise ValueError(f"{op}: give attn_mask or is_causal=True, not both (as PyTorch)")
        self.mask_kind = 0
        self.mask_args: list[Any] = []
        if mask is not None:
            full = (self.batch, self.heads, self.lq, self.lk)
            if not broadcasts_to(mask.shape, full):
                raise ValueError(
                    f"{op}: attn_mask of shape {mask.shape} does not broadcast to "
                    f"(batch, heads, L, S) = {full}"
                )
            if mask.dtype == dtypes.bool_:
                self.mask_kind = 1
            elif mask.dtype == q.dtype:
                self.mask_kind = 2
            else:
                raise TypeError(
                    f"{op}: attn_mask must be bool or the query's dtype {q.dtype}, got {mask.dtype}"
                )
            strides = broadcast_strides(mask, full)
            check_reach(op, "attn_mask", mask.offset, full, strides)
            self.mask_args = [mask.buffer, np.int32(mask.offset),
                              np.array(strides, dtype=cltypes.int4)]
        self.defines = _defines(q, self.dqk, self.dv, self.mask_kind, causal)
        self.dtype = q.dtype
        # attention_mma.cl's `vecs`: the operands whose rows it reads 16 bytes at a time.
        self.vecs = sum(bit for bit, (t, st) in zip(
            (1, 2, 4), ((q, self.q_st), (k, self.k_st), (v, self.v_st)), strict=True)
            if _vector_rows(t, st))

    def mma_tile(self, name: str) -> MmaAttentionTile | None:
        """The tensor-core tile kernel ``name`` runs at, or None where it has none here."""
        if (KERNELS is not None or self.dtype not in MMA_TYPES
                or not gemm.tensor_cores(self.device.cl_device)):
            return None
        limit = self.device.cl_device.local_mem_size
        emulated = gemm.emulates_tensor_cores(self.device.cl_device)
        return next((tile for tile in MMA_TILES.get(name, [])
                     if tile.local_bytes(name, self.dqk, self.dv, emulated) <= limit), None)

    def fused_backward(self) -> tuple[MmaAttentionTile, int] | None:
        """Where MMA_BACKWARD asks for the one-pass backward and it runs here: its tile and
        the float32 elements of its dQ planes."""
        if MMA_BACKWARD not in MMA_BACKWARDS:
            raise ValueError(f"attention.MMA_BACKWARD must be one of {MMA_BACKWARDS}, got "
                             f"{MMA_BACKWARD!r}")
        tile = self.mma_tile("sdpa_backward") if MMA_BACKWARD else None
        if tile is None:
            return None
        planes = 1 if MMA_BACKWARD == "atomic" else -(-self.lk // (16 * tile.warps))
        elements = self.batch * self.heads * planes * self.lq * self.dqk
        return (tile, elements) if elements <= MAX_DQ_PARTIALS else None

    def tile(self, name: str) -> AttentionTile | None:
        """The tile kernel ``name`` runs at, or None for the row-a-work-item form."""
        tile = TILES[name]
        if _form(self.device) != "tiles" or not tile.fits(self.dqk, self.dv):
            return None
        if tile.local_bytes(name, self.dqk, self.dv) > self.device.cl_device.local_mem_size:
            return None
        return tile

    def launch(self, name: str, rows: int, args: list[Any],
               fused: MmaAttentionTile | None = None) -> None:
        """Kernel ``name`` over ``rows`` rows for every (batch, head), then ``tail``'s
        sizes and scale: a work-group per ``bm`` rows of its tile (16 a warp on tensor
        cores), a work-item a row (ROWS a work-group), or attention_cpu.cl's CPU_ROWS a
        work-item. ``fused``: one of the fused backward's kernels (_ITEM_PER_ROW) at that tile."""
        heads = self.batch * self.heads
        if not rows or not heads:
            return
        for first in range(0, heads, MAX_HEAD_SLICE):
            self._launch(name, rows, min(MAX_HEAD_SLICE, heads - first), first, args, fused)

    def _launch(self, name: str, rows: int, heads: int, first: int, args: list[Any],
                fused: MmaAttentionTile | None) -> None:
        """:meth:`launch` for the ``heads`` (batch, head) pairs from ``first``."""
        kernels = self.device.kernels
        mma = fused or self.mma_tile(name)
        if mma is not None:
            defines = {**self.defines, "MMA_TYPE": MMA_TYPES[self.dtype], "WARPS": mma.warps,
                       "BN": mma.bn, "PIPELINED": int(mma.pipelined),
                       "MMA_EMULATED": int(gemm.emulates_tensor_cores(self.device.cl_device))}
            sources: tuple[Path, ...] = (*_SHARED, gemm.MMA_HELPERS_FILE, STAGE_FILE, MMA_FILE)
            if fused is not None:
                defines |= {"FUSED_BACKWARD": 1, "DQ_ATOMIC": int(MMA_BACKWARD == "atomic")}
                sources = (*_SHARED, gemm.MMA_HELPERS_FILE, FUSED_FILE, STAGE_FILE, MMA_FILE)
            kernel = kernels.kernel(sources, f"{name}_mma", defines)
            size = 32 * mma.warps
            per_group = size if fused is not None and _ITEM_PER_ROW[name] else 16 * mma.warps
            groups = -(-rows // per_group)
            enqueue(self.device, kernel, (groups * size, heads), (size, 1),
                    [*args, *self.tail(first), np.int32(self.vecs)])
            return
        if _form(self.device) == "cpu":
            kernel = kernels.kernel((*_SHARED, CPU_KERNEL_FILE), f"{name}_cpu", self.defines)
            blocks = -(-rows // CPU_ROWS)
            enqueue(self.device, kernel, (blocks, heads), rows_group(blocks, heads),
                    [*args, *self.tail(first)])
            return
        tile = self.tile(name)
        if tile is None:
            kernel = kernels.kernel((*_SHARED, KERNEL_FILE), name, self.defines)
            groups, size = -(-rows // ROWS), ROWS
        else:
            defines = {**self.defines, "BM": tile.bm, "BN": tile.bn, "RY": tile.ry,
                       "RX": tile.rx, "VEC": int(tile.vec)}
            kernel = kernels.kernel((*_SHARED, TILED_FILE), f"{name}_tiled", defines)
            groups, size = -(-rows // tile.bm), tile.ry * tile.rx
        enqueue(self.device, kernel, (groups * size, heads), (size, 1),
                [*args, *self.tail(first)])

    def tail(self, first: int) -> list[Any]:
        """The sizes, the scale and the launch's first (batch, head) pair."""
        return [np.int32(self.heads), np.int32(self.lq), np.int32(self.lk),
                np.float32(self.scale), np.int32(first)]


def check_reach(op: str, name: str, offset: int, shape: Shape, strides: Shape) -> None:
    """Raises where an element of the view (``offset``, ``shape``, ``strides``) lies past
    the kernels' 32-bit indices."""
    if not all(shape):
        return
    reach = offset + sum((n - 1) * abs(s) for n, s in zip(shape, strides, strict=True))
    if reach > _INT32_MAX:
        raise ValueError(
            f"{op}: {name} of shape {tuple(shape)} (strides {tuple(strides)}, offset {offset}) "
            f"reaches element {reach}; the kernels index with 32-bit offsets (at most "
            f"{_INT32_MAX})"
        )


def _vector_rows(t: Tensor, strides: np.ndarray[Any, Any]) -> bool:
    """Whether every row of the 16-bit ``t`` (4-D ``strides``) is contiguous and starts
    16 bytes into its buffer's alignment with a multiple of 8 elements: read 8 at a time."""
    batch, head, row, column = (int(s) for s in strides.tolist())
    return (t.itemsize == 2 and column == 1 and t.shape[-1] % 8 == 0
            and all(s % 8 == 0 for s in (batch, head, row, t.offset)))


def _operand(t: Tensor, strides: np.ndarray[Any, Any]) -> list[Any]:
    return [t.buffer, np.int32(t.offset), strides]


def scaled_dot_product_attention(
    q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None = None, is_causal: bool = False,
    scale: float | None = None,
) -> Tensor:
    """softmax(q @ k^T * scale + mask) @ v, fused, without dropout.

    ``q`` (..., L, E), ``k`` (..., S, E), ``v`` (..., S, Ev), up to two leading
    dims (batch, heads), all of one float dtype; the result is (..., L, Ev).
    ``scale`` defaults to 1/sqrt(E). ``attn_mask`` broadcasts to (batch,
    heads, L, S): bool (True takes part) or additive of the query's dtype.
    ``is_causal`` keeps key j for query i only where j <= i (top-left
    aligned, as PyTorch; not with a mask). A query row with no key
    left gives 0, as PyTorch. Recorded as ``scaled_dot_product_attention``,
    saving each row's log-sum-exp (float32, O(L)) for the backward.
    """
    op = "scaled_dot_product_attention"
    problem = _Problem(op, q, k, v, attn_mask, is_causal, scale)
    out = empty(problem.out_shape, q.dtype, problem.device)
    lse = empty((problem.batch * problem.heads * problem.lq,), dtypes.float32, problem.device)
    if attn_mask is not None and attn_mask.requires_grad and needs_grad([q, k, v, attn_mask]):
        raise NotImplementedError(
            f"{op}: an attn_mask that requires grad is not supported (its gradient is the "
            "(L, S) matrix the fused kernels never form); detach it"
        )
    problem.launch("sdpa_forward", problem.lq, [
        *_operand(q, problem.q_st), *_operand(k, problem.k_st), *_operand(v, problem.v_st),
        *problem.mask_args, out.buffer, lse.buffer])
    return record(op, [q, k, v], out, lse=lse, attn_mask=attn_mask, is_causal=is_causal,
                  scale=problem.scale)


def scaled_dot_product_attention_backward(
    grad: Tensor, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor,
    attn_mask: Tensor | None = None, is_causal: bool = False, scale: float | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """The gradients (dq, dk, dv) of :func:`scaled_dot_product_attention` from its output
    ``out``, the ``lse`` it saved and ``grad`` (of ``out``'s shape): two launches,
    one over query rows, one over key rows. Not recorded."""
    op = "scaled_dot_product_attention_backward"
    problem = _Problem(op, q, k, v, attn_mask, is_causal, scale)
    if grad.shape != problem.out_shape or out.shape != problem.out_shape:
        raise ValueError(
            f"{op}: grad {grad.shape} and out {out.shape} must both be {problem.out_shape}"
        )
    if not out.is_contiguous or out.offset or grad.dtype != q.dtype:
        raise ValueError(f"{op}: out must be the contiguous tensor the forward returned")
    # The gradients are contiguous: a broadcast (stride 0) input reaches less than its own.
    for name, t in (("dq", q), ("dk", k), ("dv", v)):
        check_reach(op, name, 0, t.shape, contiguous_strides(t.shape))
    device = problem.device
    rows = problem.batch * problem.heads
    dq = empty(q.shape, q.dtype, device)
    dk = empty(k.shape, k.dtype, device)
    dv = empty(v.shape, v.dtype, device)
    delta = empty((rows * problem.lq,), dtypes.float32, device)
    _, g_st = _as4(op, "grad", grad)
    check_reach(op, "grad", grad.offset, grad.shape, grad.strides)
    problem.vecs |= 8 if _vector_rows(grad, g_st) else 0
    inputs = [*_operand(q, problem.q_st), *_operand(k, problem.k_st),
              *_operand(v, problem.v_st), *problem.mask_args, *_operand(grad, g_st)]
    fused = problem.fused_backward()
    if fused is not None:
        tile, elements = fused
        planes = empty((elements,), dtypes.float32, device)
        if MMA_BACKWARD == "atomic":
            planes.zero_()
        problem.launch("sdpa_backward_delta", problem.lq,
                       [*_operand(grad, g_st), out.buffer, delta.buffer], tile)
        problem.launch("sdpa_backward_kv", problem.lk,
                       [*inputs, lse.buffer, delta.buffer, planes.buffer, dk.buffer, dv.buffer],
                       tile)
        problem.launch("sdpa_backward_dq", problem.lq * problem.dqk,
                       [planes.buffer, dq.buffer], tile)
        return dq, dk, dv
    problem.launch("sdpa_backward_q", problem.lq,
                   [*inputs, out.buffer, lse.buffer, dq.buffer, delta.buffer])
    problem.launch("sdpa_backward_kv", problem.lk,
                   [*inputs, lse.buffer, delta.buffer, dk.buffer, dv.buffer])
    return dq, dk, dv
