"""The optimizer kernels: which variant a device gets, built once, launched over a Span.

Each kernel file (``adam.cl``, ``sgd.cl``, ``rmsprop.cl``, ``clip_grad.cl``) is
built with ``vector_io.cl`` in front of it. A variant is fixed by structural
defines only (parameter dtype, which state buffers exist, the device's Layout);
every hyperparameter is a kernel argument, so a scheduler changing lr never
builds anything.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyopencl as cl
import pyopencl.tools as cl_tools

from netcl.core.device import Device
from netcl.core.tensor import Tensor, dtypes, float32, full
from netcl.core.tensor.launch import Live, launch
from netcl.optim.functional.device_arrays import Span

KERNEL_DIR = Path(__file__).resolve().parent
# IEEE division and square root, as PyTorch's kernels compute them. OpenCL may
# otherwise use 2.5-ulp division (NVIDIA does); the step is memory-bound, so the
# exact forms cost nothing measurable.
BUILD_OPTIONS = ("-cl-fp32-correctly-rounded-divide-sqrt",)


@dataclass(frozen=True)
class Layout:
    """How elements map onto work-items: ``chunk`` contiguous elements each, ``vec`` at a time."""

    vec: int
    chunk: int

    def __post_init__(self) -> None:
        # A chunk made of whole vectors keeps every vector of an aligned operand aligned.
        if self.vec < 1 or self.chunk < 1 or self.chunk % self.vec:
            raise ValueError(
                f"Layout: chunk must be a positive multiple of vec; got vec={self.vec}, "
                f"chunk={self.chunk}"
            )


# GPU: one float4 per work-item, so a warp reads 512 contiguous bytes in 128-bit
# loads (coalesced); Adam over 100M floats on an H100 runs at the device's copy
# bandwidth this way, 7% faster than with one float per work-item
# (tools/bench/history/2026-11-25-to-29-optim-step.md).
# CPU (PoCL): each work-item walks a long contiguous chunk with float8 loads;
# measured ~4x faster than one element per work-item there.
LAYOUTS = {"gpu": Layout(vec=4, chunk=4), "cpu": Layout(vec=8, chunk=4096)}

# Tests (and benchmarks) may force a layout for a device type, e.g. the GPU one on PoCL.
layout_override: dict[str, Layout] = {}


def layout(device: Device) -> Layout:
    """The Layout for ``device``: by its type, unless ``layout_override`` names one."""
    kind = device.type
    return layout_override.get(kind) or LAYOUTS.get(kind) or LAYOUTS["gpu"]


@dataclass(frozen=True)
class _Build:
    """One variant of an optimizer kernel file: the device kernel cache's key for it."""

    param: str  # the parameters' storage C type
    shape: Layout
    flags: tuple[tuple[str, int], ...]

    def defines(self) -> dict[str, int]:
        return {
            **dict(self.flags),
            "PARAM_HALF": int(self.param == "half"),
            "PARAM_BF16": int(self.param == "ushort"),
            "VEC": self.shape.vec,
            "CHUNK": self.shape.chunk,
        }


_files: dict[str | tuple[str, ...], tuple[Path, ...]] = {}


def _sources(file: str | tuple[str, ...]) -> tuple[Path, ...]:
    """``file`` (or files, in order) with bfloat16.cl and vector_io.cl in front of it, as
    the kernel cache's source key."""
    paths = _files.get(file)
    if paths is None:
        files = (file,) if isinstance(file, str) else file
        paths = _files[file] = (dtypes.BFLOAT16_CL, KERNEL_DIR / "vector_io.cl",
                                *(KERNEL_DIR / f for f in files))
    return paths


def optimizer_kernel(
    device: Device,
    file: str | tuple[str, ...],
    name: str,
    param_dtype: np.dtype[Any],
    flags: Mapping[str, int],
    shape: Layout | None = None,
) -> tuple[cl.Kernel, Layout]:
    """Kernel ``name`` of ``file`` (beside this module; a tuple: files built as one, a
    kernel reusing another's macros) for parameters of ``param_dtype``,
    with ``flags`` defined, and the Layout it was built for (``shape``, or the device's).

    Found in the device's kernel cache by a small key (the file and the _Build), so the
    launch path of a step with many small parameters formats and hashes no source.
    """
    shape = shape or layout(device)
    build = _Build(dtypes.STORAGE_C_TYPE[param_dtype], shape, tuple(sorted(flags.items())))
    kernel = device.kernels.kernel(_sources(file), name, build, BUILD_OPTIONS)
    return kernel, shape


