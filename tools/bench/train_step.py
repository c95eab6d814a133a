"""Host cost of one op and time of one training step: netcl against its peers, in one run.

1. ``a + a`` on a 4x4 float32 tensor, many calls and one sync at the end: the host
   cost of netcl's eager launch path, against a raw pyopencl launch of the very
   kernel netcl enqueues (its arguments set once, then ``enqueue_nd_range_kernel``
   alone). Then the proof that nothing waits on the device: the queue is held
   shut by an unfinished user event while netcl runs the ops (and, below, whole
   training steps); they return with the device still held, so none of them waited.
2. A training step (forward, cross-entropy, backward, Adam, zero_grad) of MLPs,
   (on the CPU) the digits CNN of issue 30, and (on the GPU) issue 29's GPT (6 layers,
   d512, 8 heads, context 256, batch 32) and ResNet-18 on 32x32 images (batch 128,
   SGD with momentum 0.9; TF32 off for torch's cuDNN and cuBLAS), netcl against torch
   eager on the same device, as a ratio: netcl eager, and the same step under
   ``netcl.jit.jit`` (timed calls replay the capture).
3. Kernel launches per replayed step of the jitted step, without and with
   elementwise fusion, for both MLPs and a small CNN.
4. The guards' host cost: main-thread CPU time of the checks a replay makes before
   it runs (``Jitted.key``: signature, parameters, grads, flags, optimizer state),
   against the whole replayed call's.

    python tools/bench/train_step.py --threads 2     # CPU: PoCL against torch CPU
    NETCL_DEVICE=gpu python tools/bench/train_step.py --device gpu   # GPU: against torch CUDA

On the CPU, ``--threads N`` gives PoCL and torch the same N threads
(``harness.set_threads``: ``POCL_MAX_PTHREAD_COUNT`` and ``torch.set_num_threads``;
0 leaves both at every core); a row at 1 thread and one at all cores are two
runs. The provenance line gives both counts and the load average at the start.

Contenders are functions that build a model and return (one step, wait for the
device); a row of the table is a model, a column a contender, so another
contender (a jitted step, say) is one more entry in CONTENDERS. Timing and tables
are tools/bench/harness.py's: samples taken in turns (one sample of each
contender, then the next round) and the median reported, so a neighbour's load
on a shared machine falls on all; ``--json`` adds the tables as one JSON line.
"""

from __future__ import annotations

import argparse
import functools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import harness
import numpy as np
import pyopencl as cl
import torch
from harness import Contender, Report, add_json_flag, host_cost, no_sync, time_contenders

import netcl.autograd as ag
from netcl.core.device import Device, manager
from netcl.core.tensor import Tensor, from_numpy, manual_seed, ops
from netcl.core.tensor.launch import observing
from netcl.jit import jit
from netcl.nn import (
    AdaptiveAvgPool2d,
    BatchNorm2d,
    Conv2d,
    Embedding,
    Flatten,
    LayerNorm,
    Linear,
    MaxPool2d,
    Module,
    ModuleList,
    ReLU,
    Sequential,
    TransformerEncoderLayer,
    cross_entropy,
)
from netcl.optim import SGD, Adam, Optimizer

Step = Contender  # (one step, wait for the device)


@dataclass(frozen=True)
class MLP:
    """Linear layers of ``widths`` with ReLU between, on batches of ``batch``."""

    widths: tuple[int, ...]
    batch: int

    def __str__(self) -> str:
        inner = self.widths[1:-1]
        hidden = "-".join(map(str, inner))
        if len(inner) > 1 and len(set(inner)) == 1:
            hidden = f"{inner[0]}x{len(inner)}"
        return f"{self.widths[0]}-{hidden}-{self.widths[-1]} b{self.batch}"

    def data(self) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((self.batch, self.widths[0])).astype(np.float32)
        y = rng.integers(0, self.widths[-1], self.batch).astype(np.int64)
        return x, y

    def netcl_model(self, device: Device) -> Module:
        layers: list[Any] = []
        pairs = list(zip(self.widths, self.widths[1:], strict=False))
        for i, (n_in, n_out) in enumerate(pairs):
            layers += [Linear(device, n_in, n_out)] + ([ReLU()] if i < len(pairs) - 1 else [])
        return Sequential(*layers)

    def torch_model(self) -> torch.nn.Module:
        layers: list[torch.nn.Module] = []
        pairs = list(zip(self.widths, self.widths[1:], strict=False))
        for i, (n_in, n_out) in enumerate(pairs):
            layers.append(torch.nn.Linear(n_in, n_out))
            if i < len(pairs) - 1:
                layers.append(torch.nn.ReLU())
        return torch.nn.Sequential(*layers)


