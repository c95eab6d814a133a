"""Matmul and conv throughput: netcl against numpy / PyTorch on the same machine, in one run.

For square sizes 256 to 4096 (4096 on a GPU only), two training-like skinny
products (128x784 @ 784x256, an MNIST batch through a first layer, and
256x1024 @ 1024x1024) and a batch of 8 512^3 products, in each layout a
Linear layer multiplies in (``nn`` A @ B, ``nt`` A @ B.T, ``tn`` A.T @ B, the
transposed operand read in place), prints netcl's GFLOP/s, each peer's and the
ratio netcl / peer (above 1.0: netcl is faster). Peers: on a CPU device numpy
and PyTorch CPU; on a GPU PyTorch CUDA with TF32 off (fp32 at full
precision, as netcl computes it), when torch sees a GPU; with ``--tf32`` both
sides may use TF32 tensor cores (netcl's set_float32_matmul_precision("high"),
torch's allow_tf32), and fp16 runs on tensor cores on both sides where the
device has them. ``--square`` keeps only the square shapes of those sizes.
``--conv`` adds a
3x3 Conv2d (64 -> 64 channels, 56x56, batch 32 on a GPU, 8 on a CPU),
forward + input grad + weight grad, against torch (cuDNN on a GPU).

    python tools/bench/matmul.py                          # default device (PoCL here)
    NETCL_DEVICE=gpu python tools/bench/matmul.py --conv  # the GPU, and the conv row
    python tools/bench/matmul.py --dtype float16 --layout nt   # fp16, x @ W.T
    NETCL_DEVICE=gpu python tools/bench/matmul.py --tf32 --square 2048 4096  # TF32 both sides
    python tools/bench/matmul_tune.py                     # tile sweep (GPU)

Timing is tools/bench/harness.py's: wall time around many calls followed by
one ``queue.finish()`` for netcl, ``torch.cuda.synchronize()`` for torch CUDA
(numpy and torch CPU return finished), the same method for every column, the
median of seven samples. The contenders take whole turns, not alternating
samples: on a CPU, OpenBLAS's, OpenMP's and PoCL's idle workers spin for a
while after a call and steal the next one's cores (alternating cut torch CPU
to a tenth of its speed at 256^3), so a pause of 0.2 s on a CPU lets them go
idle first. FLOPs are counted as 2 M N K.
Each shape's netcl result is also checked against numpy ("rel err": max
abs error over max abs value).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import harness
import numpy as np
from harness import Contender, Report, add_json_flag, no_sync, time_contenders

# Runnable from a checkout without installing: put the sources on the path.
_ROOT = Path(__file__).resolve().parents[2]
for _src in ("packages/netcl-device/src", "packages/netcl-tensor/src"):
    if str(_ROOT / _src) not in sys.path:
        sys.path.append(str(_ROOT / _src))

from netcl.core.device import manager  # noqa: E402
from netcl.core.tensor import Tensor, backends, from_numpy, ops  # noqa: E402

try:
    import torch
except ImportError:  # the bench still runs against numpy alone
    torch = None  # type: ignore[assignment]

# (batch, M, K, N); batch 1 is a plain 2-D product.
SHAPES = [(1, 256, 256, 256), (1, 512, 512, 512), (1, 1024, 1024, 1024),
          (1, 2048, 2048, 2048), (1, 4096, 4096, 4096), (1, 128, 784, 256),
          (1, 256, 1024, 1024), (8, 512, 512, 512)]
CPU_MAX_SIZE = 2048  # 4096^3 takes most of a second a call on the 2-core CPU


def gflops(sides: dict[str, Contender], flops: float, pause: float) -> dict[str, float]:
    """GFLOP/s of each side, timed in whole turns (the module's docstring says why)."""
    timings = time_contenders(sides, rounds=7, sample_s=0.05, warmup=1, interleave=False,
                              pause_s=pause)
    return {name: flops / timing.median / 1e9 for name, timing in timings.items()}


def transposed(t: Tensor) -> Tensor:
    """The last two dimensions swapped, as a view (what ``t.T`` returns)."""
    shape = (*t.shape[:-2], t.shape[-1], t.shape[-2])
    strides = (*t.strides[:-2], t.strides[-1], t.strides[-2])
    return Tensor(t.buffer, shape, t.dtype, t.device, strides, t.offset)


def operands(batch: int, m: int, k: int, n: int, layout: str, dtype: np.dtype[Any],
             rng: np.random.Generator) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Host A (m, k) and B (k, n), with a leading batch axis when batch > 1, each
    stored transposed where ``layout`` says "t" (to be read as a view)."""
    lead = (batch,) if batch > 1 else ()
    a = rng.standard_normal((*lead, *((k, m) if layout[0] == "t" else (m, k))), np.float32)
    b = rng.standard_normal((*lead, *((n, k) if layout[1] == "t" else (k, n))), np.float32)
    return a.astype(dtype), b.astype(dtype)


def used(host: np.ndarray[Any, Any], stored_transposed: bool) -> np.ndarray[Any, Any]:
    """The operand the product uses: ``host`` or its last two axes swapped."""
    return np.swapaxes(host, -1, -2) if stored_transposed else host


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dtype", choices=("float32", "float16", "bfloat16"),
                        default="float32")
    parser.add_argument("--layout", choices=("nn", "nt", "tn"), nargs="*",
                        default=["nn", "nt", "tn"],
                        help="nn: A @ B; nt: A @ B.T (nn.Linear); tn: A.T @ B (its weight grad)")
    parser.add_argument("--conv", action="store_true", help="add the Conv2d row")
    parser.add_argument("--tf32", action="store_true",
                        help="float32 on TF32 tensor cores, netcl and torch alike")
    parser.add_argument("--square", type=int, nargs="+", metavar="N",
                        help="only the square shapes N^3 (default: every shape)")
    harness.add_threads_flag(parser)
    add_json_flag(parser)
    args = parser.parse_args()
    threads = harness.set_threads(args.threads)
    if args.tf32:
        backends.set_float32_matmul_precision("high")
    shapes = [s for s in SHAPES if not args.square
              or (s[0] == 1 and s[1] == s[2] == s[3] and s[1] in args.square)]

    device = manager.default("auto")
    dtype = np.dtype(args.dtype)
    on_gpu = device.type == "gpu"
    peers: dict[str, Callable[[np.ndarray[Any, Any], np.ndarray[Any, Any], str], Contender]] = {}
    if on_gpu:
        if torch is not None and torch.cuda.is_available():
            # TF32 rounds the inputs to 10 mantissa bits: the same work only when
            # netcl is allowed it too.
            torch.backends.cuda.matmul.allow_tf32 = args.tf32
            torch.backends.cudnn.allow_tf32 = args.tf32
            torch.backends.cudnn.benchmark = True
            peers["torch-cuda"] = partial(_torch_peer, "cuda")
    else:
        peers["numpy"] = _numpy_peer
        if torch is not None:
            peers["torch-cpu"] = partial(_torch_peer, "cpu")

    about = {"dtype": f"{dtype}{' (TF32 allowed)' if args.tf32 else ''}",
             "compute units": device.compute_units, "threads": threads}
    if torch is not None and on_gpu and "torch-cuda" in peers:
        about["peer"] = f"torch {torch.__version__} on {torch.cuda.get_device_name()}"
    report = Report("matmul", f"{device.name} ({device.type})", args.json, **about)
    columns = ["rel err", *(f"{name} GF/s" for name in ["netcl", *peers])]
    table = report.table("GFLOP/s; layout [batch x] M x K @ K x N", columns,
                         ratios=[("netcl GF/s", f"{name} GF/s") for name in peers])

    rng = np.random.default_rng(0)
    pause = 0.0 if on_gpu else 0.2
    sync = device.queue.finish
    for layout in args.layout:
        for batch, m, k, n in shapes:
            if not on_gpu and max(m, k, n) > CPU_MAX_SIZE:
                continue
            a_host, b_host = operands(batch, m, k, n, layout, dtype, rng)
            a, b = from_numpy(a_host, device), from_numpy(b_host, device)
            a = transposed(a) if layout[0] == "t" else a
            b = transposed(b) if layout[1] == "t" else b

            def netcl_call(a: Tensor = a, b: Tensor = b) -> Any:
                return a @ b

            # Checked once per shape, so a fast wrong kernel cannot pass unnoticed.
            reference = (used(a_host, layout[0] == "t").astype(np.float32)
                         @ used(b_host, layout[1] == "t").astype(np.float32))
            error = np.abs(netcl_call().numpy() - reference).max() / np.abs(reference).max()
            sides = {"netcl": (netcl_call, sync)}
            sides |= {peer: make(a_host, b_host, layout) for peer, make in peers.items()}
            rates = gflops(sides, 2.0 * batch * m * n * k, pause)
            name = f"{layout}  {f'{batch} x ' if batch > 1 else ''}{m} x {k} @ {k} x {n}"
            table.row(name, {"rel err": float(error),
                             **{f"{side} GF/s": rate for side, rate in rates.items()}})
    if args.conv:
        table = report.table(
            "conv2d 3x3 padding 1, forward + input grad + weight grad, GFLOP/s",
            ["rel err", "netcl GF/s", "torch GF/s"], ratios=[("netcl GF/s", "torch GF/s")])
        for shape in CONV_SHAPES["gpu" if on_gpu else "cpu"]:
            _conv_row(table, device, on_gpu, pause, rng, *shape)
    report.finish()


# Conv2d rows (batch, in channels, out channels, image size), 3x3 with padding 1; the
# CPU's second is issue 30's (the digits CNN's second layer, padded).
CONV_SHAPES = {"gpu": [(32, 64, 64, 56)], "cpu": [(8, 64, 64, 56), (64, 32, 64, 28)]}


def _conv_row(table: Any, device: Any, on_gpu: bool, pause: float, rng: np.random.Generator,
              batch: int, c_in: int, c_out: int, size: int) -> None:
    """Conv2d 3x3, padding 1: forward, input grad and weight grad, as a training step asks
    for them (``conv2d_grads``, which shares work between the two on a CPU)."""
    x_host = rng.standard_normal((batch, c_in, size, size), np.float32)
    w_host = rng.standard_normal((c_out, c_in, 3, 3), np.float32) / np.float32(24.0)
    g_host = rng.standard_normal((batch, c_out, size, size), np.float32)
    x, w, g = (from_numpy(v, device) for v in (x_host, w_host, g_host))

    def netcl_call() -> Any:
        ops.conv2d(x, w, 1, 1)
        return ops.conv2d_grads(g, x, w, 1, 1)[1]

    sides: dict[str, Contender] = {"netcl": (netcl_call, device.queue.finish)}
    error = float("nan")
    if torch is not None:
        where = "cuda" if on_gpu else "cpu"
        tx, tw, tg = (torch.from_numpy(v).to(where) for v in (x_host, w_host, g_host))
        tx.requires_grad_()
        tw.requires_grad_()

        def torch_call() -> None:
            tw.grad = tx.grad = None
            y = torch.nn.functional.conv2d(tx, tw, padding=1)
            y.backward(tg)  # type: ignore[no-untyped-call]

        torch_call()
        assert tw.grad is not None
        want = tw.grad.double().cpu().numpy()
        error = float(np.abs(netcl_call().numpy() - want).max() / np.abs(want).max())
        sides["torch"] = (torch_call, torch.cuda.synchronize if on_gpu else no_sync)
    rates = gflops(sides, 3 * 2.0 * batch * c_in * c_out * 9 * size * size, pause)
    table.row(f"{c_in}->{c_out} {size}x{size} b{batch}",
              {"rel err": error, **{f"{side} GF/s": rate for side, rate in rates.items()}})


def torch_tensor(host: np.ndarray[Any, Any]) -> Any:
    """``host`` as a CPU torch tensor; torch has no numpy bfloat16, so bf16 goes
    over as float32 (which holds it exactly) and is cast back."""
    assert torch is not None
    if host.dtype.name == "bfloat16":
        return torch.from_numpy(host.astype(np.float32)).to(torch.bfloat16)
    return torch.from_numpy(host)


def _numpy_peer(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any], layout: str) -> Contender:
    left, right = used(a, layout[0] == "t"), used(b, layout[1] == "t")
    return (lambda: left @ right), no_sync


def _torch_peer(where: str, a: np.ndarray[Any, Any], b: np.ndarray[Any, Any],
                layout: str) -> Contender:
    assert torch is not None
    # torch has no numpy bfloat16: bf16 goes over as float32, which holds it exactly.
    ta, tb = (torch_tensor(x).to(where) for x in (a, b))
    left = ta.transpose(-1, -2) if layout[0] == "t" else ta
    right = tb.transpose(-1, -2) if layout[1] == "t" else tb

    return (lambda: left @ right), torch.cuda.synchronize if where == "cuda" else no_sync


if __name__ == "__main__":
    main()
