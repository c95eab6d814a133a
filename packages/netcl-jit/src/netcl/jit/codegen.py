"""The OpenCL source of one fused kernel: a run of elementwise launches in one pass.

Each member computes exactly what its own launch of ``elementwise.cl`` would:
its operands are read and converted to its compute type, its expression is
evaluated, and the result is converted to its output's storage type. A value
a later member reads element by element is taken from a register instead of
memory (the conversion through the storage type is kept, so the rounding is
the same), and a store that nobody reads after the run is left out.
Contraction stays off, as in ``elementwise.cl``, so ``a * b`` then ``+ c``
never becomes one fused multiply-add: fused and unfused results are
bit-identical.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from netcl.core.device import Device
from netcl.core.tensor import dtypes
from netcl.core.tensor.launch import launch_size, needs_bound_test
from netcl.core.tensor.launch_info import ElementwiseLaunch, Operand
from netcl.core.tensor.ops.elementwise import rows_group
from netcl.core.tensor.strides import contiguous_strides


def is_flat(access: Operand, dims: Sequence[int]) -> bool:
    """Whether element i of the launch is element ``offset + i`` of the buffer."""
    if not dims:
        return True
    return all(
        size == 1 or stride == want
        for size, stride, want in zip(dims, access.strides, contiguous_strides(dims), strict=True)
    )


def element_range(access: Operand, dims: Sequence[int]) -> tuple[int, int]:
    """The lowest and highest element of the buffer the access touches."""
    low = high = access.offset
    for size, stride in zip(dims, access.strides, strict=False):
        reach = (size - 1) * stride
        low, high = low + min(reach, 0), high + max(reach, 0)
    return low, high


def _index(access: Operand, dims: Sequence[int], row_length: int = 0) -> str:
    """C for the buffer element that work-item ``i`` touches (integer math, as elementwise.cl).

    With ``row_length`` (which divides ``dims[-1]``), the launch is 2-D rows of that
    many work-items, ``i = row * row_length + col``, and a strided access is its row's
    part, in ``row`` alone, plus ``col`` times its innermost stride.
    """
    if is_flat(access, dims):
        return f"{access.offset} + i"
    terms = []
    inner = 1
    for size, stride in reversed(list(zip(dims, access.strides, strict=True))):
        if stride and size > 1:
            if not row_length:
                terms.append(f"((i / {inner}) % {size}) * {stride}")
            elif inner > 1:  # a multiple of dims[-1], so of row_length
                terms.append(f"((row / {inner // row_length}) % {size}) * {stride}")
            else:
                if size > row_length:
                    terms.append(f"((row % {size // row_length}) * {row_length}) * {stride}")
                terms.append(f"col * {stride}")
        inner *= size
    return " + ".join([str(access.offset), *terms])


def _stored(value: str, dtype: np.dtype[Any]) -> str:
    """``value`` as ``elementwise.cl``'s STORE writes it into a buffer of ``dtype``."""
    if dtype == dtypes.bool_:
        return f"(uchar)(({value}) != 0)"
    return f"({dtypes.STORAGE_C_TYPE[dtype]})({value})"


@dataclass(frozen=True, slots=True)
class Member:
    """A launch in a fused run: ``sources[k]`` is the index of the earlier member whose
    result slot k reads (None: read memory), ``store`` whether its result is written."""

    launch: ElementwiseLaunch
    sources: tuple[int | None, ...]
    store: bool


