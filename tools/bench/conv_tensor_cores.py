"""A Conv2d layer's forward and backward (input and weight gradients) in bfloat16,
float16 and TF32: netcl against torch (cuDNN on a GPU) in the same dtype, in one run.

    NETCL_DEVICE=gpu python tools/bench/conv_tensor_cores.py          # the issue's row
    NETCL_DEVICE=gpu python tools/bench/conv_tensor_cores.py --dtype bfloat16 --variants
    python tools/bench/conv_tensor_cores.py --batch 2 --size 14       # CPU: PoCL vs torch

The default is issue 32's row: 3x3, 64 -> 64 channels, 56 x 56, batch 32, padding 1.
Rows: the forward pass, each gradient, and forward + backward (the three in a row);
float32 rows run with TF32 allowed for convolutions on both sides (netcl's
backends.cudnn.allow_tf32, torch's). netcl takes its tensor-core kernel
(matmul_mma.cl reading the input in place) where the device has tensor cores, its
CUDA-core or CPU kernels elsewhere (the path is printed). Before timing, each dtype's
forward pass is compared with torch's (the largest difference over the largest
magnitude, printed). Timing is harness.py's: samples in rounds, medians.

``--variants`` (tensor cores only) then sweeps gemm's opt-in choices
(conv_options.ConvOptions: DW_VARIANTS): each weight gradient is first checked
against float64 (err/bound, the bound of its rounding) and on whole-number inputs in
-2..2, whose every product and float32 partial sum is exact (|sum| <= 4 N OH OW <
2^24), so that it must give float64's result rounded once, bit for bit (a group
boundary that drops or repeats a step fails it; it hides under the bound); a variant
that fails either is not timed. Then all of them, today's and torch's are timed in one
interleaved run;
the wide gather's forward and input gradient beside today's (same bits required);
and forward + backward with the fastest weight gradient, the wide gather on and off.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
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
from netcl.core.tensor.ops.conv_options import ConvOptions, conv_options  # noqa: E402
from netcl.core.tensor.ops.matmul_tiles import MmaTile  # noqa: E402

DTYPES = ("bfloat16", "float16", "float32")
# The weight gradient's candidates (today's first). The 64 x 576 product on
# 64 x 64 tiles is 9 tiles; today it runs 16 groups of 2 images (144 work-groups on
# 132 SMs). More groups (split inside images: 4, 8, 16 work-groups an SM), the wide
# gather, tiles with fewer re-reads of the output gradient (64 x 192, 64 x 128),
# warps with more products a fragment read (32 x 64 and 64 x 32 against today's
# 32 x 32) or fewer barriers (64 deep). Every group adds a float32 slab of the whole 64 x 576
# (147 KiB) to sum after, and fewer tiles take more groups for as many work-groups:
# the wide tiles aim at fewer work-groups an SM (64 x 192 at 4: 176 slabs, 26 MB).
_WIDE_SPLIT = {"wide_gather": True, "dw_split_images": True}
DW_VARIANTS = [
    ConvOptions(), ConvOptions(wide_gather=True), ConvOptions(dw_per_unit=4),
    ConvOptions(dw_per_unit=4, dw_split_images=True),
    ConvOptions(dw_per_unit=8, dw_split_images=True),
    ConvOptions(dw_per_unit=16, dw_split_images=True),
    ConvOptions(dw_per_unit=4, **_WIDE_SPLIT), ConvOptions(dw_per_unit=8, **_WIDE_SPLIT),
    ConvOptions(dw_per_unit=16, **_WIDE_SPLIT),
    ConvOptions(dw_per_unit=2, dw_tile=MmaTile(64, 192, 32, 2, 4), **_WIDE_SPLIT),
    ConvOptions(dw_per_unit=4, dw_tile=MmaTile(64, 192, 32, 2, 4), **_WIDE_SPLIT),
    ConvOptions(dw_per_unit=4, dw_tile=MmaTile(64, 128, 32, 2, 2), **_WIDE_SPLIT),
    ConvOptions(dw_per_unit=8, dw_tile=MmaTile(64, 64, 32, 1, 2), **_WIDE_SPLIT),
    ConvOptions(dw_per_unit=8, dw_tile=MmaTile(64, 64, 64, 2, 2), **_WIDE_SPLIT),
]


def under(options: ConvOptions | None) -> AbstractContextManager[None]:
    return nullcontext() if options is None else conv_options(options)


def netcl_calls(device: Device, x_host: Any, w_host: Any, g_host: Any,
                options: ConvOptions | None = None) -> dict[str, Callable[[], Any]]:
    """The four timed calls, each under ``options`` (None: today's CONV_OPTIONS)."""
    x, w, g = (from_numpy(a, device) for a in (x_host, w_host, g_host))

    def forward() -> Any:
        with under(options):
            return conv2d(x, w, padding=1)

    def input_grad() -> Any:
        with under(options):
            return conv2d_grads(g, x, w, padding=1, needs=(True, False, False))[0]

    def weight_grad() -> Any:
        with under(options):
            return conv2d_grads(g, x, w, padding=1, needs=(False, True, False))[1]

    def both() -> Any:
        forward()
        with under(options):
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
    parser.add_argument("--variants", action="store_true",
                        help="sweep the opt-in convolution choices (DW_VARIANTS) too")
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
        if args.variants and path == "tensor cores":
            sweep(report, device, torch, where, name, (x_host, w_host, g_host), theirs, flops,
                  args.rounds)
    report.finish()


def weight_grad_error(torch: Any, where: str, got: Any, x_host: Any, w_shape: Any,
                      g_host: Any) -> float:
    """Max |got - exact| over the bound of its rounding (test_matmul_tensor_cores'
    rounding_bound): float32 sums of K = N*OH*OW products plus one a group (at most one
    group a step: K counted twice), TF32 inputs for float32, a 16-bit output rounded."""
    x64, g64 = (torch.from_numpy(a.astype(np.float64)).to(where) for a in (x_host, g_host))
    exact = torch.nn.grad.conv2d_weight(x64, w_shape, g64, padding=1).cpu().numpy()
    magnitude = torch.nn.grad.conv2d_weight(x64.abs(), w_shape, g64.abs(),
                                            padding=1).cpu().numpy()
    k = 2 * g_host.shape[0] * g_host.shape[2] * g_host.shape[3]
    u_in = 2.0**-11 if x_host.dtype == np.float32 else 0.0
    allowed = magnitude * (2 * u_in + u_in**2 + k * 2.0**-23 / (1 - k * 2.0**-23))
    if x_host.dtype != np.float32:
        unit = 2.0**-11 if x_host.dtype == np.float16 else 2.0**-8
        allowed = allowed * (1 + unit) + np.abs(exact) * unit
    error = np.abs(np.asarray(got.numpy(), np.float64) - exact) / allowed
    return float(np.nan_to_num(error, nan=np.inf).max())


def exact_weight_grad(torch: Any, where: str, x_host: Any, w_shape: Any, g_host: Any) -> Any:
    """The float64 weight gradient rounded once to the inputs' dtype: what every variant
    gives bit for bit on whole-number inputs small enough that no float32 sum rounds."""
    x64, g64 = (torch.from_numpy(a.astype(np.float64)).to(where) for a in (x_host, g_host))
    exact = torch.nn.grad.conv2d_weight(x64, w_shape, g64, padding=1).cpu().numpy()
    assert np.abs(exact).max() < 2**24, "whole-number inputs too large for exact sums"
    return exact.astype(x_host.dtype)


def sweep(report: Report, device: Device, torch: Any, where: str, name: str,
          hosts: tuple[Any, Any, Any], theirs: dict[str, Callable[[], object]], flops: float,
          rounds: int) -> None:
    """DW_VARIANTS' weight gradients checked, then timed with torch's in one run; the wide
    gather's forward and input gradient; forward + backward with the fastest."""
    x_host, w_host, g_host = hosts
    sync = torch.cuda.synchronize if where == "cuda" else (lambda: None)
    whole = np.random.default_rng(1)
    x_int, g_int = (whole.integers(-2, 3, a.shape).astype(a.dtype) for a in (x_host, g_host))
    want_int = exact_weight_grad(torch, where, x_int, w_host.shape, g_int)
    table = report.table(f"{name} weight grad variants, TFLOP/s; err/bound must be <= 1 "
                         "and whole-number inputs give exact sums",
                         ["err/bound", "exact", "netcl", "torch"],
                         ratios=[("netcl", "torch")])
    passed: dict[str, Callable[[], object]] = {}
    options_of: dict[str, ConvOptions] = {}
    errors: dict[str, float] = {}
    for options in DW_VARIANTS:
        call = netcl_calls(device, x_host, w_host, g_host, options)["weight grad"]
        call_int = netcl_calls(device, x_int, w_host, g_int, options)["weight grad"]
        try:
            ratio = weight_grad_error(torch, where, call(), x_host, w_host.shape, g_host)
            got_int = np.asarray(call_int().numpy(), np.float64)
            exact = bool(np.array_equal(got_int, want_int.astype(np.float64)))
        except Exception as error:  # a variant that does not build: the rest run
            print(f"{name} weight grad {options.name}: {error}"[:2000])
            ratio, exact = float("inf"), False
        errors[options.name] = ratio
        if ratio <= 1 and exact:
            passed[options.name], options_of[options.name] = call, options
        else:
            table.row(f"{name} weight grad {options.name} (failed)",
                      {"err/bound": ratio, "exact": "yes" if exact else "NO"})
    times = time_contenders({**{key: (call, device.synchronize) for key, call in passed.items()},
                             "torch": (theirs["weight grad"], sync)}, rounds=rounds)
    for key in passed:
        table.row(f"{name} weight grad {key}", {
            "err/bound": errors[key], "exact": "yes", "netcl": flops / times[key].median / 1e12,
            "torch": flops / times["torch"].median / 1e12})
    if not passed:
        return
    best = options_of[min(passed, key=lambda key: times[key].median)]
    report.note(f"{name} fastest weight grad", best.name)

    # The wide gather in the other two passes: the element gather's bits, then timed.
    today = netcl_calls(device, x_host, w_host, g_host)
    wide = netcl_calls(device, x_host, w_host, g_host, ConvOptions(wide_gather=True))
    passes = report.table(f"{name} wide gather, TFLOP/s", ["same bits", "netcl", "torch"],
                          ratios=[("netcl", "torch")])
    wide_right = True
    for case in ("forward", "input grad"):
        try:
            same = bool(np.array_equal(today[case]().numpy(), wide[case]().numpy()))
        except Exception as error:  # a build that fails: the rest runs
            print(f"{name} {case} wide: {error}"[:2000])
            same = False
        wide_right = wide_right and same
        contenders = {"today": (today[case], device.synchronize),
                      **({"wide": (wide[case], device.synchronize)} if same else {}),
                      "torch": (theirs[case], sync)}
        times = time_contenders(contenders, rounds=rounds)
        passes.row(f"{name} {case} wide, bits", {"same bits": "yes" if same else "NO (not timed)"})
        for key in times:
            if key != "torch":
                passes.row(f"{name} {case} {key}", {
                    "netcl": flops / times[key].median / 1e12,
                    "torch": flops / times["torch"].median / 1e12})

    # Forward + backward: today's, and the fastest weight gradient's choices with the
    # wide gather off and on (it applies to all three passes; on only where its forward
    # and input gradient gave the element gather's bits).
    calls = {"today": today["forward + backward"]}
    for wide_gather in (False, True)[:1 + wide_right]:
        options = dataclasses.replace(best, wide_gather=wide_gather)
        calls[f"best, {options.name}"] = netcl_calls(
            device, x_host, w_host, g_host, options)["forward + backward"]
    times = time_contenders({**{key: (call, device.synchronize) for key, call in calls.items()},
                             "torch": (theirs["forward + backward"], sync)}, rounds=rounds)
    steps = report.table(f"{name} forward + backward, TFLOP/s", ["netcl", "torch"],
                         ratios=[("netcl", "torch")])
    for key in calls:
        steps.row(f"{name} forward + backward {key}", {
            "netcl": 3 * flops / times[key].median / 1e12,
            "torch": 3 * flops / times["torch"].median / 1e12})

if __name__ == "__main__":
    main()
