"""Elementwise ops: one broadcasting, strided kernel (elementwise.cl) serves them all.

The in-place ops (``add_``, ``mul_``, ``copy_``, ``fill_``) keep two rules numpy keeps
and a raw kernel does not:
- An input that overlaps the output in memory (``y[1:].copy_(y[:-1])``, ``x.add_(x[::-1])``)
  is copied first, because work-items run in no fixed order and would read elements
  another already overwrote. Reading the very element one writes is safe and not copied.
- A result of another kind than the target (a float into an integer tensor, an integer
  into a bool tensor) raises TypeError, numpy's ``same_kind`` casting rule, instead of
  truncating. ``copy_`` is the explicit cast and converts any dtype.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyopencl as cl

from netcl.core.device import Device
from netcl.core.tensor import dtypes, recorder, strides
from netcl.core.tensor.dispatch import common_device, needs_grad, record
from netcl.core.tensor.launch import (
    MAX_DIMS,
    current_observer,
    enqueue_prepared,
    int8_vector,
    launch_size,
    needs_bound_test,
    pack_int32,
)
from netcl.core.tensor.launch_info import ElementwiseLaunch
from netcl.core.tensor.launch_info import Operand as LaunchOperand
from netcl.core.tensor.strides import contiguous_strides
from netcl.core.tensor.tensor import Scalar, Shape, Tensor, type_name

KERNEL_FILE = Path(__file__).with_name("elementwise.cl")
KERNEL_SOURCES = (dtypes.BFLOAT16_CL, KERNEL_FILE)
# A scalar operand is passed as this numpy type of the compute type's C name.
_SCALAR_TYPES: dict[str, type[np.generic]] = {
    "float": np.float32, "int": np.int32, "long": np.int64,
}
Operand = Tensor | Scalar


def broadcast_shapes(op: str, shapes: Sequence[Shape]) -> Shape:
    """numpy's broadcasting rule, with an error naming every shape."""
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        listed = " and ".join(str(s) for s in shapes)
        raise ValueError(f"{op}: shapes {listed} cannot be broadcast together") from None


def broadcasts_to(shape: Shape, target: Shape) -> bool:
    """Whether ``shape`` broadcasts to exactly ``target`` (``target`` itself unstretched)."""
    if len(shape) > len(target):
        return False
    return all(s in (1, t) for s, t in zip(shape[::-1], target[::-1], strict=False))


def broadcast_strides(t: Tensor, shape: Shape) -> Shape:
    """``t``'s strides seen from ``shape``: 0 along every broadcast dimension."""
    return strides.broadcast_strides(t.shape, t.strides, shape)


def _load(slot: str, dtype: np.dtype[Any], ct: str) -> str:
    index = f"{slot}_offset + OFFSET(i, {slot}_strides)"
    return f"(({ct}){dtypes.cl_load(dtype, f'{slot}_data', index)})"


class _Plan(NamedTuple):
    """What one elementwise call needs beyond its operands' buffers, offsets and scalars:
    the same for every call with the same shapes, strides, dtypes and devices."""

    kernel: cl.Kernel
    global_size: tuple[int, ...]
    local_size: tuple[int, ...] | None
    shape: Shape  # of a new output
    strides: Shape  # of a new output
    dtype: np.dtype[Any]  # of a new output
    nbytes: int  # of a new output
    values: tuple[Any, ...]  # (index, bytes) pairs of n, the collapsed shape, out's strides
    # Every by-value argument when each offset is 0 (most calls), or None with a scalar
    # operand: found, not built, per call.
    values_at_zero: tuple[Any, ...] | None
    # Per operand: its first argument's index and its collapsed strides (a tensor) or its
    # scalar's numpy type.
    operands: tuple[tuple[int, bytes | type[np.generic]], ...]
    # What a launch observer is told (see _described): expression, compute type, the
    # collapsed shape and the output's then each tensor operand's collapsed strides.
    expr: str
    compute: str
    dims: Shape
    collapsed: tuple[Shape, ...]


