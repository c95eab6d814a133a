"""A captured call as a replayable program: kernels with their arguments set once.

Every launch gets a kernel object of its own, with all its arguments set when
the program is built. A replay then sets only what changed since the last one
(a Tensor argument given in another buffer, a ``Live`` argument that re-reads
another value) and enqueues. Host work the capture recorded (an optimizer
counting its steps) runs again at its place. The queue is held shut while a
replay enqueues (``Program.hold``), so that host work and the ``Live`` reads
must not wait for the device; none does (a step count, a check's
registration, the random generator's offset).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pyopencl as cl

from netcl.core.device import Device
from netcl.core.tensor import launch
from netcl.core.tensor.launch import Live
from netcl.core.tensor.launch_info import ElementwiseLaunch, ReductionLaunch
from netcl.jit import fusion
from netcl.jit.codegen import fused_kernel, prologue


@dataclass
class Launch:
    """One captured kernel launch, as the tensor layer's launch path made it."""

    kernel: cl.Kernel
    global_size: tuple[int, ...]
    local_size: tuple[int, ...] | None
    args: tuple[Any, ...]
    about: ElementwiseLaunch | ReductionLaunch | None = None


@dataclass
class _LiveSlot:
    """Argument ``index``, re-read from ``live`` at every replay; ``last`` is the value it
    was last set to, so an unchanged one is not set again."""

    index: int
    live: Live
    last: Any = None


@dataclass
class _Step:
    kernel: cl.Kernel
    global_size: tuple[int, ...]
    local_size: tuple[int, ...] | None
    lives: list[_LiveSlot] = field(default_factory=list)


@dataclass
class Program:
    """What one replay enqueues, in order: kernel launches and recorded host work."""

    queue: cl.CommandQueue
    steps: list[_Step | Callable[[], None]]
    launches: int
    # Every buffer the kernels were given: a kernel argument does not keep a pooled
    # buffer from going back to its pool, so the program does.
    buffers: list[Any]
    #: Per Tensor argument, the (kernel, argument index) pairs its buffer is set in.
    slots: list[list[tuple[cl.Kernel, int]]]
    #: Whether a replay enqueues with the queue held shut (:func:`launch.held`): NVIDIA's
    #: OpenCL takes ~4 us a launch so against ~9.5 into a running queue, while the previous
    #: replay keeps the device busy (H200: 0.90 of the step's time, half its host time); on
    #: PoCL it changes nothing measurable. Off only to measure that (jit_guard_ab.py).
    hold: bool = True
    #: The buffers those slots hold now (held, so an identity test cannot be fooled by a
    #: freed buffer's id reused): a replay given the same ones sets nothing.
    bound: list[Any] = field(default_factory=list)

    def run(self, buffers: Sequence[Any]) -> None:
        """Enqueue everything, with ``buffers`` (the Tensor arguments') swapped in."""
        self._bind(buffers)
        if self.hold:
            with launch.held(self.queue):
                self._enqueue()
        else:
            self._enqueue()

    def _enqueue(self) -> None:
        queue = self.queue
        for step in self.steps:
            if not isinstance(step, _Step):
                step()
                continue
            if step.lives:
                changed: list[Any] = []
                for slot in step.lives:
                    value = slot.live.read()
                    if value != slot.last:
                        changed += (slot.index, value)
                        slot.last = value
                if changed:
                    launch.set_args(step.kernel, (), tuple(changed))
            launch.enqueue_set(queue, step.kernel, step.global_size, step.local_size)

    def _bind(self, buffers: Sequence[Any]) -> None:
        """Set each of ``buffers`` in its slots, unless they hold it already."""
        bound = self.bound
        # Believed bound again only once every slot is set: a set that fails part-way
        # leaves some kernels holding the new buffers, which the next replay must reset.
        self.bound = []
        for i, buffer in enumerate(buffers):
            if i < len(bound) and bound[i] is buffer:
                continue
            for kernel, index in self.slots[i]:
                launch.set_args(kernel, (index, buffer), ())
        self.bound = list(buffers)


