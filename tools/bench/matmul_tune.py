"""Tile sweep for the tiled GPU matmul: every candidate shape on every problem, in one run.

For each problem (a product in one layout, or one pass of a convolution's implicit GEMM)
times each candidate ``TileConfig`` of matmul.cl's tiled kernel and the peer (torch's
same op: CUDA with TF32 off and cuDNN autotuned, or torch on the CPU), prints GFLOP/s
per candidate, the winner and winner / peer, checks the candidates' results against a
float64 reference (within the rounding bound of a K-term float32 sum), and ends with the
winners as rows for ``matmul_tiles.MEASURED``. Timing is tools/bench/harness.py's, each
contender in a whole turn of three samples.

Without ``--model`` the problems are PROBLEMS below. With ``--model``
(kernel_profile.py's models: gpt6, resnet18, and small ones for a CPU dry run) they are
the GEMMs one eager training step of that model launches, recorded as it runs
(``recorded_problems``), each swept over at most MAX_CANDIDATES tiles chosen by its shape
(``shape_candidates``; today's tile first), with a table of the step's GEMM time at
torch's, today's and the winning tiles. ``--rows-out F`` writes the winners as JSON,
which ``train_step.py --tiles F`` and ``kernel_profile.py --tiles F`` put in front of
MEASURED for their run (tile_rows.py).

    NETCL_DEVICE=gpu python3 tools/bench/matmul_tune.py           # everything
    NETCL_DEVICE=gpu python3 tools/bench/matmul_tune.py --quick   # one config each
    NETCL_DEVICE=gpu python3 tools/bench/matmul_tune.py --match 512x512@  # some problems
    NETCL_DEVICE=gpu python3 tools/bench/matmul_tune.py --match 1024x1024@,conv
    NETCL_DEVICE=gpu python3 tools/bench/matmul_tune.py --model gpt6 --rows-out gpt6.json
    python3 tools/bench/matmul_tune.py --model resnet --quick     # CPU dry run (PoCL)
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

_HERE = Path(__file__).resolve().parent
_ROOT = _HERE.parents[1]
for _src in ("packages/netcl-device/src", "packages/netcl-tensor/src", str(_HERE)):
    if str(_ROOT / _src) not in sys.path:
        sys.path.append(str(_ROOT / _src))

from harness import Contender, Report, Table, add_json_flag, no_sync, time_contenders  # noqa: E402
from matmul import transposed  # noqa: E402  (tools/bench/matmul.py)
from tile_rows import measured_key, write_rows  # noqa: E402

from netcl.core.device import Device, manager  # noqa: E402
from netcl.core.tensor import Tensor, from_numpy, ops  # noqa: E402
from netcl.core.tensor.ops import gemm, matmul_tiles  # noqa: E402
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
# Problems up to this many outputs check every candidate's result; larger ones check
# in speed order until one passes (``tune``).
CHECK_ALL = 1 << 22
CONV = [T(64, 128, 8, 8, 8), T(64, 128, 16, 8, 8), T(64, 64, 16, 8, 8), T(64, 64, 16, 4, 4),
        T(128, 128, 8, 8, 8)]


@dataclass(frozen=True)
class Gemm:
    """A product as ``matmul_tiles.choose_tile`` is asked for it: ``count`` products of
    (M, K) @ (K, N) in ``layout`` ("nn", "nt", "tn", "tt"; "convN" for pass N of a
    convolution, whose count is its images)."""

    layout: str
    m: int
    n: int
    k: int
    count: int = 1

    @property
    def key(self) -> tuple[str, int, int, int]:
        """The (layout, M, N, K) of its MEASURED row: the batch counted into M, as
        ``_nearest`` counts it."""
        return self.layout, self.m * self.count, self.n, self.k

    @property
    def name(self) -> str:
        batch = f"{self.count} x " if self.count > 1 else ""
        return f"{self.layout} {batch}{self.m}x{self.k}@{self.k}x{self.n}"

    @property
    def flops(self) -> float:
        return 2.0 * self.m * self.n * self.k * self.count


Pair = tuple[int, int]


@dataclass(frozen=True)
class ConvPass:
    """One pass of a convolution: ``mode`` is matmul.cl's B_GATHER (1 forward, 3 the
    input's gradient, 2 the weight's), x (N, C, H, W), weight (O, C, KH, KW)."""

    mode: int
    x_shape: tuple[int, int, int, int]
    w_shape: tuple[int, int, int, int]
    stride: Pair = (1, 1)
    padding: Pair = (0, 0)
    dilation: Pair = (1, 1)

    @property
    def out_hw(self) -> Pair:
        h, w = self.x_shape[2:]
        kh, kw = self.w_shape[2:]
        return ((h + 2 * self.padding[0] - self.dilation[0] * (kh - 1) - 1) // self.stride[0] + 1,
                (w + 2 * self.padding[1] - self.dilation[1] * (kw - 1) - 1) // self.stride[1] + 1)

    @property
    def gemm(self) -> Gemm:
        """The product implicit_gemm asks choose_tile for (gemm.py; conv.py's passes)."""
        n_img, c, h, w = self.x_shape
        o, _, kh, kw = self.w_shape
        oh, ow = self.out_hw
        m, n, k = {1: (o, oh * ow, c * kh * kw), 3: (c, h * w, o * kh * kw),
                   2: (o, c * kh * kw, oh * ow)}[self.mode]
        return Gemm(f"conv{self.mode}", m, n, k, n_img)

    @property
    def name(self) -> str:
        n_img, c, h, w = self.x_shape
        o, _, kh, kw = self.w_shape
        return (f"conv{self.mode} {kh}x{kw}/{self.stride[0]} {c}->{o} {h}x{w} b{n_img}"
                f" ({self.gemm.m}x{self.gemm.k}@{self.gemm.k}x{self.gemm.n})")


Problem = Gemm | ConvPass



def _mkn(layout: str, m: int, k: int, n: int, batch: int = 1) -> Gemm:
    """A Gemm from the (layout, M, K, N) order these lists are written in."""
    return Gemm(layout, m, n, k, batch)


PROBLEMS: list[tuple[Problem, list[TileConfig]]] = [
    *((_mkn(layout, 1024, 1024, 1024), LARGE + SPLIT_LARGE + SWIZZLED_1024 + SLICED_1024)
      for layout in ("nn", "nt", "tn")),
    *((_mkn(layout, s, s, s), LARGE + SWIZZLED_LARGE + PIPELINED_LARGE + SLICED_LARGE)
      for s in (2048, 4096)
      for layout in ("nn", "nt", "tn")),
    *((_mkn(layout, 512, 512, 512), SMALL + LARGE[:2] + SWIZZLED_SMALL)
      for layout in ("nn", "nt", "tn")),
    *((_mkn(layout, 128, 784, 256), SMALL + SWIZZLED_SMALL + SLICED_SMALL)
      for layout in ("nn", "nt", "tn")),
    *((_mkn(layout, 256, 1024, 1024), SMALL + LARGE[:3] + SWIZZLED_SMALL + SLICED_SMALL)
      for layout in ("nn", "nt", "tn")),
    (_mkn("nn", 512, 512, 512, 8), LARGE + SWIZZLED_LARGE[:2]),
    # The 784-8192x4-10 MLP at batch 4096: first layer, last layer and its gradients.
    (_mkn("nt", 4096, 784, 8192), LARGE[:4] + SWIZZLED_LARGE + PIPELINED_LARGE),
    (_mkn("nt", 4096, 8192, 10), SMALL + SWIZZLED_SMALL),
    (_mkn("nn", 4096, 10, 8192), LARGE[:4]),
    (_mkn("tn", 10, 4096, 8192), SMALL),
    (_mkn("tn", 8192, 4096, 784), LARGE + SWIZZLED_LARGE[:3]),
    # Conv2d 3x3 64 -> 64, 56x56, batch 32: forward, input and weight gradients.
    *((ConvPass(mode, (32, 64, 56, 56), (64, 64, 3, 3), padding=(1, 1)), CONV)
      for mode in (1, 3, 2)),
]

# --model: at most this many tiles a problem (each one a kernel build, 0.3-1 s on NVIDIA).
MAX_CANDIDATES = 6
# Pools by shape, each best-guess first. Plenty of big tiles: the swizzled, pipelined
# 256-work-item tiles that won 2048^3 and up, then smaller and K-sliced ones.
BIG_POOL = [X(128, 256, 16, 16, 8, pipelined=True), X(256, 128, 16, 16, 8, pipelined=True),
            T(128, 128, 16, 8, 8), T(128, 64, 16, 8, 8), T(64, 128, 16, 8, 8),
            X(128, 64, 32, 8, 8, k_slices=2)]
# Fewer 128 x 128 tiles than two per compute unit: the tiles that won 1024^3 and 4096 x 512^2.
MEDIUM_POOL = [T(128, 64, 16, 8, 8), X(128, 64, 32, 8, 8, k_slices=2), X(64, 64, 32, 8, 4),
               T(64, 64, 32, 8, 8, k_slices=2), T(64, 64, 16, 8, 8), T(64, 64, 16, 4, 4)]
# Fewer 64 x 64 tiles than compute units: small tiles, more work-items per tile.
SMALL_POOL = [T(64, 64, 16, 4, 4), T(64, 32, 16, 4, 4), T(32, 64, 16, 4, 4),
              T(32, 32, 16, 4, 4), T(64, 64, 32, 8, 4, k_slices=2),
              T(32, 32, 32, 4, 4, k_slices=2)]
# A single product (split K runs only there: gemm._tiled_plan) with too few tiles: K in
# chunks, as won 512^3, 256 x 1024^2 and the 10-wide MLP gradients.
SPLIT_POOL = [T(64, 64, 16, 4, 4, 4), X(32, 32, 32, 4, 4, 4), T(32, 32, 16, 4, 4, 8),
              X(64, 64, 32, 8, 4, 4)]
# N or M of 32 or less (a 10-class head, ResNet-18's last stage at 4x4): tiles as
# narrow, so few of their columns or rows lie past the edge.
NARROW_N_POOL = [T(64, 16, 16, 4, 4), T(128, 16, 16, 8, 4), T(64, 32, 16, 4, 4),
                 T(128, 32, 16, 8, 4), T(32, 32, 16, 4, 4)]
NARROW_M_POOL = [T(16, 64, 16, 4, 4), T(16, 128, 16, 4, 8), T(32, 64, 16, 4, 4),
                 T(32, 128, 16, 4, 8), T(32, 32, 16, 4, 4)]
NARROW = 32


def shape_candidates(problem: Gemm, compute_units: int, today: TileConfig,
                     limit: int = MAX_CANDIDATES) -> list[TileConfig]:
    """At most ``limit`` tiles for ``problem``: today's (what choose_tile picks now, the
    baseline), then pools by shape: narrow tiles for an N or M of NARROW or less, else
    big, medium or small ones (and the smaller pools after) by how many work-groups the
    problem gives the compute units, split-K ones first where a single product has too
    few tiles. A tile half or more of whose rows or columns would lie past M or N
    (M is a convolution's channels, 64 against 128-row tiles) is passed over."""
    def groups(bm: int, bn: int) -> int:
        return -(-problem.m // bm) * -(-problem.n // bn) * problem.count

    single = problem.count == 1 and not problem.layout.startswith("conv")
    split = SPLIT_POOL if single else []
    if problem.n <= NARROW:
        pool = NARROW_N_POOL + (split if groups(64, 16) < compute_units else [])
    elif problem.m <= NARROW:
        pool = NARROW_M_POOL + (split if groups(16, 64) < compute_units else [])
    elif groups(128, 128) >= 2 * compute_units:
        pool = BIG_POOL + MEDIUM_POOL + SMALL_POOL
    elif groups(64, 64) >= compute_units:
        pool = MEDIUM_POOL + SMALL_POOL
    else:
        pool = split + SMALL_POOL
    fitting = [t for t in pool if t.bm < 2 * problem.m and t.bn < 2 * problem.n] or pool
    tiles: list[TileConfig] = []
    for tile in (today, *fitting):
        # choose_tile drops split_k from a batch's tile; gemm ignores it on a convolution.
        tile = tile if single else dataclasses.replace(tile, split_k=1)
        if tile not in tiles:
            tiles.append(tile)
    return tiles[:limit]


# -- the GEMMs of a training step ----------------------------------------------------------


def _pair(value: int | Sequence[int]) -> Pair:
    if isinstance(value, int):
        return value, value
    first, second = value
    return int(first), int(second)


class _Forgetful(dict[Any, Any]):
    """A plan cache that keeps nothing: every lookup misses."""

    def get(self, key: Any, default: Any = None) -> Any:
        return default

    def __setitem__(self, key: Any, value: Any) -> None:
        pass


@contextmanager
def recorded_problems(device: Device) -> Iterator[collections.Counter[Problem]]:
    """Counts the GEMMs that run while inside: every product choose_tile is asked for,
    and every convolution pass (forward from ``ops.conv2d``, gradients from
    ``ops.conv2d_grads``: where nn and autograd reach them). On a CPU, where matmul runs
    the panel kernel and a convolution conv_cpu's (neither asks choose_tile), products
    are planned for the tiled kernel for the while, so that a dry run records what a
    GPU would (the products conv_cpu runs inside a convolution are not counted: a GPU
    runs the pass itself). A convolution's choose_tile key must be a recorded pass's
    (checked on leaving): ConvPass.gemm derives it as implicit_gemm does."""
    found: collections.Counter[Problem] = collections.Counter()
    conv_keys: set[tuple[str, int, int, int]] = set()
    in_conv = [0]
    plain_choose, plain_family = gemm.choose_tile, gemm.default_family
    plain_conv, plain_grads = ops.conv2d, ops.conv2d_grads

    def choose(name: str, units: int, layout: str, m: int, n: int, k: int,
               count: int) -> TileConfig:
        if layout.startswith("conv"):
            conv_keys.add(Gemm(layout, m, n, k, count).key)
        elif not in_conv[0]:
            found[Gemm(layout, m, n, k, count)] += 1
        return plain_choose(name, units, layout, m, n, k, count)

    @contextmanager
    def inside_conv() -> Iterator[None]:
        in_conv[0] += 1
        try:
            yield
        finally:
            in_conv[0] -= 1

    def family(on: Device, dtype: np.dtype[Any]) -> str:
        kind = plain_family(on, dtype)
        return "tiled" if kind == "panel" else kind

    def geometry(x: Tensor, weight: Tensor, stride: Any, padding: Any,
                 dilation: Any) -> dict[str, Any]:
        n, c, h, w = x.shape
        o, ci, kh, kw = weight.shape
        return {"x_shape": (n, c, h, w), "w_shape": (o, ci, kh, kw), "stride": _pair(stride),
                "padding": _pair(padding), "dilation": _pair(dilation)}

    def conv2d(x: Tensor, weight: Tensor, stride: Any = 1, padding: Any = 0,
               dilation: Any = 1, tile: Any = None, bias: Tensor | None = None) -> Tensor:
        found[ConvPass(1, **geometry(x, weight, stride, padding, dilation))] += 1
        with inside_conv():
            return plain_conv(x, weight, stride, padding, dilation, tile, bias)

    def conv2d_grads(grad: Tensor, x: Tensor, weight: Tensor, stride: Any = 1,
                     padding: Any = 0, dilation: Any = 1,
                     needs: tuple[bool, bool, bool] = (True, True, False)) -> Any:
        for mode, needed in ((3, needs[0]), (2, needs[1])):
            if needed:
                found[ConvPass(mode, **geometry(x, weight, stride, padding, dilation))] += 1
        with inside_conv():
            return plain_grads(grad, x, weight, stride, padding, dilation, needs)

    gemm.choose_tile, ops.conv2d, ops.conv2d_grads = choose, conv2d, conv2d_grads
    if device.type == "cpu":
        gemm.default_family = family
    # Matmul's cached plans hold the tiles already chosen, and its key (shapes, strides,
    # offsets) is one for every layer of a shape: with a cache that keeps nothing, every
    # launch is planned, so asks choose_tile, and counts.
    plans, device.kernels.plans = device.kernels.plans, _Forgetful()
    try:
        yield found
    finally:
        gemm.choose_tile, gemm.default_family = plain_choose, plain_family
        ops.conv2d, ops.conv2d_grads = plain_conv, plain_grads
        device.kernels.plans = plans
    derived = {p.gemm.key for p in found if isinstance(p, ConvPass)}
    if conv_keys - derived:
        raise AssertionError(f"convolution GEMMs {sorted(conv_keys - derived)} are not any "
                             f"recorded pass's {sorted(derived)}: ConvPass.gemm is out of date")


def model_problems(model: str, device: Device) -> collections.Counter[Problem]:
    """The GEMMs one eager training step of kernel_profile.py's ``model`` launches,
    each with its launches per step (the step is run once to build, then recorded)."""
    from kernel_profile import MODELS, model_step  # train_step.py's models, by short name

    step = model_step(MODELS[model], device)
    step()
    device.synchronize()
    with recorded_problems(device) as found:
        step()
        device.synchronize()
    return found


# -- one problem, its contenders and its check ------------------------------------------------


@dataclass
class Case:
    """A problem on this device: ``run`` it at a tile, ``peer`` the same op in torch
    (``peer_sync`` waits for it), ``want`` its float64 result, ``bound`` the rounding
    bound of each entry (a K-term float32 sum: gamma_(K+1) times the float64 product of
    the operands' magnitudes, Higham's (3.13))."""

    problem: Problem
    run: Callable[[TileConfig], Tensor]
    peer: Callable[[], Any]
    peer_sync: Callable[[], None]
    want: np.ndarray[Any, Any]
    bound: np.ndarray[Any, Any]

    def error(self, tile: TileConfig) -> float:
        """The largest error at ``tile`` as a share of its entry's bound (above 1: wrong;
        a NaN anywhere is inf, so no comparison can let it pass)."""
        got = self.run(tile).numpy().astype(np.float64).reshape(self.want.shape)
        error = float(np.max(np.abs(got - self.want) / np.maximum(self.bound, 1e-300)))
        return math.inf if math.isnan(error) else error


def _gamma(terms: int) -> float:
    u = 2.0 ** -24
    return (terms + 1) * u / (1 - (terms + 1) * u)


def _peer_device() -> tuple[Any, Callable[[], None]]:
    if torch.cuda.is_available():
        return torch.device("cuda"), torch.cuda.synchronize
    return torch.device("cpu"), no_sync


def make_case(problem: Problem, device: Device, rng: np.random.Generator) -> Case:
    where, sync = _peer_device()
    if isinstance(problem, Gemm):
        return _gemm_case(problem, device, rng, where, sync)
    return _conv_case(problem, device, rng, where, sync)


def _gemm_case(problem: Gemm, device: Device, rng: np.random.Generator, where: Any,
               sync: Callable[[], None]) -> Case:
    batch = (problem.count,) if problem.count > 1 else ()
    a_host = rng.standard_normal((*batch, problem.m, problem.k), np.float32)
    b_host = rng.standard_normal((*batch, problem.k, problem.n), np.float32)
    a, b = (_place(h, side == "t", device) for h, side in zip((a_host, b_host), problem.layout,
                                                                strict=True))
    ta, tb = (torch.from_numpy(h).to(where) for h in (a_host, b_host))
    want = (ta.double() @ tb.double()).cpu().numpy()
    size = (ta.double().abs() @ tb.double().abs()).cpu().numpy()
    ta, tb = (_torch_place(t, side == "t") for t, side in zip((ta, tb), problem.layout,
                                                              strict=True))
    return Case(problem, lambda tile: matmul_with(a, b, "tiled", tile), _bind(torch.matmul, ta, tb),
                sync, want, _gamma(problem.k) * size)


def _conv_case(problem: ConvPass, device: Device, rng: np.random.Generator, where: Any,
               sync: Callable[[], None]) -> Case:
    fn = torch.nn.functional
    n_img = problem.x_shape[0]
    o = problem.w_shape[0]
    x_host = rng.standard_normal(problem.x_shape, np.float32)
    w_host = (rng.standard_normal(problem.w_shape, np.float32)
              / np.float32(math.prod(problem.w_shape[1:])) ** 0.5)
    g_host = rng.standard_normal((n_img, o, *problem.out_hw), np.float32)
    x, wt, g = (from_numpy(v, device) for v in (x_host, w_host, g_host))
    tx, tw, tg = (torch.from_numpy(v).to(where) for v in (x_host, w_host, g_host))
    shape = {"stride": problem.stride, "padding": problem.padding, "dilation": problem.dilation}
    geometry = problem.stride, problem.padding, problem.dilation
    torch_pass: Callable[[Any, Any, Any], Any]
    if problem.mode == 1:
        def torch_pass(x_: Any, w_: Any, g_: Any) -> Any:
            return fn.conv2d(x_, w_, **shape)

        def run(tile: TileConfig) -> Tensor:
            return ops.conv2d(x, wt, *geometry, tile=tile)
    elif problem.mode == 3:
        def torch_pass(x_: Any, w_: Any, g_: Any) -> Any:
            return torch.nn.grad.conv2d_input(problem.x_shape, w_, g_, **shape)

        def run(tile: TileConfig) -> Tensor:
            return ops.conv2d_input_grad(g, wt, x.shape, *geometry, tile=tile)
    else:
        def torch_pass(x_: Any, w_: Any, g_: Any) -> Any:
            return torch.nn.grad.conv2d_weight(x_, problem.w_shape, g_, **shape)

        def run(tile: TileConfig) -> Tensor:
            return ops.conv2d_weight_grad(g, x, wt.shape, *geometry, tile=tile)
    want = torch_pass(tx.double(), tw.double(), tg.double()).cpu().numpy()
    size = torch_pass(tx.double().abs(), tw.double().abs(), tg.double().abs()).cpu().numpy()
    terms = problem.gemm.k * (n_img if problem.mode == 2 else 1)  # mode 2 sums the images too
    return Case(problem, run, _bind(torch_pass, tx, tw, tg), sync, want, _gamma(terms) * size)


@dataclass(frozen=True)
class Result:
    problem: Problem  # not its Case: the operands and references are let go once tuned
    tiles: list[TileConfig]
    seconds: list[float]  # each tile's median
    peer_seconds: float
    errors: dict[TileConfig, float]  # each checked tile's error as a share of the bound
    # torch's, today's tile's and the winner's medians, re-timed in interleaved rounds
    # (``retimed``): the winner's own sample above was picked as the least of several
    step_seconds: tuple[float, float, float] | None = None

    @property
    def winner(self) -> int | None:
        """The index of the fastest tile that passed its check (None: none did)."""
        passed = [i for i, tile in enumerate(self.tiles) if self.errors.get(tile, math.inf) <= 1]
        return min(passed, key=lambda i: self.seconds[i]) if passed else None

    @property
    def best(self) -> TileConfig:
        winner = self.winner
        if winner is None:
            raise ValueError(f"{self.problem.name}: no tile passed its check")
        return self.tiles[winner]

    @property
    def failed(self) -> list[TileConfig]:
        """The checked tiles over the bound (NaN included)."""
        return [tile for tile, error in self.errors.items() if not error <= 1]


def tune(case: Case, tiles: list[TileConfig], device: Device) -> Result:
    """Every tile of ``tiles`` and the peer, timed; then checked against float64 in order
    of speed until one passes (every tile, on problems of up to CHECK_ALL outputs), so a
    fast wrong tile gives way to the next correct one."""
    sides = [(case.peer, case.peer_sync),
             *((_bind(case.run, tile), device.queue.finish) for tile in tiles)]
    peer, *seconds = _seconds(sides)
    errors: dict[TileConfig, float] = {}
    for i in np.argsort(seconds, kind="stable"):
        errors[tiles[i]] = case.error(tiles[i])
        if errors[tiles[i]] <= 1 and case.want.size > CHECK_ALL:
            break
    return Result(case.problem, tiles, seconds, peer, errors)


def retimed(case: Case, result: Result, device: Device, rounds: int = 5) -> Result:
    """``result`` with torch, today's tile and the winner timed again, side by side in
    interleaved rounds."""
    sides = [(case.peer, case.peer_sync),
             *((_bind(case.run, tile), device.queue.finish)
               for tile in (result.tiles[0], result.best))]
    torch_s, today_s, best_s = _seconds(sides, rounds=rounds, interleave=True)
    return dataclasses.replace(result, step_seconds=(torch_s, today_s, best_s))


def _row(table: Table, result: Result) -> None:
    """One problem: the peer's rate, the winner's, every one's (a failing tile marked)."""
    problem = result.problem
    flops = (problem if isinstance(problem, Gemm) else problem.gemm).flops
    winner, failed = result.winner, result.failed
    every = " ".join(f"{t.name}:{flops / s / 1e9:.0f}" + ("(failed)" if t in failed else "")
                     for t, s in zip(result.tiles, result.seconds, strict=True))
    best = {} if winner is None else {
        "best tile": result.tiles[winner].name,
        "best GF/s": flops / result.seconds[winner] / 1e9,
        "err / bound": result.errors[result.tiles[winner]]}
    table.row(problem.name, {"torch GF/s": flops / result.peer_seconds / 1e9, **best,
                             "every candidate": every})


# -- the winners as MEASURED rows, in text and JSON -------------------------------------------


def measured_row(problem: Problem, tile: TileConfig) -> tuple[str, int, int, int, TileConfig]:
    return (*(problem if isinstance(problem, Gemm) else problem.gemm).key, tile)


def row_text(row: tuple[str, int, int, int, TileConfig]) -> str:
    layout, m, n, k, tile = row
    return f'("{layout}", {m}, {n}, {k}, T({_args(tile)})),'


def mismatched_rows(winners: Sequence[tuple[Problem, TileConfig]],
                    behind: matmul_tiles.Measured) -> list[str]:
    """Each problem whose tile by ``_nearest``, over the winners' rows in front of
    ``behind``, is not its own winner (two problems of one key with different winners,
    say): the rows would not reach what they were measured on."""
    table = tuple(measured_row(problem, tile) for problem, tile in winners) + behind
    wrong = []
    for problem, tile in winners:
        g = problem if isinstance(problem, Gemm) else problem.gemm
        own = tile if g.count == 1 else dataclasses.replace(tile, split_k=1)
        got = matmul_tiles._nearest(table, g.layout, g.m, g.n, g.k, g.count)
        if got != own:
            wrong.append(f"{problem.name}: nearest picks {got.name}, its winner is {own.name}")
    return wrong


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="",
                        help="tune the GEMMs of this kernel_profile.py model's training step "
                        "(gpt6, resnet18; gpt, resnet, cnn for a CPU dry run)")
    parser.add_argument("--candidates", type=int, default=0,
                        help=f"at most this many tiles a problem (default: every listed one; "
                        f"--model: {MAX_CANDIDATES}, today's first)")
    parser.add_argument("--quick", action="store_true", help="--candidates 1")
    parser.add_argument("--match", default="",
                        help="only the problems whose name holds one of these comma-separated "
                        "strings ('conv' for the convolution passes)")
    parser.add_argument("--rows-out", type=Path, help="write the winners' rows here as JSON")
    add_json_flag(parser)
    args = parser.parse_args(argv)
    limit = 1 if args.quick else args.candidates
    device = manager.default("auto")
    assert torch is not None, "the peer is torch"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    where, _ = _peer_device()
    peer = f"torch {torch.__version__} on " + (
        torch.cuda.get_device_name() if where.type == "cuda" else "the CPU")
    report = Report("matmul tile sweep", f"{device.name}, {device.compute_units} compute units",
                    args.json, peer=peer, model=args.model or None)
    launches: collections.Counter[Problem] = collections.Counter()
    if args.model:
        launches = model_problems(args.model, device)
        units = device.compute_units
        work = [(p, shape_candidates(g, units, gemm.choose_tile(device.name, units, g.layout,
                                                                g.m, g.n, g.k, g.count),
                                     limit or MAX_CANDIDATES))
                for p in launches for g in [p if isinstance(p, Gemm) else p.gemm]]
        report.note("GEMM problems in one step", len(work))
    else:
        work = [(p, tiles[:limit] if limit else tiles) for p, tiles in PROBLEMS]
    matches = args.match.split(",")
    work = [(p, tiles) for p, tiles in work if any(part in p.name for part in matches)]
    table = report.table("GFLOP/s of torch and of the best candidate tile",
                         ["torch GF/s", "best tile", "best GF/s", "err / bound",
                          "every candidate"], ratios=[("best GF/s", "torch GF/s")])
    rng = np.random.default_rng(0)
    results = []
    for problem, tiles in work:
        case = make_case(problem, device, rng)
        result = tune(case, tiles, device)
        if launches and result.winner is not None:
            result = retimed(case, result, device)
        del case  # its operands and float64 references: GPT's are 270 MB each
        _row(table, result)
        results.append(result)
    wrong = [f"{r.problem.name}: {t.name} error {r.errors[t]:.3g} of the bound"
             for r in results for t in r.failed]
    wrong += [f"{r.problem.name}: no tile passed" for r in results if r.winner is None]
    good = [r for r in results if r.winner is not None]
    if launches:
        _step_table(report, good, launches)
    winners = [(r.problem, r.best) for r in good]
    rows: list[tuple[str, int, int, int, TileConfig]] = []
    for problem, tile in winners:
        if (row := measured_row(problem, tile)) not in rows:
            rows.append(row)
    print("winners (layout, M, N, K, tile):")
    print("\n".join(row_text(row) for row in rows))
    key = measured_key(device.name)
    wrong += mismatched_rows(winners, matmul_tiles.MEASURED.get(key, ()))
    report.note("nearest-match check", "every row picked for its own problem" if not wrong
                else "; ".join(wrong))
    if args.rows_out:
        write_rows(args.rows_out, key, tuple(rows))
        report.note("rows written", f"{args.rows_out} ({len(rows)} rows for {key!r})")
    report.finish()
    if wrong:
        sys.exit(1)


def _step_table(report: Report, results: Sequence[Result],
                launches: collections.Counter[Problem]) -> None:
    """Each problem's time in one step (launches x median) at torch's op, today's tile
    and the winner, re-timed side by side (``retimed``), and their sums."""
    table = report.table("GEMM time per training step, ms (launches x median, interleaved)",
                         ["launches", "torch", "today", "best", "today's tile"],
                         ratios=[("today", "torch"), ("best", "torch"), ("best", "today")])
    sums = collections.Counter[str]()
    for r in results:
        assert r.step_seconds is not None, "main re-times every winner of a model's step"
        cells = {name: launches[r.problem] * s * 1e3
                 for name, s in zip(("torch", "today", "best"), r.step_seconds, strict=True)}
        sums.update(cells)
        table.row(r.problem.name, {**cells, "launches": launches[r.problem],
                                        "today's tile": r.tiles[0].name})
    table.row("sum", {**sums, "launches": sum(launches[r.problem] for r in results)})


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


def _seconds(sides: list[Contender], rounds: int = 3, interleave: bool = False) -> list[float]:
    """Median seconds per call of each side over ``rounds`` samples (by default each
    side in a whole turn: one kernel build warm at a time)."""
    timings = time_contenders({str(i): side for i, side in enumerate(sides)},
                              rounds=rounds, warmup=1, interleave=interleave)
    return [timing.median for timing in timings.values()]


def _args(tile: TileConfig) -> str:
    fields = [tile.bm, tile.bn, tile.bk, tile.tm, tile.tn]
    fields += [tile.split_k] if tile.split_k > 1 else []
    keywords = (", swizzle=True" if tile.swizzle else "") + (
        f", k_slices={tile.k_slices}" if tile.k_slices > 1 else "") + (
        ", pipelined=True" if tile.pipelined else "")
    return ", ".join(map(str, fields)) + keywords


if __name__ == "__main__":
    main()
