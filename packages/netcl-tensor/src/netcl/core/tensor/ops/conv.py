"""2-D convolution over NCHW tensors: the convolution itself and its two gradients as
implicit GEMMs on matmul's tiled kernel (matmul.cl reads the input in place, no
unfolded copy), or on its tensor-core kernel (matmul_mma.cl, the same reads) for
float16 and bfloat16, and float32 with ``backends.cudnn.allow_tf32``, where the
device has tensor cores (gemm.conv_on_tensor_cores); unfold/fold (im2col/col2im)
and max pooling with its argmax (conv.cl).
A CPU device takes conv_cpu.py's paths instead (the whole batch's im2col into one
panel matmul, geometry compiled into the kernels)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyopencl.cltypes as cltypes

from netcl.core.tensor import dtypes, recorder
from netcl.core.tensor.autocast import to_low_precision
from netcl.core.tensor.dispatch import common_device, empty, record
from netcl.core.tensor.launch import launch
from netcl.core.tensor.ops import conv_cpu
from netcl.core.tensor.ops.elementwise import add, copy_
from netcl.core.tensor.ops.gemm import conv_on_tensor_cores
from netcl.core.tensor.ops.matmul import MmaTile, TileConfig, implicit_gemm
from netcl.core.tensor.ops.reduce import sum as sum_
from netcl.core.tensor.tensor import Shape, Tensor

GEOMETRY_FILE = Path(__file__).with_name("conv_geometry.cl")
KERNEL_FILE = Path(__file__).with_name("conv.cl")
# bf16's load and store, the shared window geometry, then the kernels.
SOURCES = (dtypes.BFLOAT16_CL, GEOMETRY_FILE, KERNEL_FILE)
IntPair = int | Sequence[int]
# Index math in conv.cl is 32-bit.
INT32_MAX = 2**31 - 1


def pair(op: str, name: str, value: IntPair, minimum: int) -> tuple[int, int]:
    """``value`` as (height, width): an int is used for both."""
    items = (value, value) if isinstance(value, int) else tuple(value)
    if len(items) != 2 or any(int(v) < minimum for v in items):
        raise ValueError(
            f"{op}: {name} must be an int or a pair of ints >= {minimum}, got {value!r}"
        )
    return int(items[0]), int(items[1])


def output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Positions a window takes along one axis: floor((size + 2p - d(k-1) - 1) / s) + 1."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _geometry(
    op: str, spatial: Shape, kernel_size: IntPair, stride: IntPair, padding: IntPair,
    dilation: IntPair,
) -> tuple[tuple[int, int], list[int]]:
    """(OH, OW) and the kernel's geometry arguments KH, KW, SH, SW, PH, PW, DH, DW."""
    kh, kw = pair(op, "kernel_size", kernel_size, 1)
    sh, sw = pair(op, "stride", stride, 1)
    ph, pw = pair(op, "padding", padding, 0)
    dh, dw = pair(op, "dilation", dilation, 1)
    oh = output_size(spatial[0], kh, sh, ph, dh)
    ow = output_size(spatial[1], kw, sw, pw, dw)
    if oh <= 0 or ow <= 0:
        raise ValueError(
            f"{op}: a {kh}x{kw} kernel (dilation {dh}x{dw}, padding {ph}x{pw}) does not fit "
            f"an input of spatial size {spatial[0]}x{spatial[1]}"
        )
    return (oh, ow), [kh, kw, sh, sw, ph, pw, dh, dw]


def _check(op: str, t: Tensor, ndim: int, what: str) -> None:
    if t.ndim != ndim:
        raise ValueError(f"{op}: expected a {ndim}-D {what}, got shape {t.shape}")
    if t.dtype not in dtypes.FLOATING:
        raise TypeError(f"{op}: supports float32, float16 and bfloat16, got {t.dtype}")
    if t.size > INT32_MAX:
        raise ValueError(f"{op}: tensors of more than {INT32_MAX} elements are not supported")


def _kernel(t: Tensor, name: str) -> Any:
    defines = {"T": dtypes.STORAGE_C_TYPE[t.dtype],
               "LOAD(p, i)": dtypes.cl_load(t.dtype, "(p)", "(i)"),
               "STORE(p, i, v)": dtypes.cl_store(t.dtype, "(p)", "(i)", "(v)")}
    return t.device.kernels.kernel(SOURCES, name, defines)


def _strides4(t: Tensor) -> np.ndarray[Any, Any]:
    # An int4 kernel argument: the strides, padded with zeros for 3-D tensors.
    return np.array((*t.strides, 0, 0, 0, 0)[:4], dtype=cltypes.int4)


