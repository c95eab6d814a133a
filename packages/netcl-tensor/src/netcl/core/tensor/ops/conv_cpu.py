"""The CPU (PoCL) convolution and pooling paths behind ops/conv.py: im2col of the whole
batch into one column matrix, one panel matmul, and kernels with the geometry compiled
in (conv_cpu.cl).

conv.py checks arguments and chooses per device; these functions take its checked
geometry, ``[KH, KW, SH, SW, PH, PW, DH, DW]``, and contiguous-or-not tensors of
float32, float16 or bfloat16. Nothing here is recorded.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from netcl.core.device import Device
from netcl.core.tensor import dtypes
from netcl.core.tensor.dispatch import empty
from netcl.core.tensor.launch import enqueue
from netcl.core.tensor.ops import gemm
from netcl.core.tensor.ops.elementwise import copy_, fill_, rows_group
from netcl.core.tensor.ops.matmul import matmul
from netcl.core.tensor.ops.reduce import sum as sum_
from netcl.core.tensor.tensor import Shape, Tensor

GEOMETRY_FILE = Path(__file__).with_name("conv_geometry.cl")
KERNEL_FILE = Path(__file__).with_name("conv_cpu.cl")
# bf16's load and store, the shared window geometry, then the kernels.
SOURCES = (dtypes.BFLOAT16_CL, GEOMETRY_FILE, KERNEL_FILE)
Geometry = list[int]
_NAMES = ("KH", "KW", "SH", "SW", "PH", "PW", "DH", "DW")
GROUP_ITEMS = 256  # work-items a work-group holds at most (see rows_group)
# Rows of K a weight-gradient product takes at most: its B panels (K x 16 floats,
# 256 KiB here) then stay in L2 for the blocks of rows that share them, where
# K = 50176 (64 images of 28x28) streamed each panel from memory once a block.
# Weight gradient (unfold, products, sum), one thread, same run: 64x16x28x28
# 11.7 -> 10.9 ms, 64x32x14x14 8.6 -> 7.7 ms; 2048 and 8192 within 2% of 4096.
WEIGHT_CHUNK = 4096


def _kernel(dtype: np.dtype[Any], device: Device, name: str, geometry: Geometry,
            size: tuple[int, int], out_size: tuple[int, int], bias: bool = False,
            panels_of_cols: bool = False, affine_fold: bool = False) -> Any:
    defines: dict[str, str | int] = {
        "T": dtypes.STORAGE_C_TYPE[dtype], "LOAD(p, i)": dtypes.cl_load(dtype, "(p)", "(i)"),
        "STORE(p, i, v)": dtypes.cl_store(dtype, "(p)", "(i)", "(v)")}
    defines.update(zip(_NAMES, geometry, strict=True))
    defines.update(H=size[0], W=size[1], OH=out_size[0], OW=out_size[1], BIAS=int(bias),
                   HALF=int(dtype == dtypes.float16), BF16=int(dtype == dtypes.bfloat16),
                   PANELS_OF_COLS=int(panels_of_cols), AFFINE_FOLD=int(affine_fold),
                   INSIDE=int(_windows_inside(geometry, size, out_size)))
    return device.kernels.kernel(SOURCES, name, defines)


def _windows_inside(geometry: Geometry, size: tuple[int, int], out_size: tuple[int, int]) -> bool:
    """Whether every window's every tap is a pixel of the image (no padding read): the
    pooling kernels then compile without their bound tests."""
    kh, kw, sh, sw, ph, pw, dh, dw = geometry
    return all(pad == 0 and (o - 1) * stride + (k - 1) * dil < n
               for k, stride, pad, dil, n, o in ((kh, sh, ph, dh, size[0], out_size[0]),
                                                 (kw, sw, pw, dw, size[1], out_size[1])))


def _local_size(grid: tuple[int, int, int]) -> tuple[int, int, int]:
    """Work-groups of whole rows (the first axis, which PoCL vectorizes along), rows
    added along the second axis up to GROUP_ITEMS work-items (see rows_group)."""
    return (*rows_group(grid[0], grid[1], GROUP_ITEMS), 1)


def _launch(device: Device, kernel: Any, grid: tuple[int, int, int], *args: Any) -> None:
    # Exact grid sizes: the kernels have no bound test (see conv_cpu.cl).
    if math.prod(grid):
        enqueue(device, kernel, grid, _local_size(grid), args)


def _contiguous(t: Tensor) -> Tensor:
    if t.is_contiguous:
        return t
    target = empty(t.shape, t.dtype, t.device)
    copy_(target, t)
    return target


def _view(t: Tensor, shape: Shape, strides: Shape | None = None) -> Tensor:
    return Tensor(t.buffer, shape, t.dtype, t.device, strides, t.offset)


def _transposed(t: Tensor) -> Tensor:
    """A 2-D tensor's transpose, as a view (matmul reads any strides)."""
    return _view(t, t.shape[::-1], t.strides[::-1])