@dataclass(frozen=True)
class DigitsCNN:
    """The two-conv CNN of issue 30 on 28x28 one-channel images: Conv2d(1, c1, 3), ReLU,
    MaxPool2d(2), Conv2d(c1, c2, 3), ReLU, MaxPool2d(2), Flatten, Linear(c2*5*5, 10)."""

    channels: tuple[int, int]
    batch: int

    def __str__(self) -> str:
        c1, c2 = self.channels
        return f"CNN conv3x3 1-{c1}-{c2} pool2 linear 28x28 b{self.batch}"

    def data(self) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((self.batch, 1, 28, 28)).astype(np.float32)
        return x, rng.integers(0, 10, self.batch).astype(np.int64)

    def netcl_model(self, device: Device) -> Module:
        c1, c2 = self.channels
        return Sequential(Conv2d(device, 1, c1, 3), ReLU(), MaxPool2d(2),
                          Conv2d(device, c1, c2, 3), ReLU(), MaxPool2d(2), Flatten(),
                          Linear(device, c2 * 5 * 5, 10))

    def torch_model(self) -> torch.nn.Module:
        c1, c2 = self.channels
        nn = torch.nn
        return nn.Sequential(nn.Conv2d(1, c1, 3), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(c1, c2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(c2 * 5 * 5, 10))


class _NetclResidual(Module):
    """relu(bn(conv(relu(bn(conv(x))))) + x), channels kept: a ResNet basic block."""

    def __init__(self, device: Device, channels: int) -> None:
        super().__init__()
        self.body = Sequential(Conv2d(device, channels, channels, 3, padding=1, bias=False),
                               BatchNorm2d(device, channels), ReLU(),
                               Conv2d(device, channels, channels, 3, padding=1, bias=False),
                               BatchNorm2d(device, channels))

    def forward(self, x: Tensor) -> Tensor:
        return ops.relu(ops.add(self.body(x), x))


class _TorchResidual(torch.nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        nn = torch.nn
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels), nn.ReLU(),
                                  nn.Conv2d(channels, channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + x)


@dataclass(frozen=True)
class SmallResNet:
    """A ResNet-style CNN on mnist5k's 28x28 one-channel images: a 3x3 stem to ``width``
    channels (BatchNorm, ReLU), a residual block, MaxPool2d(2), a 3x3 conv to twice the
    width (BatchNorm, ReLU), a residual block, global average pooling, Linear to 10."""

    width: int
    batch: int

    def __str__(self) -> str:
        return f"ResNet-style {self.width}-{2 * self.width} ch, 2 blocks, 28x28 b{self.batch}"

    def data(self) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        return DigitsCNN((0, 0), self.batch).data()

    def netcl_model(self, device: Device) -> Module:
        w = self.width
        return Sequential(
            Conv2d(device, 1, w, 3, padding=1, bias=False), BatchNorm2d(device, w), ReLU(),
            _NetclResidual(device, w), MaxPool2d(2),
            Conv2d(device, w, 2 * w, 3, padding=1, bias=False), BatchNorm2d(device, 2 * w),
            ReLU(), _NetclResidual(device, 2 * w), AdaptiveAvgPool2d(1), Flatten(),
            Linear(device, 2 * w, 10))

    def torch_model(self) -> torch.nn.Module:
        w, nn = self.width, torch.nn
        return nn.Sequential(
            nn.Conv2d(1, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
            _TorchResidual(w), nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(),
            _TorchResidual(2 * w), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * w, 10))


class _NetclBasicBlock(Module):
    """torchvision's BasicBlock: two 3x3 convs with BatchNorm, the shortcut a strided 1x1
    conv with BatchNorm where the shape changes."""

    def __init__(self, device: Device, n_in: int, n_out: int, stride: int) -> None:
        super().__init__()
        self.body = Sequential(
            Conv2d(device, n_in, n_out, 3, stride=stride, padding=1, bias=False),
            BatchNorm2d(device, n_out), ReLU(),
            Conv2d(device, n_out, n_out, 3, padding=1, bias=False), BatchNorm2d(device, n_out))
        self.shortcut = Sequential()
        if stride != 1 or n_in != n_out:
            self.shortcut = Sequential(Conv2d(device, n_in, n_out, 1, stride=stride, bias=False),
                                       BatchNorm2d(device, n_out))

    def forward(self, x: Tensor) -> Tensor:
        return ops.relu(ops.add(self.body(x), self.shortcut(x)))


class _TorchBasicBlock(torch.nn.Module):
    def __init__(self, n_in: int, n_out: int, stride: int) -> None:
        super().__init__()
        nn = torch.nn
        self.body = nn.Sequential(
            nn.Conv2d(n_in, n_out, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(n_out), nn.ReLU(),
            nn.Conv2d(n_out, n_out, 3, padding=1, bias=False), nn.BatchNorm2d(n_out))
        self.shortcut = nn.Sequential()
        if stride != 1 or n_in != n_out:
            self.shortcut = nn.Sequential(nn.Conv2d(n_in, n_out, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


@dataclass(frozen=True)
class ResNet18:
    """ResNet-18 shaped for 32x32 RGB images (the CIFAR form): a 3x3 stem to 64 channels,
    four stages of two BasicBlocks (64, 128/2, 256/2, 512/2), global average pooling,
    Linear to 10; trained with SGD, momentum 0.9."""

    batch: int
    STAGES: ClassVar[tuple[tuple[int, int, int], ...]] = (
        (64, 64, 1), (64, 128, 2), (128, 256, 2), (256, 512, 2))

    def __str__(self) -> str:
        return f"ResNet-18 32x32 b{self.batch} SGD-momentum"

    def data(self) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((self.batch, 3, 32, 32)).astype(np.float32)
        return x, rng.integers(0, 10, self.batch).astype(np.int64)

    def netcl_model(self, device: Device) -> Module:
        layers: list[Module] = [Conv2d(device, 3, 64, 3, padding=1, bias=False),
                                BatchNorm2d(device, 64), ReLU()]
        for n_in, n_out, stride in self.STAGES:
            layers += [_NetclBasicBlock(device, n_in, n_out, stride),
                       _NetclBasicBlock(device, n_out, n_out, 1)]
        return Sequential(*layers, AdaptiveAvgPool2d(1), Flatten(), Linear(device, 512, 10))

    def torch_model(self) -> torch.nn.Module:
        nn = torch.nn
        layers: list[nn.Module] = [nn.Conv2d(3, 64, 3, padding=1, bias=False),
                                   nn.BatchNorm2d(64), nn.ReLU()]
        for n_in, n_out, stride in self.STAGES:
            layers += [_TorchBasicBlock(n_in, n_out, stride), _TorchBasicBlock(n_out, n_out, 1)]
        return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 10))


class _NetclGPT(Module):
    def __init__(self, device: Device, spec: TinyGPT) -> None:
        super().__init__()
        d = spec.d_model
        self.embed = Embedding(device, spec.vocab, d)
        self.position = Embedding(device, spec.context, d)
        self.blocks = ModuleList([
            TransformerEncoderLayer(device, d, spec.heads, 4 * d, dropout=0.0, batch_first=True,
                                    norm_first=True) for _ in range(spec.layers)])
        self.norm = LayerNorm(device, d)
        self.head = Linear(device, d, spec.vocab)
        self.positions = from_numpy(np.arange(spec.context, dtype=np.int64), device)

    def forward(self, tokens: Tensor) -> Tensor:
        x = ops.add(self.embed(tokens), self.position(self.positions))
        for block in self.blocks:
            x = block(x, is_causal=True)
        logits: Tensor = self.head(self.norm(x))
        return ops.reshape(logits, (-1, logits.shape[-1]))


class _TorchGPT(torch.nn.Module):
    def __init__(self, spec: TinyGPT) -> None:
        super().__init__()
        d, nn = spec.d_model, torch.nn
        self.embed = nn.Embedding(spec.vocab, d)
        self.position = nn.Embedding(spec.context, d)
        self.blocks = nn.ModuleList([
            nn.TransformerEncoderLayer(d, spec.heads, 4 * d, dropout=0.0, batch_first=True,
                                       norm_first=True) for _ in range(spec.layers)])
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, spec.vocab)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(spec.context))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.embed(tokens) + self.position(positions)
        for block in self.blocks:
            x = block(x, src_mask=self.mask, is_causal=True)
        logits: torch.Tensor = self.head(self.norm(x))
        return logits.reshape(-1, logits.shape[-1])