def build(
    device: Device,
    recorded: Sequence[Launch | Callable[[], None]],
    inputs: Sequence[Any],
    live: Callable[[Any], bool],
    fuse: bool,
) -> Program:
    """The program replaying ``recorded``, where buffers in ``inputs`` become Tensor
    argument slots; with ``fuse``, elementwise runs become one generated kernel each."""
    items = list(recorded)
    if fuse:
        items = _fused(device, items, live)
    input_index = {id(buffer): i for i, buffer in enumerate(inputs)}
    slots: list[list[tuple[cl.Kernel, int]]] = [[] for _ in inputs]
    steps: list[_Step | Callable[[], None]] = []
    buffers: list[Any] = []
    for item in items:
        if not isinstance(item, Launch):
            steps.append(item)
            continue
        # A kernel object of its own, so its arguments stay set between replays.
        program = cast(cl.Program, item.kernel.get_info(cl.kernel_info.PROGRAM))
        kernel = cl.Kernel(program, item.kernel.function_name)
        step = _Step(kernel, item.global_size, item.local_size)
        memory: list[Any] = []
        values: list[Any] = []
        for index, arg in enumerate(item.args):
            if isinstance(arg, Live):
                step.lives.append(_LiveSlot(index, arg))
            elif id(arg) in input_index:
                slots[input_index[id(arg)]].append((kernel, index))
            elif isinstance(arg, cl.MemoryObjectHolder) or arg is None:
                memory += (index, arg)
                buffers.append(arg)
            else:
                values += (index, arg)
        launch.set_args(kernel, tuple(memory), tuple(values))
        steps.append(step)
    launches = sum(isinstance(s, _Step) for s in steps)
    return Program(device.queue, steps, launches, buffers, slots)


def _fused(
    device: Device, items: list[Launch | Callable[[], None]], live: Callable[[Any], bool]
) -> list[Launch | Callable[[], None]]:
    """``items`` with each fusable run of launches replaced by one fused launch (host work
    touches no buffer and fuses with nothing, so a run never spans it)."""
    entries = [(item.args, item.about) if isinstance(item, Launch) else None
               for item in items]
    order = fusion.reorder(entries)
    items = [items[k] for k in order]
    pairs = [entries[k] for k in order]
    out: list[Launch | Callable[[], None]] = []
    done = 0
    for run in fusion.runs(pairs, live, cpu=device.type == "cpu"):
        out.extend(items[done:run.start])
        if run.reduction is None:
            source, args, (global_size, local_size) = fused_kernel(run.members, device)
            kernel = device.kernels.kernel_from_source(source, "fused", origin="<netcl.jit fused>")
            out.append(Launch(kernel, global_size, local_size, tuple(args)))
        else:
            reduce_launch = items[run.stop - 1]
            assert isinstance(reduce_launch, Launch)
            out.append(_with_prologue(device, reduce_launch, run))
        done = run.stop
    out.extend(items[done:])
    return out


def _with_prologue(device: Device, launch: Launch, run: fusion.Run) -> Launch:
    """``launch`` (a reduction) rebuilt to compute ``run``'s members where it loads its input.

    When the last member's store is left out, the input argument is never read, so
    the reduction's output buffer fills the slot and the input's memory is let go.
    """
    reduction = run.reduction
    assert reduction is not None
    source, params, call, extra = prologue(run.members, reduction.load_type)
    defines = {
        **reduction.defines,
        "LOAD(i)": f"prologue((i) - in_offset{call})",
        "EXTRA_PARAMS": params,
    }
    text = _sources.get(reduction.file)
    if text is None:
        text = _sources[reduction.file] = reduction.file.read_text()
    kernel = device.kernels.kernel_from_source(
        source + text, launch.kernel.function_name, defines, origin=f"<netcl.jit {reduction.file}>"
    )
    args = list(launch.args)
    if not run.members[-1].store:
        args[reduction.input_arg] = next(
            a for a in args
            if isinstance(a, cl.MemoryObjectHolder) and a is not reduction.input.buffer
        )
    return Launch(kernel, launch.global_size, launch.local_size, (*args, *extra))


_sources: dict[Path, str] = {}
