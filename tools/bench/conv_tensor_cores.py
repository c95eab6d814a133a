"""A Conv2d layer's forward and backward (input and weight gradients) in bfloat16,
float16 and TF32: netcl against torch (cuDNN on a GPU) in the same dtype, in one run.

    NETCL_DEVICE=gpu python tools/bench/conv_tensor_cores.py          # the issue's row
    python tools/bench/conv_tensor_cores.py --batch 2 --size 14       # CPU: PoCL vs torch

The default is issue 32's row: 3x3, 64 -> 64 channels, 56 x 56, batch 32, padding 1.
Rows: the forward pass, each gradient, and forward + backward (the three in a row);
float32 rows run with TF32 allowed for convolutions on both sides (netcl's
backends.cudnn.allow_tf32, torch's). netcl takes its tensor-core kernel
(matmul_mma.cl reading the input in place) where the device has tensor cores, its
CUDA-core or CPU kernels elsewhere (the path is printed). Before timing, each dtype's
forward pass is compared with torch's (the largest difference over the largest
magnitude, printed). Timing is harness.py's: samples in rounds, medians.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE))
from harness import Report, add_json_flag, time_contenders  # noqa: E402

from netcl.core.device import Device, manager  # noqa: E402
from netcl.core.tensor import backends, from_numpy  # noqa: E402
from netcl.core.tensor.ops import gemm  # noqa: E402
from netcl.core.tensor.ops.conv import conv2d, conv2d_grads  # noqa: E402

DTYPES = ("bfloat16", "float16", "float32")


def netcl_calls(device: Device, x_host: Any, w_host: Any, g_host: Any
                ) -> dict[str, Callable[[], object]]:
    x, w, g = (from_numpy(a, device) for a in (x_host, w_host, g_host))

    def forward() -> object:
        return conv2d(x, w, padding=1)

    def input_grad() -> object:
        return conv2d_grads(g, x, w, padding=1, needs=(True, False, False))

    def weight_grad() -> object:
        return conv2d_grads(g, x, w, padding=1, needs=(False, True, False))

    def both() -> object:
        forward()
        return conv2d_grads(g, x, w, padding=1, needs=(True, True, False))

    return {"forward": forward, "input grad": input_grad, "weight grad": weight_grad,
            "forward + backward": both}


def torch_calls(torch: Any, where: str, x_host: Any, w_host: Any, g_host: Any, dtype: Any
                ) -> dict[str, Callable[[], object]]:
    x, w, g = (torch.from_numpy(a.astype(np.float32)).to(where, dtype)
               for a in (x_host, w_host, g_host))
    conv = torch.nn.functional.conv2d

    def input_grad() -> object:
        return torch.nn.grad.conv2d_input(x.shape, w, g, padding=1)

    def weight_grad() -> object:
        return torch.nn.grad.conv2d_weight(x, w.shape, g, padding=1)

    x_grad = x.clone().requires_grad_(True)
    w_grad = w.clone().requires_grad_(True)

    def both() -> object:
        out = conv(x_grad, w_grad, padding=1)
        out.backward(g)
        return out

    return {"forward": lambda: conv(x, w, padding=1), "input grad": input_grad,
            "weight grad": weight_grad, "forward + backward": both}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dtype", choices=DTYPES, nargs="+", default=list(DTYPES))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--size", type=int, default=56)
    parser.add_argument("--rounds", type=int, default=7)
    add_json_flag(parser)
    args = parser.parse_args()
    import ml_dtypes
    import torch

    device = manager.default("auto")
    where = "cuda" if device.type == "gpu" else "cpu"
    torch.backends.cudnn.allow_tf32 = True
    backends.cudnn.allow_tf32 = True
    n, c, s = args.batch, args.channels, args.size
    report = Report("Conv2d fwd+bwd", device.name, args.json,
                    peer=f"torch {torch.__version__} on {where}",
                    problem=f"3x3 {c} -> {c}, {s}^2, batch {n}, padding 1")
    flops = 2.0 * n * c * c * 9 * s * s  # one pass; forward + backward is three
    table = report.table("TFLOP/s (float32: TF32 allowed on both sides)",
                         ["netcl", "torch"], ratios=[("netcl", "torch")])
    rng = np.random.default_rng(0)
    for name in args.dtype:
        host_dtype = ml_dtypes.bfloat16 if name == "bfloat16" else np.dtype(name)
        x_host, g_host = (rng.standard_normal((n, c, s, s)).astype(host_dtype) for _ in "xg")
        w_host = (rng.standard_normal((c, c, 3, 3)) / np.sqrt(9 * c)).astype(host_dtype)
        ours = netcl_calls(device, x_host, w_host, g_host)
        theirs = torch_calls(torch, where, x_host, w_host, g_host, getattr(torch, name))
        path = ("tensor cores" if gemm.conv_on_tensor_cores(device, x_host.dtype)
                else "no tensor cores")
        got = np.asarray(ours["forward"]().numpy(), np.float64)  # type: ignore[attr-defined]
        want = theirs["forward"]().double().cpu().numpy()  # type: ignore[attr-defined]
        report.note(f"{name} path / forward difference over max |torch|",
                    f"{path} / {np.abs(got - want).max() / np.abs(want).max():.2e}")
        sync = torch.cuda.synchronize if where == "cuda" else (lambda: None)
        for case, call in ours.items():
            times = time_contenders({"netcl": (call, device.synchronize),
                                     "torch": (theirs[case], sync)}, rounds=args.rounds)
            work = flops * (3 if case == "forward + backward" else 1)
            table.row(f"{name} {case}", {key: work / t.median / 1e12
                                         for key, t in times.items()})
    report.finish()


if __name__ == "__main__":
    main()