@dataclass(frozen=True)
class TinyGPT:
    """A character-level GPT: token and position embeddings, ``layers`` pre-norm causal
    TransformerEncoderLayers (feed-forward 4x, no dropout), LayerNorm, a Linear head;
    next-token cross-entropy over every position of ``batch`` sequences of ``context``."""

    layers: int
    d_model: int
    heads: int
    context: int
    vocab: int
    batch: int

    def __str__(self) -> str:
        return (f"tiny GPT {self.layers} layers d{self.d_model} h{self.heads} "
                f"ctx {self.context} b{self.batch}")

    def data(self) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        rng = np.random.default_rng(0)
        tokens = rng.integers(0, self.vocab, (self.batch, self.context + 1)).astype(np.int64)
        return tokens[:, :-1].copy(), tokens[:, 1:].reshape(-1).copy()

    def netcl_model(self, device: Device) -> Module:
        return _NetclGPT(device, self)

    def torch_model(self) -> torch.nn.Module:
        return _TorchGPT(self)


Spec = MLP | DigitsCNN | SmallResNet | TinyGPT | ResNet18
MODELS: dict[str, list[Spec]] = {
    "cpu": [DigitsCNN((32, 64), 64), SmallResNet(16, 64), TinyGPT(2, 64, 4, 32, 65, 32),
            MLP((784, 1024, 1024, 10), 256), MLP((64, 256, 10), 64)],
    "gpu": [TinyGPT(6, 512, 8, 256, 65, 32), ResNet18(128),
            MLP((784, 4096, 4096, 4096, 4096, 10), 1024), MLP((784, 1024, 1024, 10), 256)],
}