def _panels(x: Tensor, geometry: Geometry, out_size: tuple[int, int], of_cols: bool,
            chunks: int = 1) -> tuple[Tensor, int, int]:
    """The batch's column matrix packed into panels (conv_cpu.cl's unfold_panels), as
    B of ``cols`` (of_cols) or of ``cols^T`` in ``chunks`` batch entries of equal K;
    returns it and that B's K (of one entry) and N."""
    x = _contiguous(x)
    n, c, h, w = x.shape
    rows, length = c * geometry[0] * geometry[1], n * out_size[0] * out_size[1]
    k, cols = (rows, length) if of_cols else (length // chunks, rows)
    count = -(-cols // gemm.PANEL_COLS) * chunks
    panels = empty((count * k * gemm.PANEL_COLS,), dtypes.float32, x.device)
    kernel = _kernel(x.dtype, x.device, "unfold_panels", geometry, (h, w), out_size,
                     panels_of_cols=of_cols)
    _launch(x.device, kernel, (gemm.PANEL_COLS, k, count),
            panels.buffer, x.buffer, np.int32(x.offset), np.int32(n), np.int32(c))
    return panels, k, cols


def _times_panels(a: Tensor, panels: Tensor, k: int, n: int, chunks: int = 1) -> Tensor:
    """``a`` (M, chunks*K) @ the packed B (K, N) of ``_panels``, (M, N) in a's dtype; with
    ``chunks``, K-column slices of ``a`` times B's entries, (chunks, M, N)."""
    m = a.shape[0]
    key = ("conv_cpu", a.shape, a.strides, a.offset, a.dtype, n, chunks)
    device = a.device
    plan = device.kernels.plans.get(key)
    if plan is None:
        operand = gemm.Operand(a.dtype, a.shape, a.offset, a.strides[0], a.strides[1],
                               (k * a.strides[1],) if chunks > 1 else ())
        plan = device.kernels.remember(key, gemm.packed_b_plan(device, operand, m, n, k, chunks))
    out = empty((chunks, m, n) if chunks > 1 else (m, n), a.dtype, device)
    if out.size:
        gemm.run(device, plan, a.buffer, panels.buffer, out.buffer)
    return out


def fold_cols(cols: Tensor, input_shape: Shape, geometry: Geometry,
              out_size: tuple[int, int]) -> Tensor:
    """(N, C, H, W) from the contiguous column matrix (C*KH*KW, N*OH*OW): im2col's adjoint.

    With stride 1, the planes whose taps all lie inside ``cols`` (every plane but the
    first and the last in practice: ``_affine_planes``) take the AFFINE_FOLD build,
    whose loads run along a row of cols (64x16x28x28 3x3: 5.1 -> 2.4 ms on one core)."""
    n, c, h, w = input_shape
    out = empty(input_shape, cols.dtype, cols.device)
    planes = n * c
    affine = _affine_planes(input_shape, geometry, out_size)
    if affine is not None:
        kernel = _kernel(cols.dtype, cols.device, "fold_cols", geometry, (h, w), out_size,
                         affine_fold=True)
        _launch(cols.device, kernel, (w, h, affine[1] - affine[0]), out.buffer, cols.buffer,
                np.int32(n), np.int32(c), np.int32(affine[0]))
    kernel = _kernel(cols.dtype, cols.device, "fold_cols", geometry, (h, w), out_size)
    for first, end in ((0, planes),) if affine is None else ((0, affine[0]), (affine[1], planes)):
        _launch(cols.device, kernel, (w, h, end - first), out.buffer, cols.buffer, np.int32(n),
                np.int32(c), np.int32(first))
    return out


def _affine_planes(input_shape: Shape, geometry: Geometry,
                   out_size: tuple[int, int]) -> tuple[int, int] | None:
    """The planes [1, N*C - 1) when the stride is 1 and every element AFFINE_FOLD loads
    for them (a tap's, held or not) lies inside cols; else None. The address of tap
    (kh, kw) at pixel (h, w) of plane n*C + c is linear in each of n, c, kh, kw, h and w,
    so over those planes it is least and greatest at a corner: planes 1 and C, N*C - 2 and
    N*C - 1 - C (the nearest to the two left out: image 0 channel 0, the last image's last
    channel), the first and last taps and pixels."""
    n, c, h, w = input_shape
    kh, kw, sh, sw, ph, pw, dh, dw = geometry
    oh, ow = out_size
    planes, length = n * c, n * oh * ow
    if sh != 1 or sw != 1 or planes < 3:
        return None

    def address(plane: int, tap_h: int, tap_w: int, y: int, x: int) -> int:
        row = ((plane % c) * kh + tap_h) * kw + tap_w
        return (row * length + plane // c * oh * ow + (y + ph - tap_h * dh) * ow
                + x + pw - tap_w * dw)

    addresses = [address(plane, a, b, y, x)
                 for plane in {1, c, planes - 2, planes - 1 - c} if 1 <= plane <= planes - 2
                 for a in (0, kh - 1) for b in (0, kw - 1) for y in (0, h - 1) for x in (0, w - 1)]
    inside = min(addresses) >= 0 and max(addresses) < c * kh * kw * length
    return (1, planes - 1) if inside else None


def swap_planes(t: Tensor, bias: Tensor | None = None) -> Tensor:
    """(A, B, LEN) -> (B, A, LEN) contiguous, plus ``bias[a]`` when given."""
    t = _contiguous(t)
    a, b, length = t.shape
    out = empty((b, a, length), t.dtype, t.device)
    kernel = _kernel(t.dtype, t.device, "swap_planes", [1] * 8, (1, 1), (1, 1), bias is not None)
    source = t if bias is None else bias
    _launch(t.device, kernel, (length, a, b), out.buffer, t.buffer, np.int32(t.offset),
            source.buffer, np.int32(source.offset))
    return out


def conv2d(x: Tensor, weight: Tensor, geometry: Geometry, out_size: tuple[int, int],
           bias: Tensor | None) -> Tensor:
    """(N, O, OH, OW): weight (O, C*KH*KW) @ the batch's columns, then to NCHW plus bias."""
    n = x.shape[0]
    o = weight.shape[0]
    length = out_size[0] * out_size[1]
    a = _contiguous(weight)
    product = _times_panels(_view(a, (o, a.size // o)), *_panels(x, geometry, out_size, True))
    out = swap_planes(_view(product, (o, n, length)), bias)
    return _view(out, (n, o, *out_size))


def gradient_planes(grad: Tensor) -> Tensor:
    """The output gradient (N, O, OH, OW) as the (O, N*OH*OW) matrix the products take."""
    n, o, oh, ow = grad.shape
    return _view(swap_planes(_view(_contiguous(grad), (n, o, oh * ow))), (o, n * oh * ow))


def input_grad(planes: Tensor, weight: Tensor, input_shape: Shape, geometry: Geometry,
               out_size: tuple[int, int]) -> Tensor:
    """dx from ``gradient_planes``: fold(weight^T (C*KH*KW, O) @ planes)."""
    o = weight.shape[0]
    a = _contiguous(weight)
    cols = matmul(_transposed(_view(a, (o, a.size // o))), planes)
    return fold_cols(cols, input_shape, geometry, out_size)


def weight_grad(planes: Tensor, x: Tensor, weight_shape: Shape, geometry: Geometry,
                out_size: tuple[int, int]) -> Tensor:
    """dw from ``gradient_planes``: planes @ columns^T, (O, C*KH*KW) seen as ``weight_shape``;
    over a long batch, the sum of the products of whole images' chunks (see WEIGHT_CHUNK)."""
    chunks = weight_chunks(x.shape[0], out_size[0] * out_size[1])
    product = _times_panels(planes, *_panels(x, geometry, out_size, False, chunks), chunks)
    if chunks > 1:
        product = sum_(product, 0)
    return _view(product, weight_shape)


def weight_chunks(images: int, pixels: int) -> int:
    """Into how many products the weight gradient's K = images * pixels is cut: the
    fewest whose K (whole images) is at most WEIGHT_CHUNK, 1 when no cut fits."""
    per_chunk = max((d for d in range(1, images + 1)
                     if images % d == 0 and d * pixels <= WEIGHT_CHUNK), default=images)
    return images // per_chunk


def bias_grad(planes: Tensor) -> Tensor:
    """db from ``gradient_planes`` (contiguous): each row's sum (conv_cpu.cl's row_sums)."""
    rows, length = planes.shape
    out = empty((rows,), planes.dtype, planes.device)
    kernel = _kernel(planes.dtype, planes.device, "row_sums", [1] * 8, (1, 1), (1, 1))
    if rows:
        enqueue(planes.device, kernel, (rows,), (1,),
                (out.buffer, planes.buffer, np.int32(planes.offset), np.int32(length)))
    return out


def max_pool2d(x: Tensor, geometry: Geometry, out_size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    x = _contiguous(x)
    n, c, h, w = x.shape
    out = empty((n, c, *out_size), x.dtype, x.device)
    indices = empty((n, c, *out_size), dtypes.int64, x.device)
    kernel = _kernel(x.dtype, x.device, "max_pool2d_rows", geometry, (h, w), out_size)
    _launch(x.device, kernel, (out_size[1], out_size[0], n * c), out.buffer, indices.buffer,
            x.buffer, np.int32(x.offset))
    return out, indices


def max_pool2d_backward(grad: Tensor, indices: Tensor, input_shape: Shape,
                        geometry: Geometry) -> Tensor:
    grad = _contiguous(grad)
    n, c, h, w = input_shape
    oh, ow = grad.shape[2:]
    kh, kw, sh, sw, ph, pw, dh, dw = geometry
    out = empty(input_shape, grad.dtype, grad.device)
    args = (out.buffer, grad.buffer, np.int32(grad.offset), indices.buffer)
    if dh == dw == 1 and sh >= kh and sw >= kw:  # no pixel in two windows
        if (sh, sw, ph, pw, oh * sh, ow * sw) != (kh, kw, 0, 0, h, w):  # some in none
            fill_(out, 0)
        kernel = _kernel(grad.dtype, grad.device, "max_pool2d_backward_windows", geometry,
                         (h, w), (oh, ow))
        _launch(grad.device, kernel, (ow, oh, n * c), *args)
    else:
        kernel = _kernel(grad.dtype, grad.device, "max_pool2d_backward_rows", geometry,
                         (h, w), (oh, ow))
        _launch(grad.device, kernel, (w, h, n * c), *args)
    return out
