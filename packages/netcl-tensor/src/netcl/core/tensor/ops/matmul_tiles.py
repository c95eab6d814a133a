"""Which shape of the tiled GPU matmul kernel (matmul.cl) runs a given problem.

A device whose name is in ``MEASURED`` takes the tile that won on the
nearest measured problem (``tools/bench/matmul_tune.py`` prints the sweep
these rows come from); any other device takes ``TILE_CONFIGS``' rule: the
largest tile that still gives every compute unit a work-group, K split when
even the smallest leaves most of them idle.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class TileConfig:
    """One shape of the GPU kernel: a ``bm x bn`` tile of C per work-group,
    stepped ``bk`` deep along K, ``tm x tn`` outputs per work-item, and K
    split into at most ``split_k`` chunks whose partial products are summed
    after (for a problem too small to give every compute unit a tile).

    ``swizzle``: local rows are not padded, and an operand whose unit stride
    runs along K is stored with its columns XOR-permuted per 4-deep chunk
    (matmul.cl's A_XOR), which keeps its transposed stores free of bank
    conflicts in 48 KiB where padding would not fit. It needs a multiple of 8
    work-items along each side and ``bk`` at most 32.

    ``k_slices``: work-items per output element. Each slice multiplies its
    share of every ``bk``-deep step and the slices' sums are added in local
    memory at the end: more work-items per tile, for problems whose tiles are
    too few to keep a compute unit's schedulers busy.

    ``pipelined``: each of a tile's ``bk`` steps reads its fragments from
    local memory while the step before multiplies, and the next tile is
    stored and the barrier passed before the tile's last step, whose
    multiplies then hide the first reads of the other buffer. Costs the
    registers of a second fragment; needs an even ``bk / k_slices``."""

    bm: int
    bn: int
    bk: int
    tm: int
    tn: int
    split_k: int = 1
    swizzle: bool = False
    k_slices: int = 1
    pipelined: bool = False

    def __post_init__(self) -> None:
        threads = (self.bm // max(self.tm, 1)) * (self.bn // max(self.tn, 1)) * max(
            self.k_slices, 1)
        if (self.tm < 4 or self.tn < 4 or self.tm % 4 or self.tn % 4 or self.bm % self.tm
                or self.bn % self.tn or self.bk < 4 or self.bk % 4
                or (self.bm * self.bk) % (4 * threads) or (self.bn * self.bk) % (4 * threads)
                or self.split_k < 1 or self.k_slices < 1 or self.bk % self.k_slices):
            raise ValueError(
                f"matmul: {self} does not fit the tiled kernel: tm and tn must be multiples "
                "of 4 dividing bm and bn, bk a multiple of 4, bm * bk and bn * bk multiples "
                "of 4 per work-item (each loads whole float4s), split_k at least 1, "
                "k_slices dividing bk"
            )
        # The XOR reaches bit 4 of a column and bit 2 of a work-item's index
        # (matmul.cl): 8 work-items of 4 columns a side keep it inside the tile.
        if self.swizzle and ((self.bm // self.tm) % 8 or (self.bn // self.tn) % 8
                             or self.bk > 32):
            raise ValueError(
                f"matmul: {self} cannot swizzle: bm / tm and bn / tn must be multiples "
                "of 8, bk at most 32"
            )

        if self.pipelined and (self.bk // self.k_slices) % 2:
            raise ValueError(
                f"matmul: {self} cannot be pipelined: its two fragment sets alternate "
                "by step, so bk / k_slices must be even"
            )

        # Four rows of every other slice's sums at a time go through A's tiles.
        a_tiles = 2 * self.bk * (self.bm + self.row_pad)
        if (self.k_slices - 1) * 4 * self.bn * (self.bm // self.tm) > a_tiles:
            raise ValueError(
                f"matmul: {self}'s {self.k_slices} slices' sums do not fit its local A tiles: "
                "fewer slices or a deeper tile"
            )

    @property
    def local_size(self) -> tuple[int, int, int]:
        return (self.bn // self.tn, self.bm // self.tm * self.k_slices, 1)

    @property
    def local_bytes(self) -> int:
        """Local memory of the double-buffered A and B tiles: float rows padded by
        4 unless swizzled (matmul.cl's AS_STRIDE and BS_STRIDE)."""
        return 2 * self.bk * (self.bm + self.bn + 2 * self.row_pad) * 4

    @property
    def row_pad(self) -> int:
        """Floats of padding after each local row (matmul.cl's AS_STRIDE)."""
        return 0 if self.swizzle else 4

    @property
    def name(self) -> str:
        split = f"/k{self.split_k}" if self.split_k > 1 else ""
        swizzle = "/xor" if self.swizzle else ""
        slices = f"/s{self.k_slices}" if self.k_slices > 1 else ""
        pipe = "/pipe" if self.pipelined else ""
        return (f"{self.bm}x{self.bn}x{self.bk}/{self.tm}x{self.tn}"
                f"{split}{swizzle}{slices}{pipe}")


T = TileConfig
# For a device with no measured table: from largest to smallest. 128x128 with
# 8x8 outputs per work-item is the classic SGEMM shape for NVIDIA parts (64
# accumulators, 16 FMAs per local read); the smaller ones keep more compute
# units busy when there are too few big tiles to go round. Depth 16 beat 8
# on the H200 for every shape from 1024^3 up (tools/bench/history/).
TILE_CONFIGS = (T(128, 128, 16, 8, 8), T(128, 64, 16, 8, 8), T(64, 64, 16, 4, 4))
# Split K only while each chunk stays at least this deep: a shorter chunk
# spends more on writing and summing its partial slab than it saves.
MIN_SPLIT_DEPTH = 128

# Problem (layout, M, N, K) -> the tile that ran it fastest, per device (a
# substring of its OpenCL name). Layout: "nn" A @ B, "nt" A @ B.T, "tn" A.T @ B.
# Batched problems count their batch into M. From tools/bench/matmul_tune.py
# (tools/bench/history/ has the sweep, every candidate's GFLOP/s).
Measured = tuple[tuple[str, int, int, int, TileConfig], ...]
MEASURED: dict[str, Measured] = {
    # 2026-11-29, NVIDIA H200 (132 SMs), OpenCL; split-K summed in the launch.
    "H200": (
        # 512^3: K in four chunks, swizzled where that won (fourth sweep).
        ("nn", 512, 512, 512, T(64, 64, 16, 4, 4, 4)),
        ("nt", 512, 512, 512, T(32, 32, 32, 4, 4, 4, swizzle=True)),
        ("tn", 512, 512, 512, T(32, 32, 16, 4, 4, 4, swizzle=True)),
        # 1024^3 has too few big tiles for 132 SMs. Swizzled local tiles
        # (fourth sweep, tools/bench/history/): 256 x 128 x 16 fits 48 KiB and runs nt
        # 2-6% faster than the padded 8-deep tiles, and 64 x 64 x 32 runs nt
        # 1024^3 10% faster than any padded tile (pipelined, sixth pass: 0.946
        # -> 0.962 of cuBLAS). At 1024^3 K sliced over two work-items per
        # output doubles the work-items per compute unit: nn 37003 GF/s
        # against 34646 unsliced, tn 36176 against 35134 (fourth sweep).
        ("nn", 1024, 1024, 1024, T(128, 64, 32, 8, 8, swizzle=True, k_slices=2)),
        ("nt", 1024, 1024, 1024, T(64, 64, 32, 8, 4, swizzle=True, pipelined=True)),
        ("tn", 1024, 1024, 1024, T(64, 64, 32, 8, 8, k_slices=2)),
        # 2048^3 and up: swizzled, pipelined tiles of 256 work-items (sixth
        # pass, tools/bench/history/; the padded 128 x 256 / 128 x 128 tiles before them,
        # second sweep): nn 0.89 -> 0.93 of cuBLAS on 128 x 256 (128 x 128
        # spills with the second fragment), nt 0.91-0.93 -> 0.93-0.94. tn takes
        # nn's tile since C is stored at offsets inside the tile (seventh
        # pass): 2048^3 0.89 -> 0.91, 4096^3 0.91 -> 0.94.
        ("nn", 2048, 2048, 2048, T(128, 256, 16, 16, 8, swizzle=True, pipelined=True)),
        ("nt", 2048, 2048, 2048, T(256, 128, 16, 16, 8, swizzle=True, pipelined=True)),
        ("tn", 2048, 2048, 2048, T(128, 256, 16, 16, 8, swizzle=True, pipelined=True)),
        ("nn", 4096, 4096, 4096, T(128, 256, 16, 16, 8, swizzle=True, pipelined=True)),
        ("nt", 4096, 4096, 4096, T(256, 128, 16, 16, 8, swizzle=True, pipelined=True)),
        ("tn", 4096, 4096, 4096, T(128, 256, 16, 16, 8, swizzle=True, pipelined=True)),
        ("nn", 128, 256, 784, T(32, 32, 16, 4, 4, 4)),
        ("nt", 128, 256, 784, T(64, 64, 16, 4, 4, 4)),
        ("tn", 128, 256, 784, T(32, 32, 16, 4, 4, 4)),
        # Split K, its slabs summed a float4 at a time: 64 x 64
        # in four chunks beat 64 x 32 unsplit by 18% (third sweep, tools/bench/history/);
        # 32 deep and swizzled, 6-11% more for nt and tn (fourth sweep).
        ("nn", 256, 1024, 1024, T(64, 64, 16, 4, 4, 4)),
        ("nt", 256, 1024, 1024, T(64, 64, 32, 8, 4, 4, swizzle=True)),
        ("tn", 256, 1024, 1024, T(64, 64, 32, 8, 4, 4, swizzle=True)),
        ("nn", 4096, 512, 512, T(128, 128, 16, 8, 8)),
        # 8 x 512^3: the tile tools/bench/matmul.py ran at 0.93 / 0.88 of torch.
        ("nt", 4096, 512, 512, T(128, 64, 16, 8, 8)),
        ("tn", 4096, 512, 512, T(128, 64, 16, 8, 8)),
        ("nt", 4096, 8192, 784, T(256, 128, 16, 16, 8, swizzle=True, pipelined=True)),
        ("nt", 4096, 10, 8192, T(32, 32, 16, 4, 4, 8)),
        ("nn", 4096, 8192, 10, T(128, 64, 8, 8, 8)),
        ("tn", 10, 8192, 4096, T(32, 32, 16, 4, 4, 4)),
        ("tn", 8192, 784, 4096, T(64, 64, 16, 8, 4)),
        # Conv2d 3x3 64 -> 64, 56x56, batch 32: forward, input and weight gradients.
        ("conv1", 2048, 3136, 576, T(64, 64, 16, 4, 4)),
        ("conv3", 2048, 3136, 576, T(64, 64, 16, 4, 4)),
        ("conv2", 2048, 576, 3136, T(64, 64, 16, 4, 4)),
    ),
}


def choose_tile(device_name: str, compute_units: int, layout: str, m: int, n: int, k: int,
                count: int) -> TileConfig:
    """The tile for a ``count``-batch of (M, K) @ (K, N) in ``layout`` on this device."""
    for key, rows in MEASURED.items():
        if key in device_name:
            return _nearest(rows, layout, m, n, k, count)
    return _fallback(compute_units, m, n, k, count)


def _nearest(rows: Measured, layout: str, m: int, n: int, k: int, count: int) -> TileConfig:
    """The winner of the measured problem of this layout closest in log size (batch
    counted as rows); of any layout when none was measured in this one."""
    def distance(row: tuple[str, int, int, int, TileConfig]) -> float:
        _, r_m, r_n, r_k, _ = row
        return (abs(math.log2(r_m / (m * count))) + abs(math.log2(r_n / n))
                + abs(math.log2(r_k / k)))
    same = tuple(row for row in rows if row[0] == layout)
    tile = min(same or rows, key=distance)[4]
    return tile if count == 1 else _unsplit(tile)


def _fallback(compute_units: int, m: int, n: int, k: int, count: int) -> TileConfig:
    for tile in TILE_CONFIGS:
        if _groups(tile, m, n, count) >= compute_units:
            return tile
    tile = TILE_CONFIGS[-1]
    groups = _groups(tile, m, n, count)
    if count > 1 or 2 * groups > compute_units:
        return tile
    splits = min(-(-compute_units // groups), max(1, k // MIN_SPLIT_DEPTH))
    return dataclasses.replace(tile, split_k=splits)


def _groups(tile: TileConfig, m: int, n: int, count: int) -> int:
    return -(-m // tile.bm) * -(-n // tile.bn) * count


def _unsplit(tile: TileConfig) -> TileConfig:
    return dataclasses.replace(tile, split_k=1)


@dataclass(frozen=True)
class MmaTile:
    """One shape of the tensor-core kernel (matmul_mma.cl): a ``bm x bn`` tile of
    C per work-group, stepped ``bk`` deep along K, by ``warps_m x warps_n`` warps
    that each own a ``bm / warps_m`` by ``bn / warps_n`` block of C (whole 16 x 16
    blocks: the B fragments are read two n8 blocks at a time). ``stages``:
    local buffers the tiles are copied into ahead (cp.async), where the
    operands' strides allow 16-byte copies; two otherwise. ``ldmatrix``: TF32
    fragments of a tile stored along K are read by ldmatrix rather than by
    single loads (16-bit fragments always are). ``swizzle``: local tiles unpadded,
    their 16-byte vectors XOR-swizzled against bank conflicts (a third stage of
    128 x 128 x 32 halves fits). ``raster``: work-groups in bands of that many
    tile rows for L2 reuse (0: row order).

    Three options of the cp.async path (both operands' vectors aligned; elsewhere
    they change nothing): ``pipelined``, two fragment sets, each slice's read
    from local memory while the slice before multiplies and the next stage's
    first slice read right after the stage barrier (needs an even number of mma
    steps per ``bk``; the registers of a second set); ``even_tiles``, where M, N
    and K are whole tiles, a build without edge checks whose copies advance
    pointers set once; ``round_staged`` (TF32 only), each work-item rounds the
    vectors it copied once they land, rather than every fragment register as it
    is read (a vector feeds several warps' fragments). None of the three changes
    a sum: the same bits as without."""

    bm: int
    bn: int
    bk: int
    warps_m: int = 2
    warps_n: int = 4
    stages: int = 2
    ldmatrix: bool = True
    swizzle: bool = False
    raster: int = 0
    pipelined: bool = False
    even_tiles: bool = False
    round_staged: bool = False

    def __post_init__(self) -> None:
        if (min(self.bm, self.bn, self.bk, self.warps_m, self.warps_n) < 1
                or self.bm % (16 * self.warps_m) or self.bn % (16 * self.warps_n)
                or self.bk % 8 or self.stages not in (2, 3, 4) or self.raster < 0):
            raise ValueError(
                f"matmul: {self} does not fit the tensor-core kernel: bm / warps_m and "
                "bn / warps_n must be multiples of 16, bk a multiple of 8, stages 2 to 4, "
                "raster 0 or more"
            )

    @property
    def threads(self) -> int:
        return 32 * self.warps_m * self.warps_n

    @property
    def plain(self) -> MmaTile:
        """This tile with pipelined, even_tiles and round_staged off: the bits it must give."""
        return dataclasses.replace(self, pipelined=False, even_tiles=False, round_staged=False)

    def fits(self, element_bytes: int) -> bool:
        """Whether this tile runs inputs of ``element_bytes``: bk a whole number of
        mma steps (16 deep for 16-bit inputs, 8 for TF32), every work-item loading
        whole 16-byte vectors of both tiles; pipelined, an even number of mma steps."""
        per_vector = 16 // element_bytes
        steps, ragged = divmod(self.bk, 32 // element_bytes)
        if self.pipelined and steps % 2:
            return False
        return not ragged and all(
            (rows * self.bk) % (per_vector * self.threads) == 0
            for rows in (self.bm, self.bn)) and (not self.swizzle or self._swizzles(per_vector))

    def _swizzles(self, per_vector: int) -> bool:
        """Whether the XOR swizzle keeps every vector in its row: rows along M or N
        of whole 8-vector blocks, rows along K of 2, 4 or a multiple of 8 vectors."""
        along_k = self.bk // per_vector
        return (all(rows % (8 * per_vector) == 0 for rows in (self.bm, self.bn))
                and (along_k in (2, 4) or along_k % 8 == 0))

    def local_bytes(self, element_bytes: int, a_k_major: bool, b_k_major: bool,
                    buffers: int) -> int:
        """Local memory of ``buffers`` tiles of A and B, padded as matmul_mma.cl pads
        them unswizzled (a row along K by one 16-byte vector, along M or N by 8
        elements)."""
        pad_k, pad_mn = (0, 0) if self.swizzle else (16 // element_bytes, 8)

        def tile(rows: int, k_major: bool) -> int:
            return rows * (self.bk + pad_k) if k_major else self.bk * (rows + pad_mn)
        return buffers * (tile(self.bm, a_k_major) + tile(self.bn, b_k_major)) * element_bytes

    @property
    def name(self) -> str:
        lds = "" if self.ldmatrix else "/lds"
        swizzle = "/swz" if self.swizzle else ""
        raster = f"/r{self.raster}" if self.raster else ""
        pipe = "/pipe" if self.pipelined else ""
        even = "/even" if self.even_tiles else ""
        staged = "/rs" if self.round_staged else ""
        return (f"mma {self.bm}x{self.bn}x{self.bk}/{self.warps_m}x{self.warps_n}w"
                f"/s{self.stages}{lds}{swizzle}{raster}{pipe}{even}{staged}")


# The tensor-core kernel's tile per (input element bytes, layout) where there
# are enough tiles to go round, from the H200 sweeps (tools/bench/history/, tensor
# cores; 4096^3 TFLOP/s): fp16 nn 288 and nt 271 on 32 deep, two stages, 2 x
# 4 warps of 64 x 32; tn 342 on 16 deep, four stages, 2 x 2 warps of 64 x 64.
# TF32 steps 16 deep with two stages (32 would need 72 KiB of local memory):
# nn 140 and tn 128 on 2 x 2 warps; nt 130 on 2 x 4 with single-load
# fragments (115 by ldmatrix). Fourth sweep (bf16 and TF32): swizzled tiles ran
# 5-15% slower than padded ones at 2048^3 and 4096^3 (the padding already kept
# fragment reads free of bank conflicts; the XOR costs instructions) and a third
# stage they made room for gained nothing; only TF32 tn took one, 8 deep with four
# stages (123 against 115).
MMA_TILES = {
    (2, "nn"): MmaTile(128, 128, 32), (2, "nt"): MmaTile(128, 128, 32),
    (2, "tn"): MmaTile(128, 128, 16, 2, 2, stages=4),
    (4, "nn"): MmaTile(128, 128, 16, 2, 2), (4, "nt"): MmaTile(128, 128, 16, ldmatrix=False),
    (4, "tn"): MmaTile(128, 128, 8, 2, 2, stages=4, swizzle=True),
}
# Too few 128 x 128 tiles for the compute units: half or a quarter of the size
# (fourth sweep, 1024^3 TFLOP/s: bf16 tn 103 on 64 x 128 against 89 on 64 x 64,
# TF32 tn 64 on 128 x 64 against 56; the rest within 1% or slower).
MMA_SMALL_TILES = {
    (2, "nn"): MmaTile(64, 64, 32, 2, 2, stages=3), (2, "nt"): MmaTile(64, 64, 32, 2, 2, stages=3),
    (2, "tn"): MmaTile(64, 128, 32, 2, 2, stages=4, swizzle=True),
    (4, "nn"): MmaTile(64, 64, 16, 2, 2), (4, "nt"): MmaTile(64, 64, 16, 2, 2),
    (4, "tn"): MmaTile(128, 64, 16, 2, 2, stages=3, swizzle=True),
}


def choose_mma_tile(compute_units: int, layout: str, m: int, n: int, count: int,
                    element_bytes: int) -> MmaTile:
    """The tensor-core tile for a ``count``-batch of (M, K) @ (K, N) in ``layout``
    ("nn", "nt", "tn"; "tt" takes tn's): the measured big tile while it gives
    every compute unit a work-group, else the small one."""
    key = element_bytes, "tn" if layout == "tt" else layout
    tile = MMA_TILES[key]
    if -(-m // tile.bm) * -(-n // tile.bn) * count >= compute_units:
        return tile
    return MMA_SMALL_TILES[key]