def elementwise(
    op: str,
    expr: str,
    operands: Sequence[Operand],
    out_dtype: np.dtype[Any] | None = None,
    float_op: bool = False,
    out: Tensor | None = None,
) -> Tensor:
    """Apply ``expr`` (in ``a``, ``b``, ``c``) elementwise over broadcast ``operands``.

    The compute dtype is the operands' promoted dtype (float32 for a
    ``float_op`` on integers); the result has ``out_dtype`` or that dtype. With
    ``out`` the result is written into that tensor (a view is respected).

    Everything that depends only on the operands' shapes, strides, dtypes and
    devices (promotion, broadcasting, collapsing, the kernel, the arguments
    that never change) is planned once and found again by that key.
    """
    key: list[Any] = [expr, out_dtype, float_op]
    device = None
    for x in operands:
        if isinstance(x, Tensor):
            key += (x.shape, x.strides, x.dtype, x.device)
            device = device or x.device
        else:
            key.append(type(x))
    if out is not None:
        key += (out.shape, out.strides, out.dtype, out.device)
        device = device or out.device
    if device is None:
        raise TypeError(f"{op}: needs at least one tensor operand")
    plans = device.kernels.plans
    plan_key = tuple(key)
    plan: _Plan | None = plans.get(plan_key)
    if plan is None:
        plan = device.kernels.remember(
            plan_key, _plan(op, expr, operands, out_dtype, float_op, out)
        )
    if out is None:
        out = Tensor.fresh(
            device.pool.allocate(plan.nbytes), plan.shape, plan.dtype, device, plan.strides
        )
    # elementwise.cl's arguments: n, shape, out, out_offset, out_strides, then per
    # operand a buffer, an offset and strides (a tensor) or one value (a scalar).
    buffers: list[Any] = [2, out.buffer]
    at_zero = out.offset == 0
    for x, (index, _) in zip(operands, plan.operands, strict=True):
        if isinstance(x, Tensor):
            buffers += (index, x.buffer)
            at_zero = at_zero and x.offset == 0
    values = plan.values_at_zero
    if values is None or not at_zero:
        values = _values(plan, out, operands)
    if plan.global_size[0]:
        about = None
        if current_observer() is not None:  # a capture may fuse this launch with its neighbours
            about = _described(plan, out, operands)
        enqueue_prepared(device, plan.kernel, plan.global_size, plan.local_size, tuple(buffers),
                         values, None, about)
    return out


def _values(plan: _Plan, out: Tensor, operands: Sequence[Operand]) -> tuple[Any, ...]:
    """Every by-value argument of the launch, as (index, bytes or scalar) pairs."""
    values: list[Any] = [*plan.values, 3, _ZERO if out.offset == 0 else pack_int32(out.offset)]
    for x, (index, prepared) in zip(operands, plan.operands, strict=True):
        if isinstance(x, Tensor):
            offset = _ZERO if x.offset == 0 else pack_int32(x.offset)
            values += (index + 1, offset, index + 2, prepared)
        else:
            values += (index, prepared(x))  # type: ignore[operator]
    return tuple(values)


def _described(plan: _Plan, out: Tensor, operands: Sequence[Operand]) -> ElementwiseLaunch:
    """The launch as :class:`ElementwiseLaunch`, a scalar operand as the argument it is given."""
    slots: list[Any] = []
    operand_strides = iter(plan.collapsed[1:])
    for x, (_, prepared) in zip(operands, plan.operands, strict=True):
        if isinstance(x, Tensor):
            slots.append(LaunchOperand(x.buffer, x.offset, next(operand_strides), x.dtype))
        else:
            slots.append(prepared(x))  # type: ignore[operator]
    result = LaunchOperand(out.buffer, out.offset, plan.collapsed[0], out.dtype)
    n = math.prod(plan.shape)
    return ElementwiseLaunch(plan.expr, plan.compute, n, plan.dims, result, tuple(slots))


_ZERO = pack_int32(0)