def netcl_optimizer(spec: Spec, model: Module) -> Optimizer:
    """The spec's optimizer: SGD with momentum for ResNet-18 (how it is trained), else Adam."""
    if isinstance(spec, ResNet18):
        return SGD(model.parameters(), lr=0.01, momentum=0.9)
    return Adam(model.parameters(), lr=1e-3)


def torch_optimizer(spec: Spec, model: torch.nn.Module) -> torch.optim.Optimizer:
    if isinstance(spec, ResNet18):
        return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    return torch.optim.Adam(model.parameters(), lr=1e-3)


# -- contenders: each builds its model and returns (step, sync) -----------------------------


def adam_step(model: Module, optimizer: Optimizer, x: Tensor, y: Tensor) -> Callable[[], None]:
    """One eager training step of ``model`` on the batch ``(x, y)``: forward, backward, and
    ``optimizer``'s step (Adam, as the name says, but for ResNet-18's SGD)."""

    def step() -> None:
        with ag.Tape() as tape:
            loss = cross_entropy(model(x), y)
        tape.backward(loss)
        optimizer.step()
        optimizer.zero_grad()

    return step


def netcl_eager(spec: Spec, device: Device) -> Step:
    manual_seed(0)
    model = spec.netcl_model(device)
    optimizer = netcl_optimizer(spec, model)
    x_host, y_host = spec.data()
    x, y = from_numpy(x_host, device), from_numpy(y_host, device)

    return adam_step(model, optimizer, x, y), device.synchronize


def torch_eager(spec: Spec, device: Device) -> Step:
    torch.manual_seed(0)
    where = torch.device("cuda" if device.type == "gpu" else "cpu")
    model = spec.torch_model().to(where)
    optimizer = torch_optimizer(spec, model)
    x_host, y_host = spec.data()
    x, y = torch.from_numpy(x_host).to(where), torch.from_numpy(y_host).to(where)

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    return step, torch.cuda.synchronize if where.type == "cuda" else no_sync


def netcl_jit(spec: Spec, device: Device, fuse: bool = True) -> Step:
    """netcl's step under ``netcl.jit.jit``: the warm-up's first two calls run eagerly (the
    second is captured), every timed call replays."""
    step, sync = netcl_eager(spec, device)
    return jit(step, fuse=fuse), sync