def step_kernel(
    device: Device,
    file: str,
    name: str,
    param_dtype: np.dtype[Any],
    flags: Mapping[str, int],
    operands: Sequence[Span],
) -> tuple[cl.Kernel, Layout]:
    """:func:`optimizer_kernel` for a launch over ``operands``: the ALIGNED variant
    (whole-vector loads) when every operand is pool memory (which the device aligns
    to its base alignment; a buffer over a host pointer need not be) starting at a
    multiple of the layout's ``vec``, and that alignment covers a vector; else vloadN.
    """
    shape = layout(device)
    aligned = shape.vec > 1 and shape.vec * 4 <= _base_alignment(device) and all(
        isinstance(x.buffer, cl_tools.PooledBuffer) and x.offset % shape.vec == 0
        for x in operands
    )
    return optimizer_kernel(
        device, file, name, param_dtype, {**flags, "ALIGNED": int(aligned)}, shape
    )


_base_alignments: weakref.WeakKeyDictionary[Device, int] = weakref.WeakKeyDictionary()


def _base_alignment(device: Device) -> int:
    """Bytes every buffer (and sub-buffer origin) of ``device`` is aligned to (OpenCL's
    CL_DEVICE_MEM_BASE_ADDR_ALIGN, given in bits), asked once per device."""
    found = _base_alignments.get(device)
    if found is None:
        found = int(device.cl_device.mem_base_addr_align) // 8
        _base_alignments[device] = found
    return found


