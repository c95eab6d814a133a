"""Average pooling: fixed windows (through unfold) and adaptive bins (through matmul)."""

from __future__ import annotations

import weakref

import numpy as np

from netcl.core.device import Device
from netcl.core.tensor import Tensor, from_numpy, ones, ops, zeros
from netcl.core.tensor.ops.conv import IntPair, pair

# Adaptive pooling's averaging matrices, per device and (input, output) size: made on
# the host once, so a jitted step that pools finds them here and uploads nothing.
_bins: weakref.WeakKeyDictionary[Device, dict[tuple[int, int, str], Tensor]] = (
    weakref.WeakKeyDictionary())


def avg_pool2d(
    x: Tensor,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Tensor:
    """The mean over each window of x (N, C, H, W), as ``torch.nn.functional.avg_pool2d``.

    ``stride`` defaults to ``kernel_size``; zero padding counts towards the
    divisor when ``count_include_pad``; ``divisor_override`` replaces it.
    ``ceil_mode`` adds a last window that runs past the bottom or right edge
    where one would start inside the input or its padding (PyTorch's rule); what
    lies past the padding never counts towards a divisor. Computed as the
    windows' sum through ``unfold`` (whose gradient is fold).
    """
    if x.ndim != 4:
        raise ValueError(f"avg_pool2d: expected an (N, C, H, W) input, got shape {x.shape}")
    kh, kw = pair("avg_pool2d", "kernel_size", kernel_size, 1)
    sh, sw = pair("avg_pool2d", "stride", (kh, kw) if stride is None else stride, 1)
    ph, pw = pair("avg_pool2d", "padding", padding, 0)
    if ph > kh // 2 or pw > kw // 2:
        raise ValueError(
            f"avg_pool2d: padding {ph}x{pw} must be at most half the kernel {kh}x{kw}"
        )
    n, c, h, w = x.shape
    oh, ow = _out_length(h, kh, sh, ph, ceil_mode), _out_length(w, kw, sw, pw, ceil_mode)
    # Rows and columns the last windows of ceil_mode reach past the padding.
    extra = (max(0, (oh - 1) * sh + kh - h - 2 * ph), max(0, (ow - 1) * sw + kw - w - 2 * pw))
    cols = ops.unfold(_extend(ops.reshape(x, (n * c, 1, h, w)), extra), (kh, kw), (sh, sw),
                      (ph, pw))
    sums = ops.sum(cols, 1)  # (N*C, OH*OW)
    if divisor_override is not None:
        if divisor_override == 0:
            raise ValueError("avg_pool2d: divisor_override must not be 0")
        out = ops.div(sums, float(divisor_override))
    elif extra == (0, 0) and (count_include_pad or (ph, pw) == (0, 0)):
        out = ops.div(sums, float(kh * kw))
    else:
        # Each window's count of what it may average: the input, and its padding too
        # when count_include_pad.
        if count_include_pad:
            counted = _extend(ones((1, 1, h + 2 * ph, w + 2 * pw), x.dtype, x.device), extra)
            inside = ops.unfold(counted, (kh, kw), (sh, sw), (0, 0))
        else:
            counted = _extend(ones((1, 1, h, w), x.dtype, x.device), extra)
            inside = ops.unfold(counted, (kh, kw), (sh, sw), (ph, pw))
        out = ops.div(sums, ops.sum(inside, 1))
    return ops.reshape(out, (n, c, oh, ow))


def _out_length(size: int, kernel: int, stride: int, pad: int, ceil_mode: bool) -> int:
    """Windows along one side, PyTorch's way: with ``ceil_mode`` a last partial window
    counts unless it would start past the input and its leading padding."""
    span = size + 2 * pad - kernel
    if span < 0:
        raise ValueError(
            f"avg_pool2d: a kernel of {kernel} does not fit a side of {size} padded by {pad}"
        )
    if not ceil_mode:
        return span // stride + 1
    length = -(-span // stride) + 1
    return length - 1 if (length - 1) * stride >= size + pad else length


def _extend(t: Tensor, extra: tuple[int, int]) -> Tensor:
    """``t`` (N, C, H, W) with ``extra`` rows and columns of zeros after its last ones."""
    rows, columns = extra
    if rows:
        n, c, _, w = t.shape
        t = ops.cat([t, zeros((n, c, rows, w), t.dtype, t.device)], 2)
    if columns:
        n, c, h, _ = t.shape
        t = ops.cat([t, zeros((n, c, h, columns), t.dtype, t.device)], 3)
    return t


def adaptive_avg_pool2d(x: Tensor, output_size: int | tuple[int | None, int | None]) -> Tensor:
    """The mean over bin (i, j) of x (..., H, W) for an output (..., OH, OW), as PyTorch:
    rows floor(i H / OH) to ceil((i + 1) H / OH), likewise columns (None: keep that
    size). A bin's mean is the mean of its rows' column means, so the result is
    Ph @ x @ Pw^T with averaging matrices Ph (OH, H), Pw (OW, W)."""
    if x.ndim not in (3, 4):
        raise ValueError(
            f"adaptive_avg_pool2d: expected a (C, H, W) or (N, C, H, W) input, got {x.shape}"
        )
    h, w = x.shape[-2:]
    sizes = (output_size, output_size) if isinstance(output_size, int) else output_size
    oh = h if sizes[0] is None else int(sizes[0])
    ow = w if sizes[1] is None else int(sizes[1])
    if oh <= 0 or ow <= 0:
        raise ValueError(f"adaptive_avg_pool2d: output_size must be positive, got {output_size}")
    if (oh, ow) == (1, 1):
        return ops.mean(x, (-2, -1), keepdims=True)
    rows = _averaging(h, oh, x)
    cols = _averaging(w, ow, x)
    return ops.matmul(ops.matmul(rows, x), ops.transpose(cols, 0, 1))


def _averaging(size: int, out: int, like: Tensor) -> Tensor:
    """The (out, size) matrix whose row i averages PyTorch's adaptive bin i."""
    cache = _bins.setdefault(like.device, {})
    key = (size, out, like.dtype.str)
    matrix = cache.get(key)
    if matrix is None:
        values = np.zeros((out, size), dtype=like.dtype)
        for i in range(out):
            start, end = (i * size) // out, -(-((i + 1) * size) // out)
            values[i, start:end] = 1.0 / (end - start)
        matrix = cache[key] = from_numpy(values, like.device)
    return matrix
