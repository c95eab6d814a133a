"""scaled_dot_product_attention, forward + backward, netcl's fused kernels against torch's.

Each row times one forward and one backward (the gradients of q, k and v) of
attention on (batch, heads, L, E) float32, netcl's fused kernels against
torch's SDPA on the same device in the same run: on a GPU torch's fused
(efficient-attention) path and its unfused math path; on a CPU torch's CPU SDPA.
The ratio netcl / torch is of times (below 1.0: netcl is faster).

    python tools/bench/attention.py                        # default device, small shapes
    NETCL_DEVICE=gpu python tools/bench/attention.py --issue   # the issue's shape: 8x12x1024x64
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
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
from netcl.core.device import Device, manager  # noqa: E402
from netcl.core.tensor import from_numpy, ops  # noqa: E402


def contenders(shape: tuple[int, ...], causal: bool, device: Device,
               on_gpu: bool) -> dict[str, Contender]:
    """One forward+backward of each side on random (batch, heads, L, E) inputs."""
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(shape).astype(np.float32) for _ in range(4)]
    q, k, v = (from_numpy(a, device).requires_grad_() for a in arrays[:3])
    grad = from_numpy(arrays[3], device)
    torch_device = "cuda" if on_gpu else "cpu"
    tq, tk, tv = (torch.tensor(a, device=torch_device, requires_grad=True) for a in arrays[:3])
    tgrad = torch.tensor(arrays[3], device=torch_device)

    def ours() -> None:
        with ag.Tape() as tape:
            out = ops.scaled_dot_product_attention(q, k, v, is_causal=causal)
        tape.backward(out, grad)

    def theirs(backends: list[SDPBackend] | None) -> Callable[[], None]:
        """torch's SDPA restricted to ``backends`` (None: torch's own choice)."""
        def call() -> None:
            if backends is None:
                out = F.scaled_dot_product_attention(tq, tk, tv, is_causal=causal)
            else:
                with sdpa_kernel(backends):
                    out = F.scaled_dot_product_attention(tq, tk, tv, is_causal=causal)
            out.backward(tgrad)
        return call

    if not on_gpu:
        return {"netcl": (ours, device.synchronize),
                "torch": (theirs(None), no_sync)}
    fused = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]
    return {"netcl": (ours, device.synchronize),
            "torch fused": (theirs(fused), torch.cuda.synchronize),
            "torch math": (theirs([SDPBackend.MATH]), torch.cuda.synchronize)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--issue", action="store_true",
                        help="issue 29's shape only: batch 8, 12 heads, L 1024, head dim 64")
    add_json_flag(parser)
    args = parser.parse_args()
    device = manager.default("auto")
    on_gpu = device.type == "gpu" and torch.cuda.is_available()
    shapes = [(1, 2, 128, 32)]
    if args.issue:
        shapes = [(8, 12, 1024, 64)]
    elif on_gpu:
        shapes = [(8, 12, 1024, 64), (4, 8, 2048, 64), (8, 12, 512, 64)]
    report = Report("sdpa forward+backward, fp32", device=device.name, json_line=args.json)
    peers = ["torch fused", "torch math"] if on_gpu else ["torch"]
    table = report.table("ms per forward+backward", ["netcl", *peers],
                         ratios=[("netcl", p) for p in peers])
    for causal in (True, False):
        for shape in shapes:
            times = time_contenders(contenders(shape, causal, device, on_gpu), rounds=5,
                                    sample_s=0.2)
            name = f"{'causal' if causal else 'full'} {'x'.join(map(str, shape))}"
            table.row(name, {k: t.median * 1e3 for k, t in times.items()})
    report.finish()


if __name__ == "__main__":
    main()