def work_items(count: int, shape: Layout) -> int:
    """Work-items covering ``count`` elements, ``shape.chunk`` each."""
    return -(-count // shape.chunk)


def launch_step(
    file: str,
    name: str,
    flags: Mapping[str, int],
    operands: Sequence[Span],
    scalars: Sequence[Any],
) -> None:
    """Enqueue one optimizer step kernel over ``operands`` (the parameter first, each passed
    as buffer and element offset), followed by ``scalars``: the variant comes from
    :func:`step_kernel`, the range from the parameter's count. A parameter with a master
    copy (``Span.master``) gets the MASTER_WEIGHTS variant, the master passed after it."""
    p = operands[0]
    if p.master is not None:  # the master travels right after its parameter (PARAM_ARGS)
        operands = (p, p.master, *operands[1:])
        flags = {**flags, "MASTER_WEIGHTS": 1}
    kernel, shape = step_kernel(p.device, file, name, p.dtype, flags, operands)
    buffers_and_offsets = [arg for x in operands for arg in (x.buffer, np.int64(x.offset))]
    # launch itself, not launch_over: one hop fewer on every optimizer step's way down.
    launch(p.device, kernel, work_items(p.count, shape), np.int64(p.count), *buffers_and_offsets,
           *scalars)


def launch_over(device: Device, kernel: cl.Kernel, shape: Layout, count: int, *args: Any) -> None:
    """Enqueue ``kernel(count, *args)`` with enough work-items for ``count`` elements."""
    launch(device, kernel, work_items(count, shape), np.int64(count), *args)


Scalars = Callable[[Any, Sequence[float], int], Sequence[Any]]


class GradScaling(NamedTuple):
    """A GradScaler's device buffers as a step kernel takes them (PyTorch's fused
    ``grad_scale`` and ``found_inf``), and the optimizer's count of steps skipped so far
    (its bias corrections count the steps actually taken). Each a 1-element float32
    tensor; nothing of them is read on the host."""

    grad_scale: Tensor
    found_inf: Tensor
    skipped_steps: Tensor

    def buffers(self) -> tuple[Any, Any, Any]:
        return (self.grad_scale.buffer, self.found_inf.buffer, self.skipped_steps.buffer)


class LiveGroup:
    """A param group's hyperparameters and step counts as they are at each launch.

    An optimizer class passes one to its functional form, which then gives its
    kernel scalars as the tensor layer's ``Live`` arguments: a captured step
    (``netcl.jit``) re-reads them at every replay, so a scheduler's lr, an edit
    to ``param_groups`` and the step counts (hence the bias corrections) stay
    right without netcl-optim knowing of any capture.
    """

    def __init__(self, hyper: Callable[[], Any], steps: Callable[[], Sequence[float]]) -> None:
        self.hyper = hyper
        self.steps = steps

    def scalars(self, i: int, compute: Scalars) -> list[Live]:
        """Entry ``i``'s kernel scalars, ``compute(hyper, steps, i)``, each a ``Live``.

        ``compute`` runs once per launch: the first argument's read computes them
        all (a launch reads its arguments in order) and the rest take theirs from it.
        """
        values: list[Any] = list(compute(self.hyper(), self.steps(), i))

        def read(j: int) -> Any:
            if j == 0:
                values[:] = compute(self.hyper(), self.steps(), i)
            return values[j]

        return [Live(functools.partial(read, j)) for j in range(len(values))]


def checked_grad_scaling(owner: str, grad_scale: Tensor | None, found_inf: Tensor | None,
                         skipped_steps: Tensor | None) -> GradScaling | None:
    """A GradScaler's buffers as a step kernel takes them, or None when neither
    ``grad_scale`` nor ``found_inf`` is given; each must be a one-element float32 tensor.
    A missing scale is 1, a missing flag 0, a missing ``skipped_steps`` a fresh 0."""
    if grad_scale is None and found_inf is None:
        if skipped_steps is not None:
            raise ValueError(f"{owner}: skipped_steps counts the steps found_inf skipped; "
                             "it needs found_inf or grad_scale")
        return None
    given = (("found_inf", found_inf), ("grad_scale", grad_scale),
             ("skipped_steps", skipped_steps))
    for what, t in given:
        if t is not None and (t.dtype != float32 or t.size != 1):
            raise ValueError(
                f"{owner}: {what} must be a one-element float32 tensor, got shape "
                f"{t.shape} and dtype {t.dtype}")
    anchor = found_inf if found_inf is not None else grad_scale
    assert anchor is not None
    device = anchor.device
    return GradScaling(
        grad_scale if grad_scale is not None else full((), 1.0, float32, device),
        found_inf if found_inf is not None else full((), 0.0, float32, device),
        skipped_steps if skipped_steps is not None else full((), 0.0, float32, device))


def scaled_scalars(compute: Scalars, grad_scaling: GradScaling | None) -> Scalars:
    """``compute`` followed, under a GradScaler, by the hyperparameters' ``step_doubles``
    at the entry's step as float64 (the kernel's GRAD_SCALING_SCALARS)."""
    if grad_scaling is None:
        return compute

    def with_doubles(hyper: Any, steps: Sequence[float], i: int) -> tuple[Any, ...]:
        doubles = hyper.step_doubles(steps[i]) if steps else ()
        return (*compute(hyper, steps, i), *(np.float64(x) for x in doubles))

    return with_doubles


def scaling_flags(flags: Mapping[str, int], grad_scaling: GradScaling | None
                  ) -> tuple[dict[str, int], tuple[Any, ...]]:
    """``flags`` with GRAD_SCALING set as ``grad_scaling`` is given, and the buffers the
    kernel then takes before its hyperparameters (none without)."""
    if grad_scaling is None:
        return {**flags, "GRAD_SCALING": 0}, ()
    return {**flags, "GRAD_SCALING": 1}, grad_scaling.buffers()


def step_scalars(
    hyper: Any, steps: Sequence[float], i: int, compute: Scalars, live: LiveGroup | None
) -> Sequence[Any]:
    """Entry ``i``'s kernel scalars: ``compute(hyper, steps, i)``, or live ones (see
    :class:`LiveGroup`) when an optimizer class gives ``live``."""
    return compute(hyper, steps, i) if live is None else live.scalars(i, compute)