def _ints(values: Sequence[int]) -> list[np.int32]:
    return [np.int32(v) for v in values]


def conv2d(
    x: Tensor, weight: Tensor, stride: IntPair = 1, padding: IntPair = 0,
    dilation: IntPair = 1, tile: TileConfig | MmaTile | None = None, bias: Tensor | None = None,
) -> Tensor:
    """2-D cross-correlation, as ``torch.nn.functional.conv2d``.

    ``x`` (N, C, H, W), ``weight`` (O, C, KH, KW) -> (N, O, OH, OW) with
    ``out[n, o, oh, ow] = sum over c, kh, kw of weight[o, c, kh, kw] *
    x[n, c, oh*SH - PH + kh*DH, ow*SW - PW + kw*DW]`` (0 in the padding),
    plus ``bias[o]`` when a bias (O,) is given. One implicit GEMM per image,
    (O, C*KH*KW) @ (C*KH*KW, OH*OW), its columns read straight from ``x``. On
    a CPU device (PoCL, where the tiled kernel is slow) the whole batch's
    columns and one panel matmul instead (conv_cpu.py, which adds the bias as
    it reorders the product), unless ``tile`` forces the tiled kernel's shape
    (tests, benchmarks). Recorded as ``conv2d`` with the geometry. Inside
    ``netcl.amp.autocast`` x, weight and bias are cast to its dtype first.
    """
    x, weight = to_low_precision(x, weight)
    if bias is not None:
        (bias,) = to_low_precision(bias)
    _check_conv("conv2d", x, weight, bias)
    n, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    (oh, ow), geometry = _geometry("conv2d", (h, w), (kh, kw), stride, padding, dilation)
    a = _as_shape(_contiguous(weight), (o, c * kh * kw))
    inputs = [x, weight] if bias is None else [x, weight, bias]
    if _unfolds(x, tile):
        with recorder.recording(None):
            out = conv_cpu.conv2d(x, a, geometry, (oh, ow), bias)
    else:
        if (out := empty((n, o, oh, ow), x.dtype, x.device)).size:
            implicit_gemm(a, x, _as_shape(out, (n, o, oh * ow)), 1,
                          _gather(geometry, (h, w), (oh, ow), x.strides), tile)
        if bias is not None:
            with recorder.recording(None):
                out = add(out, Tensor(bias.buffer, (1, o, 1, 1), bias.dtype, bias.device,
                                      (0, bias.strides[0], 0, 0), bias.offset))
    return record("conv2d", inputs, out, stride=geometry[2:4], padding=geometry[4:6],
                  dilation=geometry[6:8])


def conv2d_grads(
    grad: Tensor, x: Tensor, weight: Tensor, stride: IntPair = 1, padding: IntPair = 0,
    dilation: IntPair = 1, needs: tuple[bool, bool, bool] = (True, True, False),
) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """The gradients of ``conv2d`` for its input, weight and bias, each only where ``needs``
    says: ``conv2d_input_grad``, ``conv2d_weight_grad`` and ``grad`` summed over
    (N, OH, OW). On a CPU device the three share one reordering of ``grad``. Not recorded.
    """
    if not _unfolds(grad, None):
        gx = conv2d_input_grad(grad, weight, x.shape, stride, padding, dilation) \
            if needs[0] else None
        gw = conv2d_weight_grad(grad, x, weight.shape, stride, padding, dilation) \
            if needs[1] else None
        gb = sum_(grad, (0, 2, 3)) if needs[2] else None
        return gx, gw, gb
    (oh, ow), geometry = _geometry(
        "conv2d_grads", x.shape[2:], weight.shape[2:], stride, padding, dilation
    )
    _check_grad("conv2d_grads", grad, x, (x.shape[0], weight.shape[0], oh, ow))
    with recorder.recording(None):
        planes = conv_cpu.gradient_planes(grad)
        return (
            conv_cpu.input_grad(planes, weight, x.shape, geometry, (oh, ow)) if needs[0] else None,
            conv_cpu.weight_grad(planes, x, weight.shape, geometry, (oh, ow))
            if needs[1] else None,
            conv_cpu.bias_grad(planes) if needs[2] else None,
        )