CONTENDERS: dict[str, Callable[[Spec, Device], Step]] = {
    "netcl": netcl_eager,
    "netcl jit": netcl_jit,
    "torch": torch_eager,
}
PEER = "torch"


def small_op_timers(device: Device) -> dict[str, Step]:
    """netcl's ``a + a`` and a raw enqueue of the kernel it launches, arguments set once."""
    a = from_numpy(np.arange(16, dtype=np.float32).reshape(4, 4), device)
    captured: list[tuple[cl.Kernel, tuple[int, ...], Any, Sequence[Any]]] = []

    class Capture:
        def launched(self, device: Device, kernel: cl.Kernel, global_size: tuple[int, ...],
                     local_size: tuple[int, ...] | None, args: Sequence[Any],
                     about: object) -> None:
            captured.append((kernel, global_size, local_size, args))

    with observing(Capture()):
        out = a + a
    kernel, global_size, local_size, args = captured[-1]
    raw_kernel = cl.Kernel(kernel.program, kernel.function_name)  # its own argument state
    for index, arg in enumerate(args):
        is_buffer = isinstance(arg, cl.MemoryObjectHolder)
        raw_kernel.set_arg(index, arg if is_buffer else np.asarray(arg).tobytes())
    queue = device.queue

    def raw() -> None:
        cl.enqueue_nd_range_kernel(queue, raw_kernel, global_size, local_size)

    def netcl_add() -> None:
        a + a

    del out
    sync = device.synchronize
    return {"netcl a + a": (netcl_add, sync), "raw pyopencl": (raw, sync)}


def runs_without_waiting(device: Device, work: Callable[[], None], timeout: float = 60.0) -> bool:
    """Whether ``work`` returns while the device's queue is held shut: an unfinished
    user event first in the queue, so any wait on the device inside ``work`` never ends."""
    gate = cl.UserEvent(device.context)
    cl.enqueue_barrier(device.queue, wait_for=[gate])
    done = threading.Event()

    def run() -> None:
        work()
        done.set()

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    returned = done.wait(timeout)
    gate.set_status(cl.command_execution_status.COMPLETE)
    worker.join()
    device.synchronize()
    return returned


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--rounds", type=int, default=7, help="samples per contender")
    harness.add_threads_flag(parser)
    parser.add_argument("--sample", type=float, default=0.05, help="seconds per small-op sample")
    parser.add_argument("--step-sample", type=float, default=0.3,
                        help="seconds per training-step sample")
    parser.add_argument("--only", default="",
                        help="only the models whose row name contains this text (steps, "
                             "launches and guard cost)")
    parser.add_argument("--steps-only", action="store_true",
                        help="the training-step table alone (a big model's guard-cost "
                        "table replays its step hundreds of times)")
    parser.add_argument("--tiles", type=Path,
                        help="matmul tile rows (JSON from matmul_tune.py --rows-out): the "
                        "step table times the jitted step with them in front of "
                        "matmul_tiles.MEASURED ('netcl jit tiles') beside today's ('netcl "
                        "jit') and torch; eager netcl is left out")
    add_json_flag(parser)
    args = parser.parse_args(argv)
    threads = harness.set_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = False  # both sides in full float32
    torch.backends.cudnn.allow_tf32 = False
    device = manager.default(args.device)
    report = Report("train step", f"{device.name} ({device.type})", args.json,
                    torch=torch.__version__, timing=f"median of {args.rounds} samples in turns",
                    threads=threads)

    if args.steps_only:
        time_steps(report, device, args)
        report.finish()
        return
    op_timers = small_op_timers(device)
    op = time_contenders(op_timers, sample_s=args.sample, rounds=args.rounds)
    table = report.table("small op: 4x4 float32 a + a, one sync per sample, us per call",
                         list(op_timers), ratios=[("netcl a + a", "raw pyopencl")])
    table.row("wall time", {name: timing.median * 1e6 for name, timing in op.items()})
    table.row("main-thread CPU time",
              {name: host_cost(t, 2000, args.rounds) * 1e6 for name, t in op_timers.items()})
    a = from_numpy(np.ones((4, 4), np.float32), device)
    ok = runs_without_waiting(device, lambda: [a + a for _ in range(2000)] and None)
    report.note("2000 adds with the queue held shut", "returned" if ok else "WAITED")

    specs = time_steps(report, device, args)
    step, _ = netcl_eager(MODELS[args.device][-1], device)
    step()
    device.synchronize()
    ok = runs_without_waiting(device, lambda: [step() for _ in range(3)] and None)
    report.note("3 netcl training steps with the queue held shut", "returned" if ok else "WAITED")
    print_launches(report, device, specs)
    print_guard_cost(report, device, specs, args.rounds)
    report.finish()