def _plan(
    op: str,
    expr: str,
    operands: Sequence[Operand],
    out_dtype: np.dtype[Any] | None,
    float_op: bool,
    out: Tensor | None,
) -> _Plan:
    """Check ``operands`` and plan their elementwise launch (see ``elementwise``)."""
    tensors = [x for x in operands if isinstance(x, Tensor)]
    device = common_device(op, [*tensors, *([out] if out is not None else [])])
    compute = _compute_dtype(op, operands, tensors, out, float_op)
    result_dtype = out_dtype or compute
    layout = _layout(op, tensors, out, result_dtype)
    n = math.prod(layout.shape)
    ct = dtypes.COMPUTE_C_TYPE[compute]
    # Vectors of four where every operand and the output are flat and 4 bytes an
    # element (elementwise.cl's VEC).
    vec = layout.flat and vector_lanes(device) and layout.store_dtype.itemsize == 4 and all(
        t.dtype.itemsize == 4 for t in tensors)
    # A 2-D launch of rows where the device vectorizes across work-items (PoCL: the
    # CPU, where vector lanes are off), for strided operands (elementwise.cl's ROWS).
    dims = layout.dims
    rows = not layout.flat and len(dims) >= 2 and n > 0 and not vector_lanes(device)
    defines = _defines(expr, operands, ct, layout, vec, needs_bound_test(device, n))
    defines["ROWS"] = int(rows)
    fixed = (0, pack_int32(n), 1, int8_vector(layout.dims).tobytes(),
             4, int8_vector(layout.collapsed[0]).tobytes())
    arguments = _fixed_arguments(operands, layout, _SCALAR_TYPES[ct])
    at_zero = None
    if all(isinstance(x, Tensor) for x in operands):
        at_zero = (*fixed, 3, _ZERO, *(v for index, packed in arguments
                                        for v in (index + 1, _ZERO, index + 2, packed)))
    return _Plan(
        kernel=device.kernels.kernel(KERNEL_SOURCES, "elementwise", defines),
        global_size=(dims[-1], n // dims[-1]) if rows else (launch_size(-(-n // 4) if vec else n),),
        local_size=rows_group(dims[-1], n // dims[-1]) if rows else None,
        shape=layout.shape,
        strides=contiguous_strides(layout.shape),
        dtype=result_dtype,
        nbytes=n * result_dtype.itemsize,
        values=fixed,
        values_at_zero=at_zero,
        operands=arguments,
        expr=expr,
        compute=ct,
        dims=layout.dims,
        collapsed=tuple(layout.collapsed),
    )


def _compute_dtype(
    op: str, operands: Sequence[Operand], tensors: list[Tensor], out: Tensor | None,
    float_op: bool,
) -> np.dtype[Any]:
    """The dtype ``operands`` are computed in: tensors promote as numpy's arrays do, scalars
    as Python numbers do against them; float32 for a ``float_op`` on integers."""
    anchor = tensors or ([out] if out is not None else [])
    compute = anchor[0].dtype
    for t in tensors[1:]:
        compute = dtypes.promote(compute, t.dtype)
    for x in operands:
        if not isinstance(x, Tensor):
            if not isinstance(x, numbers.Number):
                raise TypeError(
                    f"{op}: operands must be netcl Tensors or numbers, got {type_name(x)}"
                )
            compute = dtypes.promote_with_scalar(compute, x)
    if float_op and not dtypes.is_floating(compute):
        compute = dtypes.float32
    return compute


class _Layout(NamedTuple):
    """Where the launch walks: the broadcast shape, its collapsed dimensions, and the
    collapsed strides of the output then of each tensor operand."""

    shape: Shape
    store_dtype: np.dtype[Any]
    dims: Shape
    collapsed: list[Shape]
    flat: bool


def _layout(
    op: str, tensors: list[Tensor], out: Tensor | None, result_dtype: np.dtype[Any]
) -> _Layout:
    """Broadcast ``tensors`` (into ``out``'s shape when given) and collapse their strides."""
    shape = broadcast_shapes(op, [t.shape for t in tensors]) if tensors else ()
    if out is not None:
        if broadcast_shapes(op, [shape, out.shape]) != out.shape:
            raise ValueError(f"{op}: a result of shape {shape} does not fit output {out.shape}")
        shape, out_strides, store_dtype = out.shape, out.strides, out.dtype
    else:
        out_strides, store_dtype = contiguous_strides(shape), result_dtype
    strides_in = [broadcast_strides(t, shape) for t in tensors]
    dims, collapsed = strides.collapse(shape, [out_strides, *strides_in])
    if len(dims) > MAX_DIMS:
        raise ValueError(f"{op}: more than {MAX_DIMS} non-contiguous dimensions in shape {shape}")
    flat = len(dims) <= 1 and all(s == (1,) or s == () for s in collapsed)
    return _Layout(shape, store_dtype, dims, collapsed, flat)


def _defines(
    expr: str, operands: Sequence[Operand], ct: str, layout: _Layout, vec: bool, guard: bool
) -> dict[str, str | int]:
    """elementwise.cl's build options: ``expr`` over these operands' kinds and dtypes."""
    out_type = dtypes.STORAGE_C_TYPE[layout.store_dtype]
    defines: dict[str, str | int] = {
        "GUARD": int(guard),
        "NDIM": 0 if layout.flat else len(layout.dims),
        "CT": ct,
        "EXPR": expr,
        "OUT_T": out_type,
        "STORE(idx, v)": dtypes.cl_store(layout.store_dtype, "out", "(idx)", "v"),
        "VEC": int(vec),
        "VECTOR_T": f"{out_type}4",
    }
    for slot, x in zip("abc", operands, strict=False):
        upper = slot.upper()
        if isinstance(x, Tensor):
            c_type = dtypes.STORAGE_C_TYPE[x.dtype]
            defines[f"PARAMS_{upper}"] = (
                f", __global const {c_type} *{slot}_data, const int {slot}_offset, "
                f"const int8 {slot}_strides"
            )
            defines[f"LOAD_{upper}"] = _load(slot, x.dtype, ct)
            defines[f"VLOAD_{upper}"] = (
                f"const {c_type}4 v{slot} = vload4(0, {slot}_data + {slot}_offset + i);")
            defines[f"LANE_{upper}(s)"] = f"(({ct})v{slot}.s)"
        else:
            defines[f"PARAMS_{upper}"] = f", const {ct} {slot}_scalar"
            defines[f"LOAD_{upper}"] = defines[f"LANE_{upper}(s)"] = f"{slot}_scalar"
            defines[f"VLOAD_{upper}"] = ""
    for slot in "ABC"[len(operands):]:
        defines[f"PARAMS_{slot}"] = defines[f"VLOAD_{slot}"] = ""
        defines[f"LOAD_{slot}"] = defines[f"LANE_{slot}(s)"] = "0"
    return defines


def _fixed_arguments(
    operands: Sequence[Operand], layout: _Layout, scalar_type: type[np.generic]
) -> tuple[tuple[int, bytes | type[np.generic]], ...]:
    """Per operand, its first argument's index and what never changes between calls: a
    tensor's collapsed strides, packed, or the numpy type a scalar is passed as."""
    prepared: list[tuple[int, bytes | type[np.generic]]] = []
    operand_strides = iter(layout.collapsed[1:])
    index = 5  # the first operand's first argument (see elementwise)
    for x in operands:
        if isinstance(x, Tensor):
            prepared.append((index, int8_vector(next(operand_strides)).tobytes()))
            index += 3
        else:
            prepared.append((index, scalar_type))
            index += 1
    return tuple(prepared)


def row_group(length: int, most: int = 256) -> int:
    """A CPU work-group's share of a row of ``length`` work-items: the largest divisor of
    it up to ``most``. PoCL's own choice for a (676, 32, 64) launch ran 17x slower than
    whole rows; 64 and 1024 ran a CNN step's row kernels 1.3-1.4x slower than 256."""
    return max(d for d in range(1, min(length, most) + 1) if length % d == 0)


def rows_group(columns: int, rows: int, most: int = 256) -> tuple[int, int]:
    """A CPU work-group over a 2-D grid of ``rows`` rows of ``columns``: whole rows (see
    row_group), as many as fit in ``most`` work-items. PoCL spends ~0.5 us on each
    work-group: a head split's 4096 rows of 16, one a work-group, took 2 ms."""
    first = row_group(columns, most)
    return first, row_group(rows, most // first)


def vector_lanes(device: Device) -> bool:
    """Whether flat launches on ``device`` take four elements a work-item (VEC). Not on a
    CPU: PoCL vectorizes across work-items itself, and with VEC a 4096 x 4096 add ran
    1.8x slower on a 2-core EPYC (8.4 against 4.8 ms)."""
    return device.type != "cpu"


def _binary(op: str, expr: str, a: Operand, b: Operand, float_op: bool = False) -> Tensor:
    out = elementwise(op, expr, (a, b), None, float_op)
    if recorder.current() is None:  # the common eager case, without building the inputs
        return out
    return record(op, [x for x in (a, b) if isinstance(x, Tensor)], out, operands=(a, b))


def _unary(op: str, expr: str, a: Tensor, float_op: bool = False) -> Tensor:
    out = elementwise(op, expr, (a,), None, float_op)
    if recorder.current() is None:
        return out
    return record(op, [a], out, operands=(a,))


def add(a: Operand, b: Operand) -> Tensor:
    return _binary("add", "a + b", a, b)


def sub(a: Operand, b: Operand) -> Tensor:
    return _binary("sub", "a - b", a, b)


def mul(a: Operand, b: Operand) -> Tensor:
    return _binary("mul", "a * b", a, b)


def div(a: Operand, b: Operand) -> Tensor:
    """True division: integers divide as float32."""
    return _binary("div", "a / b", a, b, float_op=True)


def pow(a: Operand, b: Operand) -> Tensor:
    return _binary("pow", "pow(a, b)", a, b, float_op=True)


def maximum(a: Operand, b: Operand) -> Tensor:
    return _binary("maximum", "(a >= b ? a : b)", a, b)


def minimum(a: Operand, b: Operand) -> Tensor:
    return _binary("minimum", "(a <= b ? a : b)", a, b)


def _compare(op: str, expr: str, a: Operand, b: Operand) -> Tensor:
    # Comparisons have no gradient, so they are never recorded.
    return elementwise(op, expr, [a, b], out_dtype=dtypes.bool_)


def lt(a: Operand, b: Operand) -> Tensor:
    return _compare("lt", "a < b", a, b)


def le(a: Operand, b: Operand) -> Tensor:
    return _compare("le", "a <= b", a, b)


def gt(a: Operand, b: Operand) -> Tensor:
    return _compare("gt", "a > b", a, b)


def ge(a: Operand, b: Operand) -> Tensor:
    return _compare("ge", "a >= b", a, b)


def eq(a: Operand, b: Operand) -> Tensor:
    return _compare("eq", "a == b", a, b)


def ne(a: Operand, b: Operand) -> Tensor:
    return _compare("ne", "a != b", a, b)


def neg(a: Tensor) -> Tensor:
    return _unary("neg", "-a", a)


def abs(a: Tensor) -> Tensor:
    return _unary("abs", "(a < 0 ? -a : a)", a)


def exp(a: Tensor) -> Tensor:
    return _unary("exp", "exp(a)", a, float_op=True)


def log(a: Tensor) -> Tensor:
    return _unary("log", "log(a)", a, float_op=True)


def sqrt(a: Tensor) -> Tensor:
    return _unary("sqrt", "sqrt(a)", a, float_op=True)


def relu(a: Tensor) -> Tensor:
    return _unary("relu", "(a > 0 ? a : 0)", a)


def relu_backward(grad: Operand, out: Operand) -> Tensor:
    """``grad`` where ``out`` (a relu's output) is positive, else 0: relu's
    gradient in one launch, with no mask tensor in between."""
    return _binary("relu_backward", "(b > 0 ? a : 0)", grad, out)


def sigmoid(a: Tensor) -> Tensor:
    return _unary("sigmoid", "1.0f / (1.0f + exp(-a))", a, float_op=True)


def tanh(a: Tensor) -> Tensor:
    return _unary("tanh", "tanh(a)", a, float_op=True)


def erf(a: Tensor) -> Tensor:
    """The error function (OpenCL's erf), as exact GELU needs."""
    return _unary("erf", "erf(a)", a, float_op=True)


def where(condition: Tensor, a: Operand, b: Operand) -> Tensor:
    """``a`` where ``condition`` holds, else ``b``; ``condition`` must be bool."""
    if condition.dtype != dtypes.bool_:
        raise TypeError(f"where: condition must be bool, got {condition.dtype}")
    # The condition is an operand like the others; computing in the values'
    # dtype turns it into 0 or 1, so promote on the values alone.
    values = [x for x in (a, b) if isinstance(x, Tensor)]
    # With two scalars, start from bool so they promote as numpy's do (1, 0 -> int64).
    dtype = values[0].dtype if values else dtypes.bool_
    for t in values[1:]:
        dtype = dtypes.promote(dtype, t.dtype)
    for x in (a, b):
        if not isinstance(x, Tensor):
            dtype = dtypes.promote_with_scalar(dtype, x)
    out = elementwise("where", "(a != 0 ? b : c)", [condition, a, b], out_dtype=dtype)
    return record("where", values, out, operands=(condition, a, b))


def cast(a: Tensor, dtype: dtypes.DTypeLike) -> Tensor:
    target = dtypes.as_dtype(dtype)
    if target == a.dtype:
        return copy(a)
    out = elementwise("cast", "a", [a], out_dtype=target)
    if dtypes.is_floating(target):
        return record("cast", [a], out, operands=(a,))
    return out


def copy(a: Tensor) -> Tensor:
    """A contiguous copy of ``a``."""
    out = elementwise("copy", "a", [a])
    return record("copy", [a], out, operands=(a,))


def add_(target: Tensor, other: Operand, alpha: Scalar = 1) -> Tensor:
    """``target += alpha * other``, in place (into the view ``target`` is)."""
    _check_inplace("add_", target, [other, alpha])
    other = _unaliased(target, other)
    if alpha == 1:
        return elementwise("add_", "a + b", [target, other], out=target)
    # alpha is an argument, not part of the source, so a new alpha builds nothing.
    return elementwise("add_", "a + c * b", [target, other, alpha], out=target)


def mul_(target: Tensor, other: Operand) -> Tensor:
    _check_inplace("mul_", target, [other])
    return elementwise("mul_", "a * b", [target, _unaliased(target, other)], out=target)


def copy_(target: Tensor, source: Tensor) -> Tensor:
    """Copy ``source`` (broadcast, cast to ``target``'s dtype) into ``target``'s memory."""
    _check_inplace("copy_", target, [])
    return elementwise("copy_", "a", [_unaliased(target, source)], out=target)


def fill_(target: Tensor, value: Scalar) -> Tensor:
    _check_inplace("fill_", target, [value])
    return elementwise("fill_", "a", [value], out=target)


def _check_inplace(op: str, target: Tensor, operands: list[Operand]) -> None:
    """Refuse what a kernel writing ``target`` cannot do right, before anything runs."""
    if needs_grad([target]):
        raise RuntimeError(
            f"{op}: in-place update of a tensor that requires grad while a Tape records; "
            "do it outside the tape or under no_grad()"
        )
    if any(stride == 0 and size > 1 for size, stride in zip(target.shape, target.strides,
                                                               strict=True)):
        raise ValueError(
            f"{op}: the target (shape {target.shape}, strides {target.strides}) has several "
            "elements in one memory location (an expanded view); write into a copy instead"
        )
    result = target.dtype
    for x in operands:
        if isinstance(x, Tensor):
            result = dtypes.promote(result, x.dtype)
        else:
            result = dtypes.promote_with_scalar(result, x)
    if not np.can_cast(result, target.dtype, casting="same_kind"):
        given = ", ".join(f"a {x.dtype} tensor" if isinstance(x, Tensor) else repr(x)
                          for x in operands)
        raise TypeError(
            f"{op}: with {given} the result is {result}, which a {target.dtype} tensor cannot "
            "hold without losing its value (numpy's same_kind rule); pass an operand of the "
            f"target's kind, or compute out of place and cast with astype()"
        )


def _unaliased(target: Tensor, operand: Operand) -> Operand:
    """``operand``, or a copy of it when writing ``target`` could clobber it before it is read."""
    if not isinstance(operand, Tensor) or not _overlaps(target, operand):
        return operand
    # Not recorded: the in-place op using it is not recorded either.
    return elementwise("copy", "a", [operand])


def _overlaps(target: Tensor, source: Tensor) -> bool:
    """Whether some element of ``target`` shares memory with a different element of ``source``."""
    if target.buffer.int_ptr != source.buffer.int_ptr or target.size == 0 or source.size == 0:
        return False
    same_elements = (
        source.ndim <= target.ndim  # else a shape error follows
        and source.offset == target.offset
        and source.itemsize == target.itemsize
        and all(size == 1 or seen == mine for size, seen, mine in
                zip(target.shape, broadcast_strides(source, target.shape), target.strides,
                    strict=True))
    )
    if same_elements:
        return False  # each work-item reads exactly the element it then writes
    t_lo, t_hi = _byte_range(target)
    s_lo, s_hi = _byte_range(source)
    return t_lo < s_hi and s_lo < t_hi


def _byte_range(t: Tensor) -> tuple[int, int]:
    """The bytes ``t``'s elements span in its buffer: [start, end)."""
    low = sum((n - 1) * s for n, s in zip(t.shape, t.strides, strict=True) if s < 0)
    high = sum((n - 1) * s for n, s in zip(t.shape, t.strides, strict=True) if s > 0)
    return (t.offset + low) * t.itemsize, (t.offset + high + 1) * t.itemsize
