"""The mma.sync peak from OpenCL: a register-only loop of tensor-core products, against
torch cuBLAS's matmul in the same dtype, in one run.

Each work-item's warp runs ``CHAINS`` independent accumulators through ``mma.sync``
(mma.cl's MMA: m16n8k16 for float16 / bfloat16, m16n8k8 for TF32) on fragments that
never leave registers: no memory traffic, no ldmatrix, so this is the most a kernel
built on mma.sync can reach on this device (Hopper's wgmma, which cuBLAS uses, is out
of OpenCL's reach). matmul_mma_sweep.py divides each tile's rate by it.

    NETCL_DEVICE=gpu python tools/bench/mma_peak.py
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
from harness import Report, add_json_flag, time_contenders  # noqa: E402

from netcl.core.device import Device, manager  # noqa: E402
from netcl.core.tensor.ops import gemm  # noqa: E402

CHAINS = 8  # independent accumulators a warp keeps in flight
THREADS = 256
ITERATIONS = 2048
GROUPS_PER_UNIT = 8

PEAK_SOURCE = """
__kernel __attribute__((reqd_work_group_size(THREADS, 1, 1)))
void mma_peak(__global float *out, const int iterations)
{
    const uint lane = get_local_id(0) % 32;
    // Small values in every dtype (the bits matter little: the product takes as long).
    const uint a[4] = {0x3c003c00u ^ lane, 0x3c003c00u, 0x3c00u, 0x3c000000u};
    const uint b[2] = {0x3c003c00u, 0x3c00u ^ lane};
    float c[CHAINS][4];
    for (int i = 0; i < CHAINS; ++i)
        for (int r = 0; r < 4; ++r) c[i][r] = 0.0f;
    for (int it = 0; it < iterations; ++it) {
#pragma unroll
        for (int i = 0; i < CHAINS; ++i) MMA(c[i], a, b);
    }
    float sum = 0.0f;
    for (int i = 0; i < CHAINS; ++i)
        for (int r = 0; r < 4; ++r) sum += c[i][r];
    out[get_global_id(0)] = sum;
}
"""

# matmul_mma.cl's numbering, and each product's depth.
MMA_TYPE = {"float32": 0, "float16": 1, "bfloat16": 2}
MMA_K = {"float32": 8, "float16": 16, "bfloat16": 16}


def peak_call(device: Device, dtype: str) -> tuple[partial[Any], float]:
    """One launch of the register-only loop, and the FLOPs it does."""
    import pyopencl as cl

    source = gemm.MMA_HELPERS_FILE.read_text() + PEAK_SOURCE
    kernel = device.kernels.kernel_from_source(
        source, "mma_peak", {"MMA_TYPE": MMA_TYPE[dtype], "CHAINS": CHAINS, "THREADS": THREADS},
        origin="mma_peak")
    groups = GROUPS_PER_UNIT * device.compute_units
    out = cl.Buffer(device.context, cl.mem_flags.READ_WRITE, 4 * groups * THREADS)
    # The call holds the buffer: set_args alone would not keep it alive.
    call = partial(kernel, device.queue, (groups * THREADS,), (THREADS,), out,
                   np.int32(ITERATIONS))
    warps = groups * THREADS // 32
    flops = 2.0 * 16 * 8 * MMA_K[dtype] * CHAINS * ITERATIONS * warps
    return call, flops


def peak_tflops(device: Device, dtype: str) -> float:
    """The register-only loop's TFLOP/s in ``dtype`` ("float32": TF32) on ``device``."""
    call, flops = peak_call(device, dtype)
    seconds = time_contenders({"peak": (call, device.queue.finish)})["peak"].median
    return flops / seconds / 1e12


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dtype", choices=tuple(MMA_TYPE), nargs="+", default=list(MMA_TYPE))
    parser.add_argument("--size", type=int, default=4096, help="torch's square matmul")
    add_json_flag(parser)
    args = parser.parse_args()
    import torch

    device = manager.default("auto")
    if not gemm.tensor_cores(device.cl_device):
        raise SystemExit(f"mma_peak: {device.name} has no tensor cores mma.sync reaches")
    torch.backends.cuda.matmul.allow_tf32 = True
    report = Report("mma.sync peak", device.name, args.json,
                    peer=f"torch {torch.__version__} cuBLAS {args.size}^3")
    table = report.table("TFLOP/s (float32: TF32 on both sides)",
                         ["mma.sync loop", "cuBLAS matmul"],
                         ratios=[("mma.sync loop", "cuBLAS matmul")])
    for dtype in args.dtype:
        call, flops = peak_call(device, dtype)
        size = args.size
        left = torch.randn(size, size, device="cuda").to(getattr(torch, dtype))
        right = torch.randn(size, size, device="cuda").to(getattr(torch, dtype))
        times = time_contenders({
            "mma.sync loop": (call, device.queue.finish),
            "cuBLAS matmul": (partial(torch.matmul, left, right), torch.cuda.synchronize)})
        table.row(dtype, {"mma.sync loop": flops / times["mma.sync loop"].median / 1e12,
                          "cuBLAS matmul": 2.0 * size**3 / times["cuBLAS matmul"].median / 1e12})
    report.finish()


if __name__ == "__main__":
    main()
