"""Host cost of one op and time of one training step: netcl against its peers, in one run.

1. ``a + a`` on a 4x4 float32 tensor, many calls and one sync at the end: the host
   cost of netcl's eager launch path, against a raw pyopencl launch of the very
   kernel netcl enqueues (its arguments set once, then ``enqueue_nd_range_kernel``
   alone). Then the proof that nothing waits on the device: the queue is held
   shut by an unfinished user event while netcl runs the ops (and, below, whole
   training steps); they return with the device still held, so none of them waited.
2. A training step (forward, cross-entropy, backward, Adam, zero_grad) of MLPs,
   netcl against torch eager on the same device, as a ratio: netcl eager, and
   the same step under ``netcl.jit.jit`` (timed calls replay the capture).
3. Kernel launches per replayed step of the jitted step, without and with
   elementwise fusion, for both MLPs and a small CNN.

    python tools/bench/train_step.py                 # CPU: PoCL against torch CPU
    NETCL_DEVICE=gpu python tools/bench/train_step.py --device gpu   # GPU: against torch CUDA

Contenders are functions that build a model and return (one step, wait for the
device); a row of the table is a model, a column a contender, so another
contender (a jitted step, say) is one more entry in CONTENDERS. Samples are
taken in turns (one sample of each contender, then the next round) and the
median is reported, so a neighbour's load on a shared machine falls on all.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyopencl as cl
import torch

import netcl.autograd as ag
from netcl.core.device import Device, manager
from netcl.core.tensor import Tensor, from_numpy, manual_seed
from netcl.core.tensor.launch import observing
from netcl.jit import jit
from netcl.nn import Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential, cross_entropy
from netcl.optim import Adam

Step = tuple[Callable[[], None], Callable[[], None]]  # (one step, wait for the device)


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


MODELS = {
    "cpu": [MLP((784, 1024, 1024, 10), 256), MLP((64, 256, 10), 64)],
    "gpu": [MLP((784, 4096, 4096, 4096, 4096, 10), 1024), MLP((784, 1024, 1024, 10), 256)],
}


# -- contenders: each builds its model and returns (step, sync) -----------------------------


def adam_step(model: Sequential, optimizer: Adam, x: Tensor, y: Tensor) -> Callable[[], None]:
    """One eager training step of ``model`` on the batch ``(x, y)``: forward, backward, Adam."""

    def step() -> None:
        with ag.Tape() as tape:
            loss = cross_entropy(model(x), y)
        tape.backward(loss)
        optimizer.step()
        optimizer.zero_grad()

    return step


def netcl_eager(spec: MLP, device: Device) -> Step:
    manual_seed(0)
    layers: list[Any] = []
    for i, (n_in, n_out) in enumerate(zip(spec.widths, spec.widths[1:], strict=False)):
        layers += [Linear(device, n_in, n_out)] + ([ReLU()] if i < len(spec.widths) - 2 else [])
    model = Sequential(*layers)
    optimizer = Adam(model.parameters(), lr=1e-3)
    x_host, y_host = spec.data()
    x, y = from_numpy(x_host, device), from_numpy(y_host, device)

    return adam_step(model, optimizer, x, y), device.synchronize


def torch_eager(spec: MLP, device: Device) -> Step:
    torch.manual_seed(0)
    where = torch.device("cuda" if device.type == "gpu" else "cpu")
    layers: list[torch.nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(spec.widths, spec.widths[1:], strict=False)):
        layers.append(torch.nn.Linear(n_in, n_out))
        if i < len(spec.widths) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers).to(where)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x_host, y_host = spec.data()
    x, y = torch.from_numpy(x_host).to(where), torch.from_numpy(y_host).to(where)

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    def sync() -> None:
        if where.type == "cuda":
            torch.cuda.synchronize()

    return step, sync


def netcl_jit(spec: MLP, device: Device, fuse: bool = True) -> Step:
    """netcl's step under ``netcl.jit.jit``: the warm-up's first two calls run eagerly (the
    second is captured), every timed call replays."""
    step, sync = netcl_eager(spec, device)
    return jit(step, fuse=fuse), sync


CONTENDERS: dict[str, Callable[[MLP, Device], Step]] = {
    "netcl": netcl_eager,
    "netcl jit": netcl_jit,
    "torch": torch_eager,
}
PEER = "torch"


# -- timing ---------------------------------------------------------------------------------


def time_in_turns(timers: dict[str, Step], sample_s: float, rounds: int) -> dict[str, float]:
    """Median seconds per call of each timer over ``rounds`` samples of about ``sample_s``
    seconds each (the same span for every timer, so a neighbour's load or a scheduler
    time slice weighs on each alike), one sample of each timer per round; each sample
    ends with its sync."""
    calls: dict[str, int] = {}
    for name, (step, sync) in timers.items():  # warm up (builds, pool, plans), then size
        for _ in range(3):
            step()
        sync()
        start, count = time.perf_counter(), 0
        while count < 3 or time.perf_counter() - start < sample_s / 4:
            step()
            count += 1
        sync()
        calls[name] = max(1, round(count * sample_s / (time.perf_counter() - start)))
    samples: dict[str, list[float]] = {name: [] for name in timers}
    for _ in range(rounds):
        for name, (step, sync) in timers.items():
            start = time.perf_counter()
            for _ in range(calls[name]):
                step()
            sync()
            samples[name].append((time.perf_counter() - start) / calls[name])
    return {name: statistics.median(values) for name, values in samples.items()}


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


def thread_cpu_per_call(step: Step, calls: int, rounds: int) -> float:
    """Median main-thread CPU seconds per call (``time.thread_time``): the host cost
    itself, which other processes' load does not inflate as it does wall time."""
    run, sync = step
    samples = []
    for _ in range(rounds):
        sync()
        start = time.thread_time()
        for _ in range(calls):
            run()
        samples.append((time.thread_time() - start) / calls)
    sync()
    return statistics.median(samples)


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
    parser.add_argument("--torch-threads", type=int, default=0,
                        help="torch's intra-op threads (0: its default); 1 is torch's best "
                             "on a CPU that other jobs share")
    parser.add_argument("--sample", type=float, default=0.05, help="seconds per small-op sample")
    parser.add_argument("--step-sample", type=float, default=0.3,
                        help="seconds per training-step sample")
    args = parser.parse_args(argv)
    device = manager.default(args.device)
    torch.set_num_threads(args.torch_threads or torch.get_num_threads())
    print(f"device: {device.name} ({device.type}); torch {torch.__version__}")

    op_timers = small_op_timers(device)
    op = time_in_turns(op_timers, args.sample, args.rounds)
    netcl_us, raw_us = op["netcl a + a"] * 1e6, op["raw pyopencl"] * 1e6
    print("\nsmall op: 4x4 float32 a + a, one sync per sample")
    print("| netcl a + a | raw pyopencl launch | netcl / raw |\n|---:|---:|---:|")
    print(f"| {netcl_us:.2f} us | {raw_us:.2f} us | **{netcl_us / raw_us:.2f}** |")
    cpu = {name: thread_cpu_per_call(t, 2000, args.rounds) * 1e6 for name, t in op_timers.items()}
    print("main-thread CPU time per call: " + ", ".join(f"{n} {v:.2f} us" for n, v in cpu.items()))
    a = from_numpy(np.ones((4, 4), np.float32), device)
    ok = runs_without_waiting(device, lambda: [a + a for _ in range(2000)] and None)
    print(f"2000 adds with the queue held shut: {'returned' if ok else 'WAITED'}")

    print(f"\ntraining step (forward, backward, Adam, zero_grad), median of {args.rounds}")
    names = list(CONTENDERS)
    others = [n for n in names if n != PEER]
    header = " | ".join(f"{n} ms" for n in names)
    ratios = " | ".join(f"{n} / {PEER}" for n in others)
    print(f"| model | {header} | {ratios} |")
    print("|---|" + "---:|" * (len(names) + len(others)))
    for spec in MODELS[args.device]:
        timers = {name: build(spec, device) for name, build in CONTENDERS.items()}
        times = time_in_turns(timers, args.step_sample, args.rounds)
        cells = " | ".join(f"{times[n] * 1e3:.2f}" for n in names)
        rel = " | ".join(f"**{times[n] / times[PEER]:.2f}**" for n in others)
        print(f"| {spec} | {cells} | {rel} |")
    step, _ = netcl_eager(MODELS[args.device][-1], device)
    step()
    device.synchronize()
    ok = runs_without_waiting(device, lambda: [step() for _ in range(3)] and None)
    print(f"3 netcl training steps with the queue held shut: {'returned' if ok else 'WAITED'}")
    print_launches(device, MODELS[args.device])


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


def print_launches(device: Device, specs: Sequence[MLP]) -> None:
    """Launches one replay of the jitted step enqueues, unfused and fused."""
    print("\nkernel launches per replayed training step (netcl.jit)")
    print("| model | unfused | fused | fewer |\n|---|---:|---:|---:|")
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
        fewer = 1 - counts.fused / counts.unfused
        print(f"| {name} | {counts.unfused} | {counts.fused} | **{fewer:.0%}** |")


if __name__ == "__main__":
    main()

