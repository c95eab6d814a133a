"""Average pooling: fixed windows (through unfold) and adaptive bins (through matmul)."""

from __future__ import annotations

import weakref

import numpy as np

from netcl.core.device import Device
from netcl.core.tensor import Tensor, from_numpy, ones, ops
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
    Computed as the windows' sum through ``unfold`` (whose gradient is fold).
    """
    if ceil_mode:
        raise NotImplementedError("avg_pool2d: ceil_mode=True is not supported")
    if x.ndim != 4:
        raise ValueError(f"avg_pool2d: expected an (N, C, H, W) input, got shape {x.shape}")
    kh, kw = pair("avg_pool2d", "kernel_size", kernel_size, 1)
    stride = (kh, kw) if stride is None else stride
    ph, pw = pair("avg_pool2d", "padding", padding, 0)
    if ph > kh // 2 or pw > kw // 2:
        raise ValueError(
            f"avg_pool2d: padding {ph}x{pw} must be at most half the kernel {kh}x{kw}"
        )
    n, c, h, w = x.shape
    cols = ops.unfold(ops.reshape(x, (n * c, 1, h, w)), (kh, kw), stride, (ph, pw))
    sums = ops.sum(cols, 1)  # (N*C, OH*OW)
    (oh, ow) = _out_size(h, w, kh, kw, stride, ph, pw)
    if divisor_override is not None:
        if divisor_override == 0:
            raise ValueError("avg_pool2d: divisor_override must not be 0")
        out = ops.div(sums, float(divisor_override))
    elif count_include_pad or (ph, pw) == (0, 0):
        out = ops.div(sums, float(kh * kw))
    else:
        inside = ops.unfold(ones((1, 1, h, w), x.dtype, x.device), (kh, kw), stride, (ph, pw))
        out = ops.div(sums, ops.sum(inside, 1))
    return ops.reshape(out, (n, c, oh, ow))


def _out_size(
    h: int, w: int, kh: int, kw: int, stride: IntPair, ph: int, pw: int
) -> tuple[int, int]:
    sh, sw = pair("avg_pool2d", "stride", stride, 1)
    return (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1


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
