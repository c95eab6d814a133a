"""Matmul throughput: netcl against numpy / PyTorch on the same machine, in one run.

For square sizes 256 to 2048 and a training-like 128x784 @ 784x256 (an MNIST
batch through a first layer), prints netcl's GFLOP/s, each peer's and the
ratio netcl / peer (above 1.0: netcl is faster). Peers: on a CPU device numpy
and PyTorch CPU; on a GPU PyTorch CUDA with TF32 off (fp32 at full
precision, as netcl computes it), when torch sees a GPU.

    python tools/bench/matmul.py                          # default device (PoCL here)
    NETCL_DEVICE=gpu python tools/bench/matmul.py         # the GPU
    python tools/bench/matmul.py --dtype float16 --layout nt   # fp16, x @ W.T
    python tools/bench/matmul.py --tiles                  # every tiled-kernel shape

Timing is wall time around many calls followed by one ``queue.finish()``
for netcl, ``torch.cuda.synchronize()`` for torch CUDA (numpy and torch CPU
return finished): the same method for every column, the median of seven
repeats. FLOPs are counted as 2 M N K.
Each shape's netcl result is also checked against numpy ("rel err": max
abs error over max abs value).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

# Runnable from a checkout without installing: put the sources on the path.
_ROOT = Path(__file__).resolve().parents[2]
for _src in ("packages/netcl-device/src", "packages/netcl-tensor/src"):
    if str(_ROOT / _src) not in sys.path:
        sys.path.append(str(_ROOT / _src))

from netcl.core.device import manager  # noqa: E402
from netcl.core.tensor import Tensor, from_numpy  # noqa: E402
from netcl.core.tensor.ops.matmul import TileConfig, matmul_with  # noqa: E402

try:
    import torch
except ImportError:  # the bench still runs against numpy alone
    torch = None  # type: ignore[assignment]

SHAPES = [(256, 256, 256), (512, 512, 512), (1024, 1024, 1024), (2048, 2048, 2048),
          (128, 784, 256)]
# Shapes of the tiled kernel that --tiles times (bm, bn, bk, tm, tn).
SWEEP = [TileConfig(*t) for t in (
    (128, 128, 8, 8, 8), (128, 128, 16, 8, 8), (128, 64, 8, 8, 4), (64, 64, 8, 4, 4),
    (64, 64, 16, 4, 4), (64, 64, 8, 8, 8), (32, 32, 8, 4, 4),
)]


Timed = tuple[Callable[[], Any], Callable[[], None]]  # (one call, wait for it)


def time_calls(sides: list[Timed], pause: float, repeats: int = 7,
               min_seconds: float = 0.05) -> list[float]:
    """Median seconds per call of each side, one side after the other.

    Each side warms up, then runs ``repeats`` times enough calls to last
    ``min_seconds``. The sides take whole turns rather than alternating
    batches: on a CPU, OpenBLAS's, OpenMP's and PoCL's idle workers spin for
    a while after a call and steal the next batch's cores (alternating cut
    torch CPU to a tenth of its speed at 256^3). ``pause`` seconds between
    sides let those workers go idle.
    """
    results = []
    for call, sync in sides:
        time.sleep(pause)
        call()
        sync()
        start = time.perf_counter()
        call()
        sync()
        once = max(time.perf_counter() - start, 1e-6)
        count = max(1, min(1000, int(min_seconds / once)))
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(count):
                call()
            sync()
            samples.append((time.perf_counter() - start) / count)
        results.append(statistics.median(samples))
    return results


def transposed(t: Tensor) -> Tensor:
    """The last two dimensions swapped, as a view (what ``t.T`` returns)."""
    shape = (*t.shape[:-2], t.shape[-1], t.shape[-2])
    strides = (*t.strides[:-2], t.strides[-1], t.strides[-2])
    return Tensor(t.buffer, shape, t.dtype, t.device, strides, t.offset)


def operands(m: int, k: int, n: int, layout: str, dtype: np.dtype[Any],
             rng: np.random.Generator) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Host A (m, k) and B (k, n); with layout "nt", B is stored (n, k) and used as B.T."""
    a = rng.standard_normal((m, k), dtype=np.float32).astype(dtype)
    b_shape = (n, k) if layout == "nt" else (k, n)
    b = rng.standard_normal(b_shape, dtype=np.float32).astype(dtype)
    return a, b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dtype", choices=("float32", "float16"), default="float32")
    parser.add_argument("--layout", choices=("nn", "nt"), default="nn",
                        help="nn: A @ B; nt: A @ B.T with B stored transposed (nn.Linear)")
    parser.add_argument("--tiles", action="store_true",
                        help="also time every tiled-kernel shape (GPU tuning)")
    args = parser.parse_args()

    device = manager.default("auto")
    dtype = np.dtype(args.dtype)
    on_gpu = device.type == "gpu"
    peers: dict[str, Callable[[np.ndarray[Any, Any], np.ndarray[Any, Any]], Timed]] = {}
    if on_gpu:
        if torch is not None and torch.cuda.is_available():
            # TF32 would round the inputs to 10 mantissa bits: not the same work.
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
            peers["torch-cuda"] = _torch_peer("cuda", args.layout)
    else:
        peers["numpy"] = _numpy_peer(args.layout)
        if torch is not None:
            peers["torch-cpu"] = _torch_peer("cpu", args.layout)

    print(f"device: {device.name} ({device.type}, {device.compute_units} compute units)"
          f"  dtype: {dtype}  layout: {args.layout}")
    if torch is not None and on_gpu and "torch-cuda" in peers:
        print(f"peer: torch {torch.__version__} on {torch.cuda.get_device_name()}")
    header = f"{'M x K @ K x N':>26} {'rel err':>8} {'netcl GF/s':>11}"
    for name in peers:
        header += f" {name + ' GF/s':>16} {'ratio':>6}"
    if args.tiles:
        header += "".join(f" {_tile_name(t):>14}" for t in SWEEP)
    print(header)

    rng = np.random.default_rng(0)
    for m, k, n in SHAPES:
        a_host, b_host = operands(m, k, n, args.layout, dtype, rng)
        a = from_numpy(a_host, device)
        b = from_numpy(b_host, device)
        if args.layout == "nt":
            b = transposed(b)
        flops = 2.0 * m * n * k
        sync = device.queue.finish

        def netcl_call(a: Tensor = a, b: Tensor = b, tile: TileConfig | None = None) -> Any:
            # A tile forces the tiled (GPU) kernel, so --tiles works on any device.
            return matmul_with(a, b, kernel=None if tile is None else "tiled", tile=tile)

        # Checked once per shape, so a fast wrong kernel cannot pass unnoticed.
        right = b_host.T if args.layout == "nt" else b_host
        reference = a_host.astype(np.float32) @ right.astype(np.float32)
        error = np.abs(netcl_call().numpy() - reference).max() / np.abs(reference).max()
        sides: list[Timed] = [(netcl_call, sync)]
        sides += [make(a_host, b_host) for make in peers.values()]
        if args.tiles:
            sides += [(partial(netcl_call, a, b, tile), sync) for tile in SWEEP]
        pause = 0.0 if on_gpu else 0.2
        gflops = [flops / seconds / 1e9 for seconds in time_calls(sides, pause)]
        netcl_gf = gflops[0]
        row = f"{f'{m} x {k} @ {k} x {n}':>26} {error:>8.1e} {netcl_gf:>11.1f}"
        for peer_gf in gflops[1:1 + len(peers)]:
            row += f" {peer_gf:>16.1f} {netcl_gf / peer_gf:>6.2f}"
        for tile_gf in gflops[1 + len(peers):]:
            row += f" {tile_gf:>14.1f}"
        print(row, flush=True)


def _tile_name(tile: TileConfig) -> str:
    return f"{tile.bm}x{tile.bn}x{tile.bk}/{tile.tm}x{tile.tn}"


def _numpy_peer(layout: str) -> Callable[[np.ndarray[Any, Any], np.ndarray[Any, Any]], Timed]:
    def make(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> Timed:
        right = b.T if layout == "nt" else b
        return (lambda: a @ right), (lambda: None)
    return make


def _torch_peer(where: str, layout: str) -> Callable[
        [np.ndarray[Any, Any], np.ndarray[Any, Any]], Timed]:
    assert torch is not None

    def make(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> Timed:
        ta = torch.from_numpy(a).to(where)
        tb = torch.from_numpy(b).to(where)
        right = tb.T if layout == "nt" else tb
        def sync() -> None:
            if where == "cuda":
                torch.cuda.synchronize()

        return (lambda: ta @ right), sync
    return make


if __name__ == "__main__":
    main()