class _Body:
    """The statements computing a run's members for element ``i``, and the parameters
    (buffers, then scalars) they read: what a fused kernel and a reduction's prologue share."""

    def __init__(self, members: Sequence[Member], row_length: int = 0) -> None:
        self._buffers: dict[int, tuple[Any, str, bool]] = {}  # id -> (buffer, C type, written)
        self._scalars: list[tuple[str, Any]] = []
        self._row_length = row_length
        self.total = max(m.launch.n for m in members)
        self.lines = [self._member(k, m) for k, m in enumerate(members)]

    def _pointer(self, access: Operand, written: bool) -> str:
        key = id(access.buffer)
        buffer, c_type, was_written = self._buffers.get(
            key, (access.buffer, dtypes.STORAGE_C_TYPE[access.dtype], False)
        )
        self._buffers[key] = (buffer, c_type, was_written or written)
        return f"p{list(self._buffers).index(key)}"

    def _member(self, k: int, member: Member) -> str:
        launch = member.launch
        ct = launch.compute
        loads = []
        for slot, (x, origin) in enumerate(zip(launch.operands, member.sources, strict=True)):
            name = "abc"[slot]
            if origin is not None:
                loads.append(f"const {ct} {name} = ({ct})v{origin};")
            elif isinstance(x, Operand):
                where = f"{self._pointer(x, False)}[{self._index(x, launch.dims)}]"
                loads.append(f"const {ct} {name} = ({ct}){where};")
            else:
                self._scalars.append((ct, x))
                loads.append(f"const {ct} {name} = s{len(self._scalars) - 1};")
        loads += [f"const {ct} {name} = 0;" for name in "abc"[len(launch.operands):]]
        out = launch.out
        lines = [*loads, f"v{k} = {_stored(launch.expr, out.dtype)};"]
        if member.store:
            lines.append(f"{self._pointer(out, True)}[{self._index(out, launch.dims)}] = v{k};")
        guard = "" if launch.n == self.total else f"if (i < {launch.n}) "
        inner = "\n        ".join(lines)
        out_type = dtypes.STORAGE_C_TYPE[out.dtype]
        return f"    {out_type} v{k} = 0;\n    {guard}{{\n        {inner}\n    }}"

    def _index(self, access: Operand, dims: Sequence[int]) -> str:
        return _index(access, dims, self._row_length)

    def params(self) -> list[str]:
        return [
            f"__global {'' if written else 'const '}{c_type} *p{index}"
            for index, (_, c_type, written) in enumerate(self._buffers.values())
        ] + [f"const {ct} s{index}" for index, (ct, _) in enumerate(self._scalars)]

    def names(self) -> list[str]:
        return [f"p{i}" for i in range(len(self._buffers))] + [
            f"s{i}" for i in range(len(self._scalars))
        ]

    def args(self) -> list[Any]:
        return [b for b, _, _ in self._buffers.values()] + [v for _, v in self._scalars]


# The shortest row a CPU's 2-D fused launch takes: PoCL vectorizes along a row
# 8 or 16 lanes at a time, so a shorter one gains nothing over the 1-D launch.
MIN_ROW = 16


def row_length(members: Sequence[Member], device: Device) -> int:
    """The row length of a 2-D launch of ``members`` on ``device``, or 0 for a 1-D launch.

    On a CPU (PoCL), where some access is strided, rows as long as every member's
    innermost dimension allows: each strided index's divisions then happen once a
    row (PoCL hoists them out of its vectorized loop over the row), where the 1-D
    launch divides per element (as elementwise.cl's ROWS launch, for the same reason).
    """
    strided = [m.launch.dims[-1] for m in members
               if not all(is_flat(x, m.launch.dims) for x in (m.launch.out, *m.launch.tensors()))]
    if device.type != "cpu" or not strided:
        return 0
    # A flat access is element i of any grid; the grid must be exact.
    length = math.gcd(max(m.launch.n for m in members), *strided)
    return length if length >= MIN_ROW else 0


Grid = tuple[tuple[int, ...], tuple[int, ...] | None]


def fused_kernel(members: Sequence[Member], device: Device) -> tuple[str, list[Any], Grid]:
    """The source of kernel ``fused`` for ``device``, its arguments in order, and its
    global and local sizes."""
    length = row_length(members, device)
    body = _Body(members, length)
    if length:
        head = ("    const int col = get_global_id(0), row = get_global_id(1);\n"
                f"    const int i = row * {length} + col;\n")
        rows = body.total // length
        grid: Grid = ((length, rows), rows_group(length, rows))
    else:
        guard = needs_bound_test(device, body.total)
        head = "    const int i = get_global_id(0);\n" + (
            f"    if (i >= {body.total}) return;\n" if guard else "")
        grid = ((launch_size(body.total),), None)
    source = (
        "#pragma OPENCL FP_CONTRACT OFF\n"
        f"__kernel void fused({', '.join(body.params())})\n{{\n" + head
        + "\n".join(body.lines) + "\n}\n"
    )
    return source, body.args(), grid


def prologue(members: Sequence[Member], load_type: str) -> tuple[str, str, str, list[Any]]:
    """A run computed where a reduction loads its input: the source of ``prologue(i, ...)``
    (element i of the run's index space; the last member's value, as ``load_type``), the
    extra kernel parameters and call arguments (each with a leading comma), and their values.

    Contraction is off inside the function only, so the reduction compiles as before.
    """
    body = _Body(members)
    last = len(members) - 1
    source = (
        f"inline {load_type} prologue(const int i, {', '.join(body.params())})\n{{\n"
        "#pragma OPENCL FP_CONTRACT OFF\n"
        + "\n".join(body.lines) + f"\n    return ({load_type})v{last};\n}}\n"
    )
    params = "".join(f", {p}" for p in body.params())
    call = "".join(f", {n}" for n in body.names())
    return source, params, call, body.args()
