"""Tile sweep of the tensor-core matmul (matmul_mma.cl) against torch cuBLAS, in one run.

For each input dtype (float16; float32 as TF32), layout and square size, runs
every candidate ``MmaTile`` through ``matmul_with(kernel="mma")``, checks the
result once against float64 (max error over the bound the kernel admits, as
tests/netcl-tensor/test_matmul_tensor_cores.py derives it; must be <= 1), and
prints TFLOP/s beside torch's with the same dtype (TF32 allowed for float32),
then the fastest tile of each case: the winners go into matmul_tiles.MMA_TILES.

    NETCL_DEVICE=gpu python tools/bench/matmul_mma_sweep.py --sizes 1024 2048 4096

Each tile the sizes' classes use is first checked on a ragged shape and on whole
tiles (a tile over its bound is not timed); the "mma.sync peak" column is
tools/bench/mma_peak.py's register-only loop in that dtype.

Timing and table are tools/bench/harness.py's: wall time around many calls
ended by queue.finish() / torch.cuda.synchronize(), median of 7 samples, each
contender in a whole turn (``--json``: the table as one JSON line too).
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE))
from harness import Contender, Report, add_json_flag, time_contenders  # noqa: E402
from matmul import operands, torch_tensor, transposed, used  # noqa: E402
from mma_peak import peak_tflops  # noqa: E402

from netcl.core.device import manager  # noqa: E402
from netcl.core.tensor import backends, from_numpy  # noqa: E402
from netcl.core.tensor.ops.matmul import MmaTile, matmul_with  # noqa: E402

T = MmaTile
# Square sizes where 128 x 128 tiles give every compute unit a work-group (2048 up),
# and the small-tile class below it (1024: 64 work-groups of 128 x 128 for 132 units).
# BIG: today's MMA_TILES (bf16 nn / nt, tn) and the cp.async options beside them:
# "even" (no edge checks, copy pointers advanced by a constant: the sizes here are
# whole tiles), "pipe" (two fragment sets, the next slice read while this one
# multiplies; needs 32-deep 16-bit steps). The pipelined ones hold a 64 x 64 block
# a warp (CUTLASS's mainloop shape; 2 x 4 warps of 64 x 32 with a second fragment
# set ran past 128 registers and lost half its speed, fourth pass); each beside the
# same tile unpipelined, so a win is the pipeline's, not the warp shape's. All fit
# 48 KiB: 128 x 128 x 32 two padded stages or three swizzled, 128 x 256 x 32 two swizzled.
BIG = [T(128, 128, 32), T(128, 128, 16, 2, 2, stages=4),
       T(128, 128, 32, even_tiles=True), T(128, 128, 16, 2, 2, stages=4, even_tiles=True),
       T(128, 128, 32, 2, 2, stages=3, swizzle=True, even_tiles=True),
       T(128, 128, 32, 2, 2, even_tiles=True),
       T(128, 128, 32, 2, 2, pipelined=True, even_tiles=True),
       T(128, 128, 32, 2, 2, stages=3, swizzle=True, pipelined=True, even_tiles=True),
       T(128, 256, 32, 2, 4, swizzle=True, even_tiles=True),
       T(128, 256, 32, 2, 4, swizzle=True, pipelined=True, even_tiles=True),
       T(256, 128, 32, 4, 2, swizzle=True, even_tiles=True),
       T(256, 128, 32, 4, 2, swizzle=True, pipelined=True, even_tiles=True)]
SMALL = [T(64, 64, 32, 2, 2, stages=3), T(64, 64, 32, 2, 2, stages=4, swizzle=True),
         T(128, 64, 32, 2, 2, stages=4, swizzle=True),
         T(64, 128, 32, 2, 2, stages=4, swizzle=True),
         T(64, 128, 32, 2, 2, stages=4, swizzle=True, pipelined=True, even_tiles=True)]
# TF32: today's tiles (nn, nt, tn), each again built for whole tiles with its
# fragments' cvt.rna moved to one per copied vector as a stage lands ("rs": each
# vector feeds several warps' fragments), then pipelined ones; 16 deep is two
# 8-deep steps.
TF32_BIG = [T(128, 128, 16, 2, 2), T(128, 128, 16, ldmatrix=False),
            T(128, 128, 8, 2, 2, stages=4, swizzle=True),
            T(128, 128, 16, 2, 2, even_tiles=True, round_staged=True),
            T(128, 128, 16, ldmatrix=False, even_tiles=True, round_staged=True),
            T(128, 128, 8, 2, 2, stages=4, swizzle=True, even_tiles=True, round_staged=True),
            T(128, 128, 16, 2, 2, pipelined=True, even_tiles=True),
            T(128, 128, 16, 2, 2, stages=3, swizzle=True, pipelined=True, even_tiles=True,
              round_staged=True),
            T(128, 256, 16, 2, 4, swizzle=True, pipelined=True, even_tiles=True,
              round_staged=True)]
TF32_SMALL = [T(64, 64, 16, 2, 2), T(64, 64, 16, 2, 2, stages=4, swizzle=True),
              T(128, 64, 16, 2, 2, stages=3, swizzle=True),
              T(128, 64, 16, 2, 2, stages=3, swizzle=True, pipelined=True, even_tiles=True,
                round_staged=True)]
CANDIDATES = {"float16": (BIG, SMALL), "bfloat16": (BIG, SMALL),
              "float32": (TF32_BIG, TF32_SMALL)}
# Shapes checked against float64 once per tile and layout besides the squares up to
# 1024 (a float64 product at 4096^3 takes the host seconds): ragged edges of every
# tile and a K past a whole step, read by cp.async (16-byte aligned rows), and whole
# tiles of every candidate (the "even" build the squares run); the register path's
# edges are test_matmul_tensor_cores.py's.
CHECK_SHAPES = [(200, 72, 136), (256, 256, 256)]
CHECKED_UP_TO = 1024


def error_over_bound(got: Any, a: Any, b: Any) -> float:
    """Max |got - exact| over the bound of test_matmul_tensor_cores.bound."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    k = a.shape[-1]
    u_in = 2.0**-11 if a.dtype == np.float32 else 0.0
    allowed = (np.abs(a64) @ np.abs(b64)) * (2 * u_in + u_in**2 + k * 2.0**-23 / (1 - k * 2.0**-23))
    exact = a64 @ b64
    if a.dtype != np.float32:  # a 16-bit result rounded once more: 10 or 7 mantissa bits
        unit = 2.0**-11 if a.dtype == np.float16 else 2.0**-8
        allowed = allowed * (1 + unit) + np.abs(exact) * unit
    return float(np.max(np.abs(got.astype(np.float64) - exact) / allowed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    parser.add_argument("--dtype", choices=tuple(CANDIDATES), nargs="+",
                        default=list(CANDIDATES))
    parser.add_argument("--layout", choices=("nn", "nt", "tn"), nargs="+",
                        default=["nn", "nt", "tn"])
    add_json_flag(parser)
    args = parser.parse_args()
    import torch

    device = manager.default("auto")
    backends.set_float32_matmul_precision("high")
    torch.backends.cuda.matmul.allow_tf32 = True
    report = Report("tensor-core matmul tile sweep", device.name, args.json,
                    peer=f"torch {torch.__version__} cuBLAS")
    table = report.table("TFLOP/s; err/bound must be <= 1; peak: mma_peak.py's loop",
                         ["err/bound", "netcl TFLOP/s", "torch TFLOP/s", "mma.sync peak"],
                         ratios=[("netcl TFLOP/s", "torch TFLOP/s"),
                                 ("netcl TFLOP/s", "mma.sync peak")])
    best: dict[str, tuple[str, float, float]] = {}  # case -> (tile, TFLOP/s, torch's)
    rng = np.random.default_rng(0)
    for dtype_name in args.dtype:
        dtype = np.dtype(dtype_name)
        peak = peak_tflops(device, dtype_name)
        big, small = CANDIDATES[dtype_name]
        small_sizes = [is_small(device, size) for size in args.sizes]
        swept = (big if not all(small_sizes) else []) + (small if any(small_sizes) else [])
        for layout in args.layout:
            failed: set[MmaTile] = set()
            for tile in swept:
                for m, k, n in CHECK_SHAPES:
                    try:
                        ratio = checked(device, tile, layout, m, k, n, dtype, rng)
                    except Exception as error:  # a variant that does not build: the rest run
                        print(f"{dtype_name} {layout} {tile.name}: {error}"[:2000])
                        ratio = float("inf")
                    table.row(f"{dtype_name} {layout} {m}x{k}x{n} {tile.name}",
                              {"err/bound": ratio})
                    if not ratio <= 1:
                        failed.add(tile)
            for size in args.sizes:
                a_host, b_host = operands(1, size, size, size, layout, dtype, rng)
                a, b = placed(device, a_host, b_host, layout)
                left = torch_tensor(a_host).cuda()
                right = torch_tensor(b_host).cuda()
                left = left.T if layout[0] == "t" else left
                right = right.T if layout[1] == "t" else right
                flops = 2.0 * size**3
                torch_s = seconds_per_call((partial(torch.matmul, left, right),
                                            torch.cuda.synchronize))
                tiles = small if is_small(device, size) else big
                for tile in tiles:
                    if tile in failed:
                        continue
                    call = partial(matmul_with, a, b, kernel="mma", tile=tile)
                    ratio = (error_over_bound(call().numpy(), used(a_host, layout[0] == "t"),
                                              used(b_host, layout[1] == "t"))
                             if size <= CHECKED_UP_TO else None)
                    seconds = seconds_per_call((call, device.queue.finish))
                    tflops, torch_tflops = flops / seconds / 1e12, flops / torch_s / 1e12
                    table.row(f"{dtype_name} {layout} {size}^3 {tile.name}", {
                        "err/bound": ratio, "netcl TFLOP/s": tflops,
                        "torch TFLOP/s": torch_tflops, "mma.sync peak": peak})
                    case = f"{dtype_name} {layout} {size}^3"
                    if tflops > best.get(case, ("", 0.0, 0.0))[1]:
                        best[case] = tile.name, tflops, torch_tflops
    winners = report.table("the fastest tile of each case (MMA_TILES' candidates)",
                           ["tile", "netcl TFLOP/s", "torch TFLOP/s"],
                           ratios=[("netcl TFLOP/s", "torch TFLOP/s")])
    for case, (name, tflops, torch_tflops) in best.items():
        winners.row(case, {"tile": name, "netcl TFLOP/s": tflops, "torch TFLOP/s": torch_tflops})
    report.finish()


def is_small(device: Any, size: int) -> bool:
    """Whether a size^3 product takes the small tiles: too few 128 x 128 tiles to give
    every compute unit one (as matmul_tiles.choose_mma_tile decides)."""
    return size * size < 128 * 128 * device.compute_units


def placed(device: Any, a_host: Any, b_host: Any, layout: str) -> tuple[Any, Any]:
    """The operands on the device, each transposed in place where ``layout`` says "t"."""
    a, b = from_numpy(a_host, device), from_numpy(b_host, device)
    return (transposed(a) if layout[0] == "t" else a,
            transposed(b) if layout[1] == "t" else b)


def checked(device: Any, tile: MmaTile, layout: str, m: int, k: int, n: int,
            dtype: np.dtype[Any], rng: np.random.Generator) -> float:
    """``tile``'s error over its bound on one (m, k) @ (k, n) product in ``layout``; inf
    where a tile with the cp.async options on is not bit for bit ``tile.plain`` (a
    partial race can stay inside the bound)."""
    a_host, b_host = operands(1, m, k, n, layout, dtype, rng)
    a, b = placed(device, a_host, b_host, layout)
    got = matmul_with(a, b, kernel="mma", tile=tile).numpy()
    if tile != tile.plain and not np.array_equal(
            got, matmul_with(a, b, kernel="mma", tile=tile.plain).numpy(), equal_nan=True):
        print(f"{tile.name} {layout} {m}x{k}x{n}: not the bits of {tile.plain.name}")
        return float("inf")
    return error_over_bound(got, used(a_host, layout[0] == "t"), used(b_host, layout[1] == "t"))


def seconds_per_call(contender: Contender) -> float:
    return time_contenders({"it": contender}, interleave=False)["it"].median


if __name__ == "__main__":
    main()
