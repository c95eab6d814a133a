"""Adam and AdamW with 8-bit state: the codes, the hyperparameters and the checked step.

Block-wise dynamic quantisation of both moments (Dettmers et al., 2022, "8-bit
Optimizers via Block-wise Quantization", the method of bitsandbytes' ``Adam8bit``):
each moment is kept as one byte per element, an index into a fixed table of 256
values in [-1, 1] (m) or [0, 1] (v), times the float32 absolute maximum of its block
of :data:`BLOCK` elements. The kernel (``adam8bit.cl``, built after ``adam.cl``,
whose update it uses unchanged) dequantises, steps in float32 and requantises in
the same launch.

The table is the *dynamic* data type (Dettmers, 2016, "8-Bit Approximations for
Parallelism in Deep Learning"), which bitsandbytes uses for its 8-bit optimizers:
a value is a decade 10^-k (k = 0..6: the number of leading zero bits) times a
linear fraction in (0.1, 1) whose resolution is the bits left over. Its relative
error is about the same across seven decades, where a linear code of 256 steps
loses every value under 1/255 of the block's maximum: Adam's second moment spans
several decades within a block, and its small entries decide the largest steps.
m uses the signed variant (a sign bit, 127 magnitudes a side), v (never negative)
the unsigned one (254 magnitudes); both also hold 0 and 1 exactly, so the block's
largest element is stored without error. The values are those of bitsandbytes'
``create_dynamic_map`` (max_exponent_bits 7), computed here from that definition.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import numpy as np

from netcl.core.device import Device
from netcl.core.tensor import Tensor, float32, from_numpy, uint8
from netcl.core.tensor.launch import launch, observing
from netcl.optim import hyperparameters as check
from netcl.optim.functional.adam import AdamHyperparameters, AdamWHyperparameters
from netcl.optim.functional.device_arrays import PARAM_DTYPES, ArrayLike, Span, span, spans
from netcl.optim.functional.kernels import (
    GradScaling,
    LiveGroup,
    optimizer_kernel,
    scaled_scalars,
    scaling_flags,
    step_scalars,
)

#: Elements per quantisation block (bitsandbytes' block-wise 8-bit optimizers use 256):
#: two float32 scales per 256 elements add 1/32 byte per parameter to its 2 bytes.
BLOCK = 256
# Blocks each work-group steps (it loads the two code tables, 2 KiB, once for them all),
# and elements of each block a work-item steps (a work-group is BLOCK // PER_ITEM). On the
# H200 (20M parameters in 200 tensors, 2026-12-04) 2 and 8 ran 0.338 ms a step; 1 and 8
# 0.369, 4 and 8 0.359, 8 and 8 0.398, and 64 blocks a group 0.344-0.616 ms. A block
# maximum by warp shuffles (inline PTX) instead of the tree gained nothing at 2 and 8.
BLOCKS_PER_GROUP = 8
PER_ITEM = 2
# Whether a work-group reads each block's operands while it steps the block before
# (adam8bit.cl's PREFETCH): more reads in flight a work-item, as fp32 Adam's float4 has.
# Off until the H200 times it (tools/bench/adam8bit_forms.py).
PREFETCH = False
#: How the kernel steps a block: "work-group" (PER_ITEM elements a work-item, the block's
#: maxima by a reduction in local memory; GPUs) or "work-item" (all of it in one, no
#: barrier; CPUs, where PoCL runs a work-group as a loop between barriers); None: by device.
BLOCK_STEPPER: str | None = None
# Work-items a work-group when one steps a block: each keeps a block's new moments in
# private memory (2 KiB), and PoCL's own choice of group size overflowed its stack.
SERIAL_GROUP = 8
# The decades of the dynamic code: magnitudes from 10^-(DECADES - 1) to 1.
DECADES = 7
# Block tables kept per device (only entries of several parameters, a flat bucket's,
# have one); a bucket whose late parameters keep changing the ranges could grow this
# without bound, so it is cleared past the limit.
_TABLE_CACHE_LIMIT = 64


def dynamic_code(signed: bool) -> np.ndarray[Any, np.dtype[np.float32]]:
    """The 256 values of the dynamic data type, ascending (float32).

    Decade k (magnitudes 10^(k - 6), k = 0..6) holds 2^k fractions per sign when
    ``signed``, 2^(k + 1) when not (the sign bit becomes a fraction bit): the
    midpoints of that many equal steps of [0.1, 1]. Then 0 and 1.

    >>> code = dynamic_code(signed=True)
    >>> len(code), code[0].round(4), code[127], code[-1], len(set(code.tolist()))
    (256, np.float32(-0.993), np.float32(0.0), np.float32(1.0), 256)
    """
    values = [0.0, 1.0]
    for k in range(DECADES):
        count = 2**k if signed else 2 ** (k + 1)
        edges = np.linspace(0.1, 1.0, count + 1)
        magnitudes = (edges[:-1] + edges[1:]) / 2 * 10.0 ** (k - DECADES + 1)
        values += magnitudes.tolist()
        if signed:
            values += (-magnitudes).tolist()
    return np.array(sorted(values), np.float32)


def code_lookup(signed: bool) -> np.ndarray[Any, np.dtype[np.float32]]:
    """What the kernel finds a magnitude's nearest code by (float32, 8 + 2 * DECADES):

    - the 8 edges between the code's runs of non-negative values (0, decade 0, ...,
      decade 6, 1): each the midpoint of the last value of one run and the first of
      the next, so that a magnitude's run is the count of edges at or below it;
    - each decade's start (10^(k - 6) / 10: its first step's lower end);
    - the reciprocal of each decade's step width (its fractions over 0.9 * 10^(k - 6)).

    Inside its run, a magnitude's nearest value is then the midpoint of the step it
    falls in, clamped to the run: no table search and no neighbour comparison.

    >>> lookup = code_lookup(signed=True)
    >>> code = dynamic_code(signed=True)
    >>> bool(lookup[0] == code[128] / 2), bool(lookup[7] == (code[254] + 1) / 2)
    (True, True)
    """
    code = dynamic_code(signed).astype(np.float64)
    counts = 2 ** (np.arange(DECADES + 1) + (0 if signed else 1))  # values a decade
    # The first index of each decade, then of 1 (255): 0 is at 127 signed, 0 unsigned.
    starts = (127 if signed else -1) + counts
    edges = (code[starts - 1] + code[starts]) / 2
    scales = 10.0 ** (np.arange(DECADES) - DECADES + 1)
    return np.concatenate([edges, scales / 10, counts[:-1] / (0.9 * scales)]).astype(np.float32)


def blocks(size: int) -> int:
    """The quantisation blocks of a parameter of ``size`` elements (none span two)."""
    return -(-size // BLOCK)


def quantize(values: np.ndarray[Any, Any], signed: bool) -> tuple[np.ndarray[Any, Any],
                                                                  np.ndarray[Any, Any]]:
    """``values`` (one parameter's moment, any shape) as (codes, absmax) the way the kernel
    stores them: the reference the tests check the kernel against, and how a float32
    state (PyTorch's Adam's) becomes 8-bit state.

    >>> codes, absmax = quantize(np.array([0.5, -2.0, 0.0], np.float32), signed=True)
    >>> absmax, dequantize(codes, absmax, signed=True)  # the signed code's least is -0.993
    (array([2.], dtype=float32), array([ 0.4953125, -1.9859375,  0.       ], dtype=float32))
    """
    code = dynamic_code(signed)
    flat = np.asarray(values, np.float32).reshape(-1)
    padded = np.zeros(blocks(flat.size) * BLOCK, np.float32)
    padded[:flat.size] = flat
    absmax = np.abs(padded.reshape(-1, BLOCK)).max(axis=1)
    # As the kernel: times the reciprocal of the block's absmax (0 for an all-zero block).
    inverse = np.divide(np.float32(1), absmax, out=np.zeros_like(absmax), where=absmax > 0)
    normed = flat * np.repeat(inverse, BLOCK)[:flat.size]
    low = np.clip(np.searchsorted(code, normed, side="right") - 1, 0, len(code) - 1)
    high = np.minimum(low + 1, len(code) - 1)
    # The nearer neighbour, ties going up; below code[0], code[0]. The kernel's choice but
    # within a few float32 roundings of a midpoint, which its arithmetic step (no
    # comparison of neighbours) may send either way.
    up = (code[high] - normed <= normed - code[low]) & (normed >= code[0])
    codes = np.where(up, high, low).astype(np.uint8)
    return codes.reshape(np.shape(values)), absmax.astype(np.float32)


def dequantize(codes: np.ndarray[Any, Any], absmax: np.ndarray[Any, Any],
               signed: bool) -> np.ndarray[Any, np.dtype[np.float32]]:
    """The float32 values 8-bit state stands for: ``code[codes] * absmax`` per block."""
    flat = np.asarray(codes).reshape(-1)
    scale = np.repeat(np.asarray(absmax, np.float32), BLOCK)[:flat.size]
    values: np.ndarray[Any, np.dtype[np.float32]] = dynamic_code(signed)[flat] * scale
    return values.reshape(np.shape(codes))


class Adam8bitState(NamedTuple):
    """8-bit Adam's per-parameter state, by bitsandbytes' names: the codes of m
    (``state1``, uint8, the parameter's shape) and v (``state2``), and each block's
    absmax (``absmax1``, ``absmax2``: float32, one per :data:`BLOCK` elements)."""

    state1: Any
    state2: Any
    absmax1: Any
    absmax2: Any


@dataclass(frozen=True)
class Adam8bitHyperparameters(AdamHyperparameters):
    """Adam's hyperparameters (PyTorch's names and defaults), with 8-bit state: no amsgrad.

    >>> Adam8bitHyperparameters().state_shapes((3, 200))
    {'state1': (3, 200), 'state2': (3, 200), 'absmax1': (3,), 'absmax2': (3,)}
    """

    _codes: ClassVar[frozenset[str]] = frozenset({"state1", "state2"})

    def check_together(self, owner: str) -> None:
        if self.amsgrad:
            raise ValueError(
                f"{owner}: invalid amsgrad: True (expected False: 8-bit Adam keeps no running "
                "maximum of v; use Adam for amsgrad)")

    def state_names(self) -> tuple[str, ...]:
        return Adam8bitState._fields

    def state_shapes(self, shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        scales = (blocks(int(np.prod(shape, dtype=np.int64))),)
        return {"state1": shape, "state2": shape, "absmax1": scales, "absmax2": scales}

    def state_dtype(self, name: str) -> np.dtype[Any]:
        return uint8 if name in self._codes else float32

    def initial_value(self, name: str) -> float:
        # An int, which a uint8 buffer's fill takes; absmax 0 decodes any code to 0 anyway.
        return 0


@dataclass(frozen=True)
class AdamW8bitHyperparameters(Adam8bitHyperparameters):
    """AdamW8bit's: 8-bit Adam's, saved with the ``decoupled_weight_decay`` of AdamW."""

    torch_keys = AdamWHyperparameters.torch_keys


_codes: weakref.WeakKeyDictionary[Device, tuple[Tensor, Tensor]] = weakref.WeakKeyDictionary()
_tables: weakref.WeakKeyDictionary[Device, dict[tuple[int, ...], Tensor]] = (
    weakref.WeakKeyDictionary())


def _device_codes(device: Device) -> tuple[Tensor, Tensor]:
    """The signed and unsigned codes on ``device``, each followed by its
    :func:`code_lookup`, uploaded once."""
    found = _codes.get(device)
    if found is None:
        # Constants: the same buffers serve every later step, and every replay of a
        # captured one (netcl.jit), so their upload is no part of the step it is made in.
        with observing(None):
            signed, unsigned = (
                from_numpy(np.concatenate([dynamic_code(s), code_lookup(s)]), device)
                for s in (True, False))
            found = _codes[device] = (signed, unsigned)
    return found


def _block_starts(device: Device, sizes: tuple[int, ...]) -> Tensor | None:
    """The first element of each block of parameters of ``sizes`` laid end to end, then
    their total: int32 on ``device``, made once per layout. None for one parameter,
    whose blocks the kernel finds without a table (so that a model of many parameter
    sizes, stepped one launch a parameter, does not cycle the cache)."""
    if len(sizes) == 1:
        return None
    tables = _tables.setdefault(device, {})
    table = tables.get(sizes)
    if table is None:
        if len(tables) > _TABLE_CACHE_LIMIT:
            tables.clear()
        starts: list[int] = []
        at = 0
        for size in sizes:
            starts += range(at, at + size, BLOCK)
            at += size
        if at >= 2**31:
            raise ValueError(f"8-bit Adam: {at} elements in one launch; at most 2^31 - 1")
        with observing(None):  # a constant, as the codes are (see _device_codes)
            table = tables[sizes] = from_numpy(np.array([*starts, at], np.int32), device)
    return table


def adam8bit(
    params: Sequence[ArrayLike],
    grads: Sequence[ArrayLike],
    state1s: Sequence[ArrayLike],
    state2s: Sequence[ArrayLike],
    absmax1s: Sequence[ArrayLike],
    absmax2s: Sequence[ArrayLike],
    steps: Sequence[float],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    maximize: bool,
    decoupled: bool = False,
) -> None:
    """One 8-bit Adam (or AdamW: ``decoupled``) step on every parameter, in place.

    The caller owns the state, zeros at the start: per parameter of n elements, the
    codes of m and v (``state1s``, ``state2s``: uint8, n each) and the absmax of each of
    its blocks (``absmax1s``, ``absmax2s``: float32, ``blocks(n)`` each); it counts the
    steps (1 on the first). Arrays as for :func:`~netcl.optim.functional.adam`.
    """
    hyper = Adam8bitHyperparameters.checked("adam8bit", {
        "lr": lr, "betas": (beta1, beta2), "eps": eps, "weight_decay": weight_decay,
        "amsgrad": False, "maximize": maximize,
    })
    sizes = [[span(p, f"params[{i}]").count] for i, p in enumerate(params)]
    adam8bit_step(hyper, params, grads, Adam8bitState(state1s, state2s, absmax1s, absmax2s),
                  sizes, steps, decoupled=check.flag("adam8bit", "decoupled", decoupled))


def adam8bit_step(
    hyper: Adam8bitHyperparameters,
    params: Sequence[ArrayLike],
    grads: Sequence[ArrayLike],
    state: Adam8bitState,
    sizes: Sequence[Sequence[int]],
    steps: Sequence[float],
    *,
    decoupled: bool,
    live: LiveGroup | None = None,
    grad_scaling: GradScaling | None = None,
) -> None:
    """One 8-bit Adam (or AdamW: ``decoupled``) step: one ``adam8bit_step`` launch per entry,
    after every entry is checked.

    Entry i is one parameter, or several laid end to end in one range of memory
    (a flat bucket's), whose element counts are ``sizes[i]``; each field of
    ``state`` holds one array per entry (codes: uint8, the entry's element
    count; absmax: float32, its block count). ``steps``, ``live`` and
    ``grad_scaling`` are as for :func:`~netcl.optim.functional.adam_step`.
    """
    n = len(params)
    p, g = spans(params, "params", n), spans(grads, "grads", n)
    named = {name: spans(arrays, name, n) for name, arrays in zip(
        Adam8bitState._fields, state, strict=True)}
    if len(steps) != n or len(sizes) != n:
        raise ValueError(f"steps and sizes have {len(steps)} and {len(sizes)} entries, "
                         f"expected {n} (one per entry)")
    # Each entry's blocks, counted once: a bucket of hundreds of parameters is hundreds of
    # sizes, summed on every step.
    block_counts = [sum(map(blocks, entry_sizes)) for entry_sizes in sizes]
    for i in range(n):
        _check_entry(i, p[i], g[i], {name: arrays[i] for name, arrays in named.items()},
                     sizes[i], block_counts[i])
        if not steps[i] >= 1:
            raise ValueError(f"steps[{i}] is {steps[i]!r}; a step count is >= 1")
    flags, extra = scaling_flags({"DECOUPLED": int(decoupled), "AMSGRAD": 0, "BLOCK": BLOCK,
                                  "DECADES": DECADES}, grad_scaling)
    compute = scaled_scalars(lambda h, t, j: h.kernel_scalars(t[j], decoupled), grad_scaling)
    for i in range(n):
        param = p[i]
        operands = [param, *((param.master,) if param.master is not None else ()), g[i],
                    *(arrays[i] for arrays in named.values())]
        table = _block_starts(param.device, tuple(sizes[i]))
        n_blocks = block_counts[i]
        form: dict[str, int]
        if _steps_by_item(param.device):
            form, local_size, work_items = {"SERIAL": 1}, SERIAL_GROUP, n_blocks
        else:  # a work-group for every BLOCKS_PER_GROUP blocks
            local_size = BLOCK // PER_ITEM
            form = {"SERIAL": 0, "PER_ITEM": PER_ITEM, "PREFETCH": int(PREFETCH)}
            work_items = -(-n_blocks // BLOCKS_PER_GROUP) * local_size
        kernel, _ = optimizer_kernel(
            param.device, ("adam.cl", "adam8bit.cl"), "adam8bit_step", param.dtype,
            {**flags, **form, "MASTER_WEIGHTS": int(param.master is not None),
             "BLOCK_TABLE": int(table is not None)})
        signed, unsigned = _device_codes(param.device)
        launch(param.device, kernel, work_items, np.int64(n_blocks), np.int64(param.count),
               *(arg for x in operands for arg in (x.buffer, np.int64(x.offset))),
               *((None, np.int64(0)) if table is None else (table.buffer, np.int64(table.offset))),
               signed.buffer, unsigned.buffer, *extra,
               *step_scalars(hyper, steps, i, compute, live), local_size=local_size)


def _steps_by_item(device: Device) -> bool:
    """Whether ``device`` steps a block in one work-item (see :data:`BLOCK_STEPPER`)."""
    if BLOCK_STEPPER is None:
        return device.type == "cpu"
    if BLOCK_STEPPER not in ("work-item", "work-group"):
        raise ValueError(f"BLOCK_STEPPER is {BLOCK_STEPPER!r}; expected 'work-item', "
                         "'work-group' or None")
    return BLOCK_STEPPER == "work-item"


def _check_entry(i: int, param: Span, grad: Span, state: dict[str, Span],
                 sizes: Sequence[int], block_count: int) -> None:
    """Entry ``i``'s operands agree with each other and with its parameters' ``sizes``
    (``block_count`` blocks)."""
    if param.dtype not in PARAM_DTYPES or grad.dtype != param.dtype:
        raise ValueError(
            f"params[{i}] and grads[{i}] have dtypes {param.dtype} and {grad.dtype}; expected "
            "one of float32, float16 or bfloat16 for both")
    if sum(sizes) != param.count or any(size < 0 for size in sizes):
        raise ValueError(
            f"sizes[{i}] is {list(sizes)}, which does not add up to the {param.count} elements "
            f"of params[{i}]")
    expected = {"grads": (param.count, param.dtype),
                "state1": (param.count, uint8), "state2": (param.count, uint8),
                "absmax1": (block_count, float32), "absmax2": (block_count, float32)}
    for name, operand in (("grads", grad), *state.items()):
        count, dtype = expected[name]
        if operand.count != count or operand.dtype != dtype:
            raise ValueError(
                f"{name}[{i}] has {operand.count} elements of {operand.dtype}; expected "
                f"{count} of {dtype}")
        if operand.device.context != param.device.context:
            raise ValueError(f"{name}[{i}] is in a different OpenCL context than params[{i}]")