def time_steps(report: Report, device: Device, args: argparse.Namespace) -> list[Spec]:
    """The training-step table of the models ``--only`` picks; returns those models."""
    contenders = CONTENDERS if args.tiles is None else tiled_contenders(args.tiles, report)
    others = [n for n in contenders if n != PEER]
    ratios = [(n, PEER) for n in others] + [("netcl jit tiles", "netcl jit")] * (
        args.tiles is not None)
    table = report.table("training step (forward, backward, optimizer, zero_grad), ms",
                         list(contenders), ratios=ratios)
    specs = [m for m in MODELS[args.device] if args.only in str(m)]
    for spec in specs:
        timers = {name: build(spec, device) for name, build in contenders.items()}
        times = time_contenders(timers, sample_s=args.step_sample, rounds=args.rounds)
        table.row(str(spec), {name: timing.median * 1e3 for name, timing in times.items()})
    return specs


def tiled_contenders(path: Path, report: Report) -> dict[str, Callable[[Spec, Device], Step]]:
    """Today's jitted step, the same with ``path``'s tile rows in front of MEASURED (its
    capture, which picks the tiles, runs with them), and torch."""
    from tile_rows import TileRows  # tools/bench/tile_rows.py

    rows = TileRows.read(path)
    report.note("tiles", f"{len(rows.rows)} rows from {path} in front of MEASURED[{rows.key!r}]")

    def netcl_jit_tiles(spec: Spec, device: Device) -> Step:
        step, sync = netcl_jit(spec, device)
        return rows.wrap(step, device), sync

    return {"netcl jit": netcl_jit, "netcl jit tiles": netcl_jit_tiles, PEER: torch_eager}


def small_cnn(device: Device) -> Step:
    """Conv2d(1, 8, 3) + ReLU + MaxPool2d(2) + Linear on 28x28 images, batch 32, Adam."""
    manual_seed(0)
    model = Sequential(Conv2d(device, 1, 8, 3, padding=1), ReLU(), MaxPool2d(2), Flatten(),
                       Linear(device, 8 * 14 * 14, 10))
    optimizer = Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    x = from_numpy(rng.standard_normal((32, 1, 28, 28)).astype(np.float32), device)
    y = from_numpy(rng.integers(0, 10, 32), device)

    return adam_step(model, optimizer, x, y), device.synchronize


def print_launches(report: Report, device: Device, specs: Sequence[Spec]) -> None:
    """Launches one replay of the jitted step enqueues, unfused and fused."""
    table = report.table("kernel launches per replayed training step (netcl.jit)",
                         ["unfused", "fused"], ratios=[("fused", "unfused")])
    builders: list[tuple[str, Callable[[], Step]]] = [
        (str(spec), lambda spec=spec: netcl_eager(spec, device)) for spec in specs
    ]
    builders.append(("CNN conv3x3(8)-relu-maxpool-linear b32", lambda: small_cnn(device)))
    for name, build in builders:
        step, sync = build()
        jitted = jit(step)
        for _ in range(3):
            jitted()
        sync()
        counts = jitted.launches
        table.row(name, {"unfused": counts.unfused, "fused": counts.fused})


def print_guard_cost(report: Report, device: Device, specs: Sequence[Spec], rounds: int) -> None:
    """Main-thread CPU per call of a replay's checks alone and of the whole replayed step."""
    table = report.table("guard checks per replayed training step (netcl.jit), main-thread "
                         "CPU us per call", ["guards", "replayed call"],
                         ratios=[("guards", "replayed call")])
    for spec in specs:
        step, sync = netcl_eager(spec, device)
        jitted = jit(step)
        for _ in range(3):
            jitted()
        sync()
        check = functools.partial(jitted.key, (), {})
        guards = host_cost((check, sync), 500, rounds)
        call = host_cost((jitted, sync), 200, rounds)
        table.row(str(spec), {"guards": guards * 1e6, "replayed call": call * 1e6})


if __name__ == "__main__":
    main()
