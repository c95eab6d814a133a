"""Which tiles attention_tiled.cl's three kernels run fastest at, against torch's fused SDPA.

On issue 29's shape (causal, batch 8, 12 heads, L 1024, head dim 64, float32; TF32 off),
each kernel's candidate tiles are timed in turns with torch's fused SDPA (flash or
efficient attention) in the same run: the forward's tiles by forward-only time against
torch's forward, then the dQ pass's and the dK/dV pass's tiles by forward+backward time
(the forward at its best tile) against torch's forward+backward. The last table is the
best of each, causal and not, with the ratio netcl / torch fused (below 1.0: faster).
The winners go into attention.py's TILES.

    NETCL_DEVICE=gpu python tools/bench/attention_sweep.py
    python tools/bench/attention_sweep.py --shape 1 2 64 16   # a dry run on the CPU
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import ml_dtypes
import numpy as np
import pyopencl as cl
from harness import Contender, Report, add_json_flag, no_sync, time_contenders

_ROOT = Path(__file__).resolve().parents[2]
for _src in ("packages/netcl-device/src", "packages/netcl-tensor/src",
             "packages/netcl-autograd/src"):
    if str(_ROOT / _src) not in sys.path:
        sys.path.append(str(_ROOT / _src))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402

import netcl.autograd as ag  # noqa: E402
from netcl.core.device import Device, KernelBuildError, manager  # noqa: E402
from netcl.core.tensor import from_numpy, ops  # noqa: E402
from netcl.core.tensor.ops import attention  # noqa: E402
from netcl.core.tensor.ops.attention import AttentionTile  # noqa: E402

SHAPE = [8, 12, 1024, 64]
# (bm, bn, ry, rx, vec): the first pass's winners (every-ry-th rows), then tiles whose
# work-items read four consecutive rows at a time (the first pass, history/
# 2026-12-04-attention-h200-tiled.md, timed 22 tiles without vec).
CANDIDATES: dict[str, list[AttentionTile]] = {
    "sdpa_forward": [AttentionTile(*t) for t in (
        (32, 64, 8, 16, False), (32, 64, 8, 16, True), (64, 32, 16, 8, True),
        (64, 32, 8, 16, True), (64, 32, 8, 8, True), (32, 64, 4, 16, True),
        (32, 32, 8, 8, True))],
    "sdpa_backward_q": [AttentionTile(*t) for t in (
        (32, 32, 8, 16, False), (32, 32, 8, 16, True), (64, 16, 16, 8, True),
        (64, 16, 8, 16, True), (32, 32, 4, 16, True), (32, 32, 8, 8, True))],
    "sdpa_backward_kv": [AttentionTile(*t) for t in (
        (32, 32, 8, 16, False), (32, 32, 8, 16, True), (32, 32, 4, 16, True),
        (32, 32, 8, 8, True), (64, 8, 8, 8, True), (32, 16, 8, 8, True))],
}


def _name(tile: AttentionTile) -> str:
    return f"{tile.bm}x{tile.bn} {tile.ry}x{tile.rx}{' vec' if tile.vec else ''}"


# netcl's and torch's dtype of each name a bench takes.
DTYPES = {"fp32": (np.dtype(np.float32), torch.float32),
          "bf16": (np.dtype(ml_dtypes.bfloat16), torch.bfloat16),
          "fp16": (np.dtype(np.float16), torch.float16)}


class Problem:
    """One attention problem on both sides: netcl's tensors and torch's CUDA tensors, of
    ``dtype`` (a DTYPES name), the same values on both. ``tiles`` names the attention.py
    table ``ours`` sets (TILES, or MMA_TILES for the tensor-core kernels)."""

    def __init__(self, device: Device, causal: bool, dtype: str = "fp32",
                 tiles: str = "TILES") -> None:
        rng = np.random.default_rng(0)
        ours, theirs = DTYPES[dtype]
        arrays = [rng.standard_normal(SHAPE).astype(ours) for _ in range(4)]
        self.device, self.causal, self.tiles = device, causal, tiles
        self.q, self.k, self.v = (from_numpy(a, device).requires_grad_() for a in arrays[:3])
        self.grad = from_numpy(arrays[3], device)
        self.on = "cuda" if torch.cuda.is_available() else "cpu"
        self.tq, self.tk, self.tv = (
            torch.tensor(a.astype(np.float32), device=self.on).to(theirs).requires_grad_()
            for a in arrays[:3])
        self.tgrad = torch.tensor(arrays[3].astype(np.float32), device=self.on).to(theirs)

    def ours(self, tiles: Mapping[str, object], backward: bool) -> Contender:
        def call() -> None:
            setattr(attention, self.tiles, tiles)
            if not backward:
                ops.scaled_dot_product_attention(self.q, self.k, self.v, is_causal=self.causal)
                return
            with ag.Tape() as tape:
                out = ops.scaled_dot_product_attention(self.q, self.k, self.v,
                                                       is_causal=self.causal)
            tape.backward(out, self.grad)
        return call, self.device.synchronize

    def torch_fused(self, backward: bool) -> Contender:
        def call() -> None:
            with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]):
                out = F.scaled_dot_product_attention(self.tq, self.tk, self.tv,
                                                     is_causal=self.causal)
            if backward:
                out.backward(self.tgrad)
        return call, torch.cuda.synchronize if self.on == "cuda" else no_sync


def error(device: Device, tiles: dict[str, AttentionTile], shape: tuple[int, ...],
          causal: bool) -> float:
    """The largest |netcl - float64| of the output and the three gradients at ``tiles``,
    over that tensor's largest |float64| entry."""
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal(shape) for _ in range(4)]
    attention.TILES = tiles
    q, k, v = (from_numpy(a.astype(np.float32), device).requires_grad_() for a in arrays[:3])
    with ag.Tape() as tape:
        out = ops.scaled_dot_product_attention(q, k, v, is_causal=causal)
    tape.backward(out, from_numpy(arrays[3].astype(np.float32), device))
    ours = [out.numpy(), q.grad.numpy(), k.grad.numpy(), v.grad.numpy()]
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in arrays[:3])
    ref = F.scaled_dot_product_attention(tq, tk, tv, is_causal=causal)
    ref.backward(torch.tensor(arrays[3]))
    refs = [t.detach().numpy() for t in (ref, tq.grad, tk.grad, tv.grad)]
    pairs = zip(ours, refs, strict=True)
    return max(float(np.abs(a - r).max() / np.abs(r).max()) for a, r in pairs)


