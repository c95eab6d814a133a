"""Tile sweep for the tiled GPU matmul: every candidate shape on every problem, in one run.

For each problem (layout, M x K @ K x N, and the three passes of a 3x3
convolution) times each candidate ``TileConfig`` of matmul.cl's tiled kernel
and the peer (torch CUDA, TF32 off, cuDNN autotuned), prints GFLOP/s per
candidate, the winner and winner / peer, checks the winner against a float64
reference, and ends with the winners as rows for ``matmul_tiles.MEASURED``.
Timing is tools/bench/harness.py's, each contender in a whole turn of three
samples.

    NETCL_DEVICE=gpu python3 tools/bench/matmul_tune.py           # everything
    NETCL_DEVICE=gpu python3 tools/bench/matmul_tune.py --quick   # one config each
    NETCL_DEVICE=gpu python3 tools/bench/matmul_tune.py --match 512x512@  # some problems
    NETCL_DEVICE=gpu python3 tools/bench/matmul_tune.py --match 1024x1024@,conv
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

_HERE = Path(__file__).resolve().parent
_ROOT = _HERE.parents[1]
for _src in ("packages/netcl-device/src", "packages/netcl-tensor/src", str(_HERE)):
    if str(_ROOT / _src) not in sys.path:
        sys.path.append(str(_ROOT / _src))

from harness import Contender, Report, Table, add_json_flag, time_contenders  # noqa: E402
from matmul import transposed  # noqa: E402  (tools/bench/matmul.py)

from netcl.core.device import manager  # noqa: E402
from netcl.core.tensor import Tensor, from_numpy, ops  # noqa: E402
from netcl.core.tensor.ops.matmul import TileConfig, matmul_with  # noqa: E402

try:
    import torch
except ImportError:
    torch = None  # type: ignore[assignment]

T = TileConfig


def X(*args: int, k_slices: int = 1, pipelined: bool = False) -> TileConfig:
    """A swizzled tile: unpadded local rows, K-major tiles XOR-permuted."""
    return TileConfig(*args, swizzle=True, k_slices=k_slices, pipelined=pipelined)


LARGE = [T(128, 256, 8, 8, 16), T(128, 256, 8, 16, 8), T(128, 128, 16, 16, 8),
         T(128, 128, 16, 8, 8), T(128, 128, 8, 8, 16), T(128, 64, 16, 8, 8),
         T(128, 64, 16, 8, 4), T(64, 64, 16, 8, 8), T(64, 64, 16, 8, 4), T(64, 64, 16, 4, 4)]
# 1024^3 has 64 tiles of 128 x 128 for the H200's 132 SMs: K split in two
# doubles the work-groups.
SPLIT_LARGE = [T(128, 128, 16, 8, 8, 2), T(128, 64, 16, 8, 8, 2), T(64, 64, 16, 8, 4, 2),
               T(64, 64, 32, 8, 4, 2)]
# Swizzled: 16 deep, 128 x 256 fits 48 KiB; and the 1024^3 shapes, 32 deep.
SWIZZLED_LARGE = [X(256, 128, 16, 16, 8), X(128, 256, 16, 16, 8), X(128, 256, 16, 8, 16),
                  X(128, 128, 16, 16, 8), X(128, 256, 8, 16, 8)]
# Pipelined fragment reads: the swizzled shapes whose registers leave room
# for a second fragment (128 x 128 with 16 x 8 spills).
PIPELINED_LARGE = [X(256, 128, 16, 16, 8, pipelined=True), X(128, 256, 16, 16, 8, pipelined=True),
                   X(256, 128, 16, 8, 16, pipelined=True)]
SWIZZLED_1024 = [X(64, 64, 32, 8, 4), X(128, 64, 32, 8, 4), X(64, 64, 16, 8, 8),
                 X(128, 64, 16, 8, 4), X(64, 64, 32, 8, 4, 2), X(64, 64, 32, 8, 4, pipelined=True)]
# K sliced across two work-items per output: twice the work-items per tile
# (after the unsliced 32-deep tile they are measured against).
SLICED_1024 = [T(64, 64, 32, 8, 4), T(64, 64, 32, 8, 4, k_slices=2),
               X(64, 64, 32, 8, 4, k_slices=2), T(128, 64, 16, 8, 8, k_slices=2),
               T(64, 64, 16, 8, 8, k_slices=2), T(64, 64, 32, 8, 8, k_slices=2),
               T(64, 64, 32, 4, 4, k_slices=2), X(128, 64, 32, 8, 8, k_slices=2)]
SLICED_LARGE = [T(128, 64, 16, 8, 8, k_slices=2), X(128, 64, 32, 8, 8, k_slices=2),
                T(64, 64, 32, 8, 8, k_slices=2)]
SLICED_SMALL = [T(64, 64, 32, 8, 4, 4, k_slices=2), T(32, 32, 32, 4, 4, 4, k_slices=2)]
SWIZZLED_SMALL = [X(32, 32, 16, 4, 4), X(32, 32, 16, 4, 4, 4), X(32, 32, 32, 4, 4, 4),
                  X(64, 64, 16, 8, 8, 4), X(64, 64, 32, 8, 4, 4), X(64, 64, 16, 8, 8)]
SMALL = [T(64, 64, 16, 4, 4), T(32, 32, 16, 4, 4), T(64, 32, 16, 4, 4),
         T(32, 32, 16, 4, 4, 2), T(32, 32, 16, 4, 4, 4), T(32, 32, 16, 4, 4, 8),
         T(64, 32, 16, 4, 4, 2), T(64, 32, 16, 4, 4, 4), T(64, 64, 16, 4, 4, 4),
         T(64, 64, 16, 4, 4, 8), T(128, 64, 8, 8, 8, 4)]
# Problems up to this many outputs check every candidate's result, not just the winner's.
CHECK_ALL = 1 << 22
CONV = [T(64, 128, 8, 8, 8), T(64, 128, 16, 8, 8), T(64, 64, 16, 8, 8), T(64, 64, 16, 4, 4),
        T(128, 128, 8, 8, 8)]
# (layout, M, K, N, batch, candidates)
PROBLEMS: list[tuple[str, int, int, int, int, list[TileConfig]]] = [
    *((layout, 1024, 1024, 1024, 1, LARGE + SPLIT_LARGE + SWIZZLED_1024 + SLICED_1024)
      for layout in ("nn", "nt", "tn")),
    *((layout, s, s, s, 1, LARGE + SWIZZLED_LARGE + PIPELINED_LARGE + SLICED_LARGE)
      for s in (2048, 4096)
      for layout in ("nn", "nt", "tn")),
    *((layout, 512, 512, 512, 1, SMALL + LARGE[:2] + SWIZZLED_SMALL)
      for layout in ("nn", "nt", "tn")),
    *((layout, 128, 784, 256, 1, SMALL + SWIZZLED_SMALL + SLICED_SMALL)
      for layout in ("nn", "nt", "tn")),
    *((layout, 256, 1024, 1024, 1, SMALL + LARGE[:3] + SWIZZLED_SMALL + SLICED_SMALL)
      for layout in ("nn", "nt", "tn")),
    ("nn", 512, 512, 512, 8, LARGE + SWIZZLED_LARGE[:2]),
    # The 784-8192x4-10 MLP at batch 4096: first layer, last layer and its gradients.
    ("nt", 4096, 784, 8192, 1, LARGE[:4] + SWIZZLED_LARGE + PIPELINED_LARGE),
    ("nt", 4096, 8192, 10, 1, SMALL + SWIZZLED_SMALL),
    ("nn", 4096, 10, 8192, 1, LARGE[:4]),
    ("tn", 10, 4096, 8192, 1, SMALL),
    ("tn", 8192, 4096, 784, 1, LARGE + SWIZZLED_LARGE[:3]),
]
CONV_SHAPE = (32, 64, 56, 56, 64, 3, 1)  # N, C, H, W, O, kernel, padding


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="first candidate only")
    parser.add_argument("--match", default="",
                        help="only the problems whose name holds one of these comma-separated "
                        "strings (no conv unless one is 'conv')")
    add_json_flag(parser)
    args = parser.parse_args()
    matches = args.match.split(",")
    device = manager.default("auto")
    sync = device.queue.finish
    assert torch is not None and torch.cuda.is_available(), "the peer is torch CUDA"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    report = Report("matmul tile sweep", f"{device.name}, {device.compute_units} compute units",
                    args.json, peer=f"torch {torch.__version__} on {torch.cuda.get_device_name()}")
    table = report.table("GFLOP/s of torch and of the best candidate tile",
                         ["torch GF/s", "best tile", "best GF/s", "rel err", "every candidate"],
                         ratios=[("best GF/s", "torch GF/s")])
    rng = np.random.default_rng(0)
    winners: list[str] = []
    for layout, m, k, n, batch, candidates in PROBLEMS:
        name = f"{layout} {f'{batch} x ' if batch > 1 else ''}{m}x{k}@{k}x{n}"
        if not any(part in name for part in matches):
            continue
        candidates = candidates[:1] if args.quick else candidates
        a_host = rng.standard_normal((batch, m, k) if batch > 1 else (m, k), np.float32)
        b_host = rng.standard_normal((batch, k, n) if batch > 1 else (k, n), np.float32)
        a, b = _place(a_host, layout[0] == "t", device), _place(b_host, layout[1] == "t", device)
        ta, tb = torch.from_numpy(a_host).cuda(), torch.from_numpy(b_host).cuda()
        want = (ta.double() @ tb.double()).cpu().numpy()
        ta, tb = _torch_place(ta, layout[0] == "t"), _torch_place(tb, layout[1] == "t")
        sides = [(_bind(matmul_with, a, b, "tiled", tile), sync) for tile in candidates]
        flops = 2.0 * m * n * k * batch
        seconds = _seconds([(_bind(torch.matmul, ta, tb), torch.cuda.synchronize), *sides])
        best = _best(candidates, seconds[1:])
        checked = candidates if m * n * batch <= CHECK_ALL else [best]
        errors = [np.abs(matmul_with(a, b, "tiled", t).numpy() - want).max() for t in checked]
        _row(table, name, flops, candidates, seconds, float(max(errors) / np.abs(want).max()))
        winners.append(f'("{layout}", {m * batch}, {n}, {k}, T({_args(best)})),')

    if not any(part in "conv" for part in matches):
        print("\n".join(winners))
        report.finish()
        return
    n_img, c, h, w, o, kernel, pad = CONV_SHAPE
    x_host = rng.standard_normal((n_img, c, h, w), np.float32)
    w_host = rng.standard_normal((o, c, kernel, kernel), np.float32) / np.float32(c * 9) ** 0.5
    g_host = rng.standard_normal((n_img, o, h, w), np.float32)
    x, wt, g = (from_numpy(v, device) for v in (x_host, w_host, g_host))
    tx, tw, tg = (torch.from_numpy(v).cuda() for v in (x_host, w_host, g_host))
    tx.requires_grad_()
    tw.requires_grad_()

    def torch_all() -> None:
        y = torch.nn.functional.conv2d(tx, tw, padding=pad)
        y.backward(tg)  # type: ignore[no-untyped-call]

    flops = 2.0 * n_img * o * c * kernel * kernel * h * w
    torch_s = _seconds([(torch_all, torch.cuda.synchronize)])[0]
    report.note(f"conv 3x3 {c}->{o} {h}x{w} b{n_img}: torch fwd+bwd ms", torch_s * 1e3)
    xd, wd, gd = (torch.from_numpy(v).double() for v in (x_host, w_host, g_host))
    xd.requires_grad_()
    wd.requires_grad_()
    yd = torch.nn.functional.conv2d(xd, wd, padding=pad)
    yd.backward(gd)  # type: ignore[no-untyped-call]
    assert xd.grad is not None and wd.grad is not None
    passes: list[tuple[str, int, Callable[[TileConfig], Tensor], np.ndarray[Any, Any]]] = [
        ("conv1", o, lambda t: ops.conv2d(x, wt, 1, pad, tile=t), yd.detach().numpy()),
        ("conv3", c, lambda t: ops.conv2d_input_grad(g, wt, x.shape, 1, pad, tile=t),
         xd.grad.numpy()),
        ("conv2", o, lambda t: ops.conv2d_weight_grad(g, x, wt.shape, 1, pad, tile=t),
         wd.grad.numpy()),
    ]
    total = 0.0
    for mode, rows, run, want in passes:
        candidates = CONV[:1] if args.quick else CONV
        seconds = _seconds([(_bind(run, tile), sync) for tile in candidates])
        best = _best(candidates, seconds)
        total += min(seconds)
        got = run(best).numpy()
        _row(table, f"{mode} (pass)", flops, candidates, [torch_s / 3, *seconds],
             float(np.abs(got - want).max() / np.abs(want).max()))
        cols = {"conv1": h * w, "conv3": h * w, "conv2": c * kernel * kernel}[mode]
        depth = {"conv1": c * 9, "conv3": o * 9, "conv2": h * w}[mode]
        winners.append(f'("{mode}", {rows * n_img}, {cols}, {depth}, T({_args(best)})),')
    conv = report.table("conv fwd+bwd, ms", ["netcl best", "torch"],
                        ratios=[("netcl best", "torch")])
    conv.row(f"3x3 {c}->{o} {h}x{w} b{n_img}", {"netcl best": total * 1e3, "torch": torch_s * 1e3})
    print("winners (layout, M, N, K, tile):")
    print("\n".join(winners))
    report.finish()


def _bind(function: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    return lambda: function(*args)


def _place(host: np.ndarray[Any, Any], transpose: bool, device: Any) -> Tensor:
    """``host`` on the device; transposed: stored as its transpose and read as a view."""
    if not transpose:
        return from_numpy(host, device)
    stored = from_numpy(np.ascontiguousarray(np.swapaxes(host, -1, -2)), device)
    view: Tensor = transposed(stored)
    return view


def _torch_place(t: Any, transpose: bool) -> Any:
    return t.transpose(-1, -2).contiguous().transpose(-1, -2) if transpose else t


def _seconds(sides: list[Contender]) -> list[float]:
    """Median seconds per call of each side, each in a whole turn of three samples."""
    timings = time_contenders({str(i): side for i, side in enumerate(sides)},
                              rounds=3, warmup=1, interleave=False)
    return [timing.median for timing in timings.values()]


def _best(candidates: list[TileConfig], seconds: list[float]) -> TileConfig:
    return candidates[min(range(len(seconds)), key=lambda i: seconds[i])]


def _row(table: Table, name: str, flops: float, candidates: list[TileConfig],
         seconds: list[float], error: float) -> None:
    """One problem: the peer's rate (``seconds[0]``), the best candidate's, every one's."""
    peer, *mine = seconds
    best = min(range(len(mine)), key=lambda i: mine[i])
    every = " ".join(f"{t.name}:{flops / s / 1e9:.0f}" for t, s in zip(candidates, mine,
                                                                         strict=True))
    table.row(name, {"torch GF/s": flops / peer / 1e9, "best tile": candidates[best].name,
                     "best GF/s": flops / mine[best] / 1e9, "rel err": error,
                     "every candidate": every})


def _args(tile: TileConfig) -> str:
    fields = [tile.bm, tile.bn, tile.bk, tile.tm, tile.tn]
    fields += [tile.split_k] if tile.split_k > 1 else []
    keywords = (", swizzle=True" if tile.swizzle else "") + (
        f", k_slices={tile.k_slices}" if tile.k_slices > 1 else "") + (
        ", pipelined=True" if tile.pipelined else "")
    return ", ".join(map(str, fields)) + keywords


if __name__ == "__main__":
    main()