def conv2d_input_grad(
    grad: Tensor, weight: Tensor, input_shape: Sequence[int], stride: IntPair = 1,
    padding: IntPair = 0, dilation: IntPair = 1, tile: TileConfig | MmaTile | None = None,
) -> Tensor:
    """The gradient of ``conv2d`` for its input: (N, C, H, W) of ``input_shape``.

    ``grad_x[n, c, h, w] = sum over o, kh, kw of weight[o, c, kh, kw] *
    grad[n, o, oh, ow]`` over the windows (oh, ow) whose tap (kh, kw) read
    (h, w): one implicit GEMM per image, (C, O*KH*KW) @ (O*KH*KW, H*W), its
    columns read straight from ``grad`` (on a CPU device, as ``conv2d``:
    one matmul then conv_cpu's fold). Not recorded.
    """
    n, c, h, w = (int(s) for s in input_shape)
    o, _, kh, kw = weight.shape
    (oh, ow), geometry = _geometry(
        "conv2d_input_grad", (h, w), (kh, kw), stride, padding, dilation
    )
    _check_grad("conv2d_input_grad", grad, weight, (n, o, oh, ow))
    if _unfolds(grad, tile):
        with recorder.recording(None):
            return conv_cpu.input_grad(conv_cpu.gradient_planes(grad), weight, (n, c, h, w),
                                       geometry, (oh, ow))
    out = empty((n, c, h, w), grad.dtype, grad.device)
    if out.size:
        # The weight as (C, O, KH, KW): a copy, but of the (small) weight only.
        swapped = Tensor(weight.buffer, (c, o, kh, kw), weight.dtype, weight.device,
                         (weight.strides[1], weight.strides[0], *weight.strides[2:]),
                         weight.offset)
        a = _as_shape(_contiguous(swapped), (c, o * kh * kw))
        implicit_gemm(a, grad, _as_shape(out, (n, c, h * w)), 3,
                      _gather(geometry, (h, w), (oh, ow), grad.strides), tile)
    return out


def conv2d_weight_grad(
    grad: Tensor, x: Tensor, weight_shape: Sequence[int], stride: IntPair = 1,
    padding: IntPair = 0, dilation: IntPair = 1, tile: TileConfig | MmaTile | None = None,
) -> Tensor:
    """The gradient of ``conv2d`` for its weight: (O, C, KH, KW) of ``weight_shape``.

    ``grad_w[o, c, kh, kw] = sum over n, oh, ow of grad[n, o, oh, ow] *
    x[n, c, oh*SH - PH + kh*DH, ow*SW - PW + kw*DW]``: per image an implicit
    GEMM (O, OH*OW) @ (OH*OW, C*KH*KW) reading ``x`` in place, then the
    images' products summed in order (on a CPU device, as ``conv2d``: the
    batch's columns and one matmul). Not recorded.
    """
    o, c, kh, kw = (int(s) for s in weight_shape)
    n, _, h, w = x.shape
    (oh, ow), geometry = _geometry(
        "conv2d_weight_grad", (h, w), (kh, kw), stride, padding, dilation
    )
    _check_grad("conv2d_weight_grad", grad, x, (n, o, oh, ow))
    if x.shape[1] != c:
        raise ValueError(
            f"conv2d_weight_grad: input {x.shape} does not have the {c} channels of "
            f"weight shape {tuple(weight_shape)}"
        )
    if _unfolds(x, tile):
        with recorder.recording(None):
            return conv_cpu.weight_grad(conv_cpu.gradient_planes(grad), x, (o, c, kh, kw),
                                        geometry, (oh, ow))
    a = _as_shape(_contiguous(grad), (n, o, oh * ow))
    out = empty((o, c, kh, kw), grad.dtype, grad.device)
    if out.size:
        implicit_gemm(a, x, _as_shape(out, (o, c * kh * kw)), 2,
                      _gather(geometry, (h, w), (oh, ow), x.strides), tile)
    return out


def _check_conv(op: str, x: Tensor, weight: Tensor, bias: Tensor | None = None) -> None:
    _check(op, x, 4, "input (N, C, H, W)")
    _check(op, weight, 4, "weight (O, C, KH, KW)")
    if x.shape[1] != weight.shape[1] or x.dtype != weight.dtype:
        raise ValueError(
            f"{op}: input {x.shape} ({x.dtype}) and weight {weight.shape} ({weight.dtype}) "
            "must have the same channel count C and dtype"
        )
    if bias is not None:
        _check(op, bias, 1, f"bias ({weight.shape[0]},)")
        if bias.shape != weight.shape[:1] or bias.dtype != weight.dtype:
            raise ValueError(
                f"{op}: bias {bias.shape} ({bias.dtype}) must be ({weight.shape[0]},) "
                f"({weight.dtype}), one value per output channel of weight {weight.shape}"
            )
    common_device(op, [x, weight, *([] if bias is None else [bias])])