def time_tiles(report: Report, problem: Problem, kernel: str, backward: bool,
               settings: Mapping[str, Mapping[str, object]], rounds: int = 5) -> str:
    """Times ``problem`` at each of ``settings`` (a name, then the tile table ``ours`` sets)
    in turns with torch fused, prints the table, and returns the fastest's name."""
    contenders: dict[str, Contender] = {"torch fused": problem.torch_fused(backward)}
    for name, tiles in settings.items():
        call, sync = problem.ours(tiles, backward)
        try:  # builds it: a tile the compiler refuses is reported, not fatal
            call()
            sync()
        except (cl.Error, KernelBuildError) as error:  # KernelBuildError is no cl.Error
            report.note(f"{kernel} {name}", f"failed: {str(error)[:300]}")
            continue
        contenders[name] = (call, sync)
    times = time_contenders(contenders, rounds=rounds, sample_s=0.12)
    torch_ms = times["torch fused"].median * 1e3
    what = "forward+backward" if backward else "forward"
    table = report.table(f"{kernel} tiles, causal {'x'.join(map(str, SHAPE))}, ms per {what}",
                         ["netcl", "torch fused"], ratios=[("netcl", "torch fused")])
    ours = [name for name in contenders if name != "torch fused"]
    for name in ours:
        table.row(name, {"netcl": times[name].median * 1e3, "torch fused": torch_ms})
    return min(ours, key=lambda n: times[n].median)


def sweep(report: Report, problem: Problem, best: dict[str, AttentionTile], kernel: str,
          backward: bool) -> None:
    """Times ``kernel``'s candidates (the others at ``best``) and keeps the fastest."""
    local = problem.device.cl_device.local_mem_size
    dim = SHAPE[3]
    tiles: dict[str, AttentionTile] = {}
    for tile in CANDIDATES[kernel]:
        if not tile.fits(dim, dim) or tile.local_bytes(kernel, dim, dim) > local:
            report.note(f"{kernel} {_name(tile)}", "skipped: does not fit")
            continue
        tiles[_name(tile)] = tile
    settings = {name: {**best, kernel: tile} for name, tile in tiles.items()}
    best[kernel] = tiles[time_tiles(report, problem, kernel, backward, settings)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shape", type=int, nargs=4, default=SHAPE,
                        metavar=("BATCH", "HEADS", "L", "E"))
    add_json_flag(parser)
    args = parser.parse_args()
    SHAPE[:] = args.shape
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = manager.default("auto")
    report = Report("sdpa tile sweep, fp32", device=device.name, json_line=args.json)
    attention.KERNELS = "tiles"
    best = dict(attention.TILES)
    causal = Problem(device, True)
    sweep(report, causal, best, "sdpa_forward", backward=False)
    sweep(report, causal, best, "sdpa_backward_q", backward=True)
    sweep(report, causal, best, "sdpa_backward_kv", backward=True)
    report.note("best", ", ".join(f"{k}: {v}" for k, v in best.items()))
    for shape, is_causal in (((1, 2, 1000, SHAPE[3]), True), ((2, 1, 333, SHAPE[3]), False)):
        report.note(f"max error against float64, {'causal' if is_causal else 'full'} {shape}",
                    f"{error(device, best, shape, is_causal):.2e} of the largest entry")
    table = report.table("best tiles, ms per forward+backward", ["netcl", "torch fused"],
                         ratios=[("netcl", "torch fused")])
    for problem in (causal, Problem(device, False)):
        runs: dict[str, Callable[[], Contender]] = {
            "netcl": lambda p=problem: p.ours(best, True),
            "torch fused": lambda p=problem: p.torch_fused(True)}
        times = time_contenders({k: make() for k, make in runs.items()}, rounds=7,
                                sample_s=0.3)
        name = f"{'causal' if problem.causal else 'full'} {'x'.join(map(str, SHAPE))}"
        table.row(name, {k: t.median * 1e3 for k, t in times.items()})
    report.finish()


if __name__ == "__main__":
    main()
