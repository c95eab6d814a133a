"""Optimizer step time: netcl (fused and per-parameter) against torch.optim, in one run.

For Adam, AdamW, SGD with momentum, RMSProp, NAdam, RAdam, Adamax, Adagrad,
Lion and 8-bit Adam, on (a) one big tensor and (b) 200 tensors of the same
total size, times one optimizer step of: netcl fused (one launch per group),
netcl per-parameter (one launch per tensor), torch fused, torch foreach and
torch for-loop (those torch has). Each row prints its ratio to torch's fastest
kind it has (fused, else foreach; below 1.0: faster than torch) and the
effective bandwidth at the bytes a parameter's step reads and writes. torch has
no Lion: its peer is a foreach transcription of the paper's update
(``TorchLion`` below). Nor 8-bit state: Adam8bit's peer is torch's Adam, and its
row also times netcl's float32-state Adam. Muon and Adafactor keep no flat layout
(netcl's per-parameter row against torch's one form; Adafactor's torch foreach too);
netcl's Muon orthogonalises matrices of one shape as one batch, torch's one by one.

    python tools/bench/optim_step.py                 # CPU: PoCL against torch CPU
    NETCL_DEVICE=gpu python tools/bench/optim_step.py --params 100000000   # GPU

Timing is tools/bench/harness.py's: wall time around many steps, ended by
``queue.finish()`` for netcl and ``torch.cuda.synchronize()`` for torch CUDA
(the same method on both sides, so the ratio means what it says), the median
of samples taken in turns, so load from elsewhere falls on every contender.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import pyopencl as cl
import torch
from harness import Contender, Report, add_json_flag, no_sync, time_contenders

from netcl.core.device import manager
from netcl.core.tensor import Parameter, Tensor, empty, float32, from_numpy
from netcl.optim import (
    SGD,
    Adafactor,
    Adagrad,
    Adam,
    Adam8bit,
    Adamax,
    AdamW,
    Lion,
    Muon,
    NAdam,
    RAdam,
    RMSProp,
)
from netcl.optim.functional import kernels


class TorchLion(torch.optim.Optimizer):
    """Lion in torch for the bench (torch has none): the paper's Algorithm 2 with torch's
    foreach ops (one launch per op over every tensor), or per tensor with ``foreach=False``."""

    def __init__(self, params: Any, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.99),
                 weight_decay: float = 0.0, *, foreach: bool = True,
                 fused: bool | None = None) -> None:
        if fused:
            raise TypeError("TorchLion has no fused form")
        super().__init__(params, {"lr": lr, "betas": betas, "weight_decay": weight_decay})
        self.foreach = foreach

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            grads = [p.grad for p in params]
            exp_avgs = [self.state[p].setdefault("exp_avg", torch.zeros_like(p)) for p in params]
            beta1, beta2 = group["betas"]
            lr, decay = group["lr"], 1 - group["lr"] * group["weight_decay"]
            if self.foreach:
                torch._foreach_mul_(params, decay)
                direction = torch._foreach_lerp(exp_avgs, grads, 1 - beta1)
                torch._foreach_sign_(direction)
                torch._foreach_add_(params, direction, alpha=-lr)
                torch._foreach_lerp_(exp_avgs, grads, 1 - beta2)
                continue
            for p, g, m in zip(params, grads, exp_avgs, strict=True):
                p.mul_(decay).add_(m.lerp(g, 1 - beta1).sign_(), alpha=-lr)
                m.lerp_(g, 1 - beta2)


ALGORITHMS: dict[str, tuple[Any, Any, dict[str, Any], dict[str, Any]]] = {
    # name: (netcl class, torch class, netcl kwargs, torch kwargs)
    "adam": (Adam, torch.optim.Adam, {"lr": 1e-3}, {"lr": 1e-3}),
    # torch has no 8-bit state (bitsandbytes is not installed here): its peer is torch's
    # float32 Adam, and the row also times netcl's float32 Adam (the bar).
    "adam8bit": (Adam8bit, torch.optim.Adam, {"lr": 1e-3}, {"lr": 1e-3}),
    "adamw": (AdamW, torch.optim.AdamW, {"lr": 1e-3}, {"lr": 1e-3}),
    "sgd-momentum": (
        SGD, torch.optim.SGD, {"lr": 1e-2, "momentum": 0.9}, {"lr": 1e-2, "momentum": 0.9},
    ),
    "rmsprop": (RMSProp, torch.optim.RMSprop, {"lr": 1e-2}, {"lr": 1e-2}),
    "nadam": (NAdam, torch.optim.NAdam, {}, {}),
    "radam": (RAdam, torch.optim.RAdam, {}, {}),
    "adamax": (Adamax, torch.optim.Adamax, {}, {}),
    "adagrad": (Adagrad, torch.optim.Adagrad, {}, {}),
    "lion": (Lion, TorchLion, {}, {}),
    "muon": (Muon, torch.optim.Muon, {}, {}),
    "adafactor": (Adafactor, torch.optim.Adafactor, {}, {}),
}
# No flat layout in netcl, no foreach Muon in torch: their tensors are matrices of 1000
# columns, and netcl has only its per-parameter row.
PER_MATRIX = {"muon", "adafactor"}
# Bytes one parameter's fp32 step reads and writes: p and g read, state read and written,
# p written (Adam: p, g, m, v in; p, m, v out). RMSProp and momentum vary with options.
# 8-bit Adam: p, g and two one-byte codes in, p and the codes out (the block scales and
# table add 12 bytes per 256 parameters, left out).
BYTES_PER_PARAM = {"adam": 28, "adamw": 28, "nadam": 28, "radam": 28, "adamax": 28,
                   "adagrad": 20, "lion": 20, "adam8bit": 16}
# Rows also timed against another netcl optimizer, in the same samples.
NETCL_PEERS = {"adam8bit": ("netcl Adam (fp32 state)", Adam)}


Shape = tuple[int, ...]


def shapes_of(sizes: list[int], matrices: bool) -> list[Shape]:
    """Each size as a vector, or as a matrix of 1000 columns (sizes are multiples of 1000)."""
    return [(size // 1000, 1000) if matrices else (size,) for size in sizes]


def netcl_params(shapes: list[Shape], device: Any, rng: np.random.Generator) -> list[Tensor]:
    params: list[Tensor] = []
    for shape in shapes:
        p = Parameter(from_numpy(rng.standard_normal(shape, dtype=np.float32), device))
        p.grad = from_numpy(rng.standard_normal(shape, dtype=np.float32), device)
        params.append(p)
    return params


def torch_params(shapes: list[Shape], device: str) -> list[torch.Tensor]:
    params = []
    for shape in shapes:
        p = torch.randn(shape, device=device, requires_grad=True)
        p.grad = torch.randn(shape, device=device)
        params.append(p)
    return params


def copy_bandwidth(device: Any, count: int, steps: int, repeats: int) -> float:
    """Device-to-device copy of ``count`` floats in bytes per second, read plus written:
    the ceiling a memory-bound step can reach, measured in this run."""
    src, dst = empty((count,), float32, device), empty((count,), float32, device)

    def copy() -> None:
        cl.enqueue_copy(device.queue, dst.buffer, src.buffer, byte_count=count * 4)

    timing = time_contenders({"copy": (copy, device.synchronize)}, calls=steps, rounds=repeats)
    seconds = timing["copy"].median
    return 2 * count * 4 / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=int, default=20_000_000, help="parameters in all")
    parser.add_argument("--tensors", type=int, default=200, help="tensors in case (b)")
    parser.add_argument("--steps", type=int, default=0, help="steps per sample (0: auto)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--algorithms", default=",".join(ALGORITHMS))
    parser.add_argument(
        "--layout", metavar="VEC,CHUNK",
        help="force the kernels' layout (elements per vector, per work-item) on this device",
    )
    add_json_flag(parser)
    args = parser.parse_args()

    device = manager.default("auto")
    if args.layout:
        vec, chunk = (int(x) for x in args.layout.split(","))
        kernels.layout_override[device.type] = kernels.Layout(vec, chunk)
    torch_device = "cuda" if device.type == "gpu" and torch.cuda.is_available() else "cpu"
    steps = args.steps or (20 if device.type == "gpu" else 3)
    sync_torch = torch.cuda.synchronize if torch_device == "cuda" else no_sync
    if torch_device == "cuda":
        peer = torch.cuda.get_device_name()
    else:
        peer = f"torch CPU, {torch.get_num_threads()} threads"
    report = Report("optimizer step", f"{device.name} ({device.type})", args.json, peer=peer,
                    params=args.params, timing=f"{steps} steps x {args.repeats} samples, median",
                    kernel_layout=str(kernels.layout(device)))
    # PoCL copies a buffer on one thread, which makes it no ceiling for a CPU kernel.
    copy_rate = None
    if device.type == "gpu":
        copy_rate = copy_bandwidth(device, args.params, steps, args.repeats)
        report.note("device-to-device copy GB/s (read + written)", round(copy_rate / 1e9))

    rng = np.random.default_rng(0)
    cases = {
        "1 tensor": [args.params],
        f"{args.tensors} tensors": [args.params // args.tensors] * args.tensors,
    }
    implementations = ["netcl fused", "netcl per-parameter", "torch fused", "torch foreach",
                       "torch for-loop", "torch best"]
    for name in args.algorithms.split(","):
        netcl_cls, torch_cls, netcl_kwargs, torch_kwargs = ALGORITHMS[name]
        per_param = BYTES_PER_PARAM.get(name)
        bandwidth = ["netcl fused GB/s", "% copy"] if per_param else []
        peer_label, peer_cls = NETCL_PEERS.get(name, (None, None))
        ratios = [("netcl fused", "torch best"), ("netcl per-parameter", "torch best")]
        if peer_label:
            ratios.append(("netcl fused", peer_label))
        table = report.table(
            f"{name}: ms per step",
            [*implementations, *([peer_label] if peer_label else []), *bandwidth], ratios=ratios,
        )
        for case, sizes in cases.items():
            contenders: dict[str, Contender] = {}
            shapes = shapes_of(sizes, name in PER_MATRIX)
            tparams = torch_params(shapes, torch_device)
            torch_variants = (
                ("torch fused", {"fused": True}),
                ("torch foreach", {"foreach": True}),
                # Muon has one form only, and no foreach argument.
                ("torch for-loop", {} if name == "muon" else {"foreach": False}),
            )
            for label, flags in torch_variants:
                try:
                    topt = torch_cls(tparams, **torch_kwargs, **flags)
                    # Some refuse only at their first step (fused Adagrad is CPU-only).
                    topt.step()
                except (RuntimeError, TypeError, ValueError):
                    continue  # e.g. no fused RMSprop in this torch: n/a in the table
                contenders[label] = (topt.step, sync_torch)
            for label, fused in (("netcl fused", True), ("netcl per-parameter", False)):
                if name in PER_MATRIX and fused:
                    continue
                flags = {} if name in PER_MATRIX else {"fused": fused}
                nopt = netcl_cls(netcl_params(shapes, device, rng), **netcl_kwargs, **flags)
                contenders[label] = (nopt.step, device.synchronize)
            if peer_label:
                peer_opt = peer_cls(netcl_params(shapes, device, rng), **netcl_kwargs)
                contenders[peer_label] = (peer_opt.step, device.synchronize)
            timings = time_contenders(contenders, calls=steps, rounds=args.repeats)
            # Free this case's memory before the next.
            del contenders, tparams, topt, nopt
            peer_opt = None
            cells: dict[str, float | int | None] = {
                label: timing.median * 1e3 for label, timing in timings.items()}
            # torch's fastest kind it has: fused, else foreach (else its only one).
            cells["torch best"] = (cells.get("torch fused") or cells.get("torch foreach")
                                   or cells.get("torch for-loop"))
            if per_param:
                rate = per_param * args.params / timings["netcl fused"].median
                cells["netcl fused GB/s"] = rate / 1e9
                cells["% copy"] = round(100 * rate / copy_rate) if copy_rate else None
            table.row(case, cells)
    report.finish()


if __name__ == "__main__":
    main()