def _check_grad(op: str, grad: Tensor, other: Tensor, shape: Shape) -> None:
    _check(op, grad, 4, "gradient (N, O, OH, OW)")
    _check(op, other, 4, "tensor")
    if grad.shape != shape or grad.dtype != other.dtype:
        raise ValueError(
            f"{op}: gradient {grad.shape} ({grad.dtype}) must be {shape} ({other.dtype})"
        )
    common_device(op, [grad, other])


def _unfolds(t: Tensor, tile: TileConfig | MmaTile | None) -> bool:
    """Whether a convolution takes conv_cpu's path (CPU devices, no tile forced,
    tensor cores not emulated)."""
    return (tile is None and t.device.type == "cpu"
            and not conv_on_tensor_cores(t.device, t.dtype))


def _contiguous(t: Tensor) -> Tensor:
    """``t`` itself when it is contiguous, else a contiguous copy (not recorded)."""
    if t.is_contiguous:
        return t
    target = empty(t.shape, t.dtype, t.device)
    copy_(target, t)
    return target


def _as_shape(t: Tensor, shape: Shape) -> Tensor:
    """Contiguous ``t`` seen with another shape of the same size (not recorded)."""
    return Tensor(t.buffer, shape, t.dtype, t.device, None, t.offset)


def _gather(
    geometry: list[int], size: tuple[int, int], out_size: tuple[int, int], strides: Shape
) -> dict[str, int]:
    """matmul.cl's G_* values: geometry, input and output sizes, the gathered tensor's
    channel, row and column strides."""
    names = ("KH", "KW", "SH", "SW", "PH", "PW", "DH", "DW")
    return {**dict(zip(names, geometry, strict=True)), "IH": size[0], "IW": size[1],
            "OH": out_size[0], "OW": out_size[1], "S1": strides[1], "S2": strides[2],
            "S3": strides[3]}


def unfold(
    x: Tensor, kernel_size: IntPair, stride: IntPair = 1, padding: IntPair = 0,
    dilation: IntPair = 1,
) -> Tensor:
    """im2col: every kernel window of ``x`` (N, C, H, W) as a column.

    The result has shape (N, C*KH*KW, OH*OW), with row ``(c*KH + kh)*KW + kw``
    and column ``oh*OW + ow`` holding ``x[n, c, oh*SH - PH + kh*DH,
    ow*SW - PW + kw*DW]`` (0 in the zero padding), as ``torch.nn.functional.unfold``.
    ``OH = floor((H + 2 PH - DH (KH - 1) - 1) / SH) + 1``, likewise OW.
    Recorded as ``unfold`` with ``input_shape`` and the geometry.
    """
    _check("unfold", x, 4, "input (N, C, H, W)")
    n, c, h, w = x.shape
    (oh, ow), geometry = _geometry("unfold", (h, w), kernel_size, stride, padding, dilation)
    kh, kw = geometry[:2]
    out = empty((n, c * kh * kw, oh * ow), x.dtype, x.device)
    launch(
        x.device, _kernel(x, "unfold"), out.size,
        np.int32(out.size), out.buffer, x.buffer, np.int32(x.offset), _strides4(x),
        *_ints([c, h, w, oh, ow, *geometry]),
    )
    return record(
        "unfold", [x], out, input_shape=x.shape, kernel_size=(kh, kw), stride=stride,
        padding=padding, dilation=dilation,
    )


def fold(
    cols: Tensor, output_size: IntPair, kernel_size: IntPair, stride: IntPair = 1,
    padding: IntPair = 0, dilation: IntPair = 1,
) -> Tensor:
    """col2im, the adjoint of ``unfold``: columns (N, C*KH*KW, L) summed back into images.

    ``output_size`` is (H, W). Every column entry is added to the pixel
    ``unfold`` would have read it from (entries that fall in the padding are
    dropped), as ``torch.nn.functional.fold``; L must be OH*OW for that
    geometry. Recorded as ``fold`` with ``output_size`` and the geometry.
    """
    _check("fold", cols, 3, "column tensor (N, C*KH*KW, L)")
    h, w = pair("fold", "output_size", output_size, 1)
    (oh, ow), geometry = _geometry("fold", (h, w), kernel_size, stride, padding, dilation)
    kh, kw = geometry[:2]
    n, rows, length = cols.shape
    if rows % (kh * kw) or length != oh * ow:
        raise ValueError(
            f"fold: columns of shape {cols.shape} do not fit a {kh}x{kw} kernel over "
            f"{h}x{w}: expected (N, C*{kh * kw}, {oh * ow})"
        )
    c = rows // (kh * kw)
    out = empty((n, c, h, w), cols.dtype, cols.device)
    launch(
        cols.device, _kernel(cols, "fold"), out.size,
        np.int32(out.size), out.buffer, cols.buffer, np.int32(cols.offset), _strides4(cols),
        *_ints([c, h, w, oh, ow, *geometry]),
    )
    return record(
        "fold", [cols], out, output_size=(h, w), kernel_size=(kh, kw), stride=stride,
        padding=padding, dilation=dilation,
    )


def max_pool2d(
    x: Tensor, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0,
    dilation: IntPair = 1,
) -> tuple[Tensor, Tensor]:
    """The max of every window of ``x`` (N, C, H, W), and where it was.

    Returns ``(out, indices)``: ``out`` is (N, C, OH, OW) (``stride`` defaults
    to ``kernel_size``; padding counts as -inf, and may be at most half the
    kernel, as in PyTorch), ``indices`` int64 of the same shape holding
    ``h * W + w`` of each max in its (n, c) plane (the first on ties; a NaN
    wins). Recorded as ``max_pool2d`` with ``indices`` and the geometry.
    """
    _check("max_pool2d", x, 4, "input (N, C, H, W)")
    stride = kernel_size if stride is None else stride
    n, c, h, w = x.shape
    (oh, ow), geometry = _geometry("max_pool2d", (h, w), kernel_size, stride, padding, dilation)
    kh, kw, _, _, ph, pw = geometry[:6]
    if ph > kh // 2 or pw > kw // 2:
        raise ValueError(
            f"max_pool2d: padding {ph}x{pw} must be at most half the kernel {kh}x{kw}"
        )
    if x.device.type == "cpu":
        out, indices = conv_cpu.max_pool2d(x, geometry, (oh, ow))
    else:
        out = empty((n, c, oh, ow), x.dtype, x.device)
        indices = empty((n, c, oh, ow), dtypes.int64, x.device)
        launch(
            x.device, _kernel(x, "max_pool2d"), out.size,
            np.int32(out.size), out.buffer, indices.buffer, x.buffer, np.int32(x.offset),
            _strides4(x), *_ints([c, h, w, oh, ow, *geometry]),
        )
    record(
        "max_pool2d", [x], out, indices=indices, input_shape=x.shape, kernel_size=(kh, kw),
        stride=stride, padding=padding, dilation=dilation,
    )
    return out, indices


def max_pool2d_backward(
    grad: Tensor, indices: Tensor, input_shape: Sequence[int], kernel_size: IntPair,
    stride: IntPair | None = None, padding: IntPair = 0, dilation: IntPair = 1,
) -> Tensor:
    """The gradient of ``max_pool2d`` for its input: each window's gradient goes to its max.

    ``grad`` and ``indices`` are (N, C, OH, OW), ``indices`` as ``max_pool2d``
    returned them (contiguous int64); the result has ``input_shape``, and a
    pixel that is the max of several windows receives the sum. Not recorded.
    """
    _check("max_pool2d_backward", grad, 4, "gradient (N, C, OH, OW)")
    stride = kernel_size if stride is None else stride
    n, c, h, w = (int(s) for s in input_shape)
    (oh, ow), geometry = _geometry(
        "max_pool2d_backward", (h, w), kernel_size, stride, padding, dilation
    )
    if grad.shape != (n, c, oh, ow) or indices.shape != grad.shape:
        raise ValueError(
            f"max_pool2d_backward: grad {grad.shape} and indices {indices.shape} must both "
            f"be {(n, c, oh, ow)} for input shape {tuple(input_shape)}"
        )
    if indices.dtype != dtypes.int64 or not indices.is_contiguous or indices.offset:
        raise ValueError(
            "max_pool2d_backward: indices must be the contiguous int64 tensor max_pool2d gave"
        )
    device = common_device("max_pool2d_backward", [grad, indices])
    if device.type == "cpu":
        return conv_cpu.max_pool2d_backward(grad, indices, (n, c, h, w), geometry)
    out = empty((n, c, h, w), grad.dtype, device)
    launch(
        device, _kernel(grad, "max_pool2d_backward"), out.size,
        np.int32(out.size), out.buffer, grad.buffer, np.int32(grad.offset), _strides4(grad),
        indices.buffer, *_ints([c, h, w, oh, ow, *geometry]),
    )
    return out
