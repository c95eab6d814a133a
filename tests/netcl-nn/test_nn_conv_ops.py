"""The tensor layer's convolution ops (ops/conv.py) that Conv2d and MaxPool2d stand on:
conv2d and its two gradients (both paths: unfold + panel matmul, the CPU default,
and the implicit GEMM on the tiled kernel, the GPU default) against PyTorch in
float64, unfold, fold and max_pool2d against PyTorch, and their errors."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

import netcl.core.tensor as nt
from netcl.core.device import manager
from netcl.core.tensor import ops
from netcl.core.tensor.ops import conv_cpu
from netcl.core.tensor.ops.matmul import TILE_CONFIGS, TileConfig

TF = torch.nn.functional

GEOMETRIES = [  # kernel, stride, padding, dilation
    (3, 1, 0, 1),
    (3, 2, 1, 1),
    ((2, 3), (1, 2), (1, 0), (2, 1)),
    (1, 1, 0, 1),
    (3, 1, 2, 2),  # stride 1, padded, dilated: a CPU folds its inner planes by AFFINE_FOLD
]


def image(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# None: the device's default path; a tile: the implicit GEMM with that shape
# (each build of it costs PoCL a second or two, so one small shape, whose
# tile edges fall inside these problems along every axis).
PATHS = [None, TileConfig(32, 32, 16, 4, 4)]


def conv_reference(x: np.ndarray, w: np.ndarray, g: np.ndarray, geometry: tuple) -> tuple:
    """torch's conv2d output and both gradients for output gradient g, in float64."""
    _, stride, padding, dilation = geometry
    xt = torch.from_numpy(x).double().requires_grad_()
    wt = torch.from_numpy(w).double().requires_grad_()
    out = TF.conv2d(xt, wt, None, stride, padding, dilation)
    out.backward(torch.from_numpy(g).double())
    assert xt.grad is not None and wt.grad is not None
    return out.detach().numpy(), xt.grad.numpy(), wt.grad.numpy()


def assert_close(got: nt.Tensor, want: np.ndarray, terms: int) -> None:
    # float32 sums of `terms` products of unit normals: rounding grows like sqrt(terms).
    tol = 1e-6 * np.sqrt(terms) * max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got.numpy().astype(np.float64), want, rtol=0, atol=tol)


@pytest.mark.parametrize("path", PATHS, ids=["default", "tiled"])
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_conv2d_and_both_gradients_match_pytorch(path: TileConfig | None, geometry: tuple) -> None:
    kernel = (geometry[0],) * 2 if isinstance(geometry[0], int) else geometry[0]
    x, w = image((3, 5, 9, 7)), image((6, 5, *kernel), seed=1)
    out = ops.conv2d(nt.tensor(x), nt.tensor(w), *geometry[1:], tile=path)
    g = image(out.shape, seed=2)
    want_out, want_gx, want_gw = conv_reference(x, w, g, geometry)
    assert out.shape == want_out.shape
    taps = kernel[0] * kernel[1]
    assert_close(out, want_out, 5 * taps)
    gx = ops.conv2d_input_grad(nt.tensor(g), nt.tensor(w), x.shape, *geometry[1:], tile=path)
    assert_close(gx, want_gx, 6 * taps)
    gw = ops.conv2d_weight_grad(nt.tensor(g), nt.tensor(x), w.shape, *geometry[1:], tile=path)
    assert_close(gw, want_gw, 3 * out.shape[2] * out.shape[3])


def test_weight_gradient_over_a_long_batch_sums_chunks_of_images() -> None:
    """Six 28x28 images: on a CPU the weight gradient's K (4704) is cut into two products
    of three images each, summed after."""
    x, w = image((6, 3, 28, 28)), image((4, 3, 3, 3), seed=1)
    g = image((6, 4, 28, 28), seed=2)
    if manager.default("auto").type == "cpu":
        assert conv_cpu.weight_chunks(6, 28 * 28) == 2
    _, _, want_gw = conv_reference(x, w, g, (3, 1, 1, 1))
    gw = ops.conv2d_weight_grad(nt.tensor(g), nt.tensor(x), w.shape, 1, 1)
    assert_close(gw, want_gw, 6 * 28 * 28)


@pytest.mark.parametrize("path", [None, TILE_CONFIGS[-1]], ids=["default", "tiled"])
def test_conv2d_reads_strided_views_and_fp16(path: TileConfig | None) -> None:
    x, w = image((2, 3, 6, 5)), image((4, 3, 3, 3), seed=1)
    geometry = (3, 1, 1, 1)
    # x as a channel-permuted view, the gradient as a transposed one: no copies asked for.
    view = ops.permute(nt.tensor(x.transpose(1, 0, 2, 3).copy()), (1, 0, 2, 3))
    out = ops.conv2d(view, nt.tensor(w), 1, 1, tile=path)
    g = image(out.shape, seed=2)
    g_view = ops.permute(nt.tensor(g.transpose(0, 1, 3, 2).copy()), (0, 1, 3, 2))
    want_out, want_gx, want_gw = conv_reference(x, w, g, geometry)
    assert_close(out, want_out, 27)
    assert_close(ops.conv2d_input_grad(g_view, nt.tensor(w), x.shape, 1, 1, tile=path),
                 want_gx, 36)
    assert_close(ops.conv2d_weight_grad(g_view, view, w.shape, 1, 1, tile=path), want_gw, 60)
    # fp16 storage, float accumulation: one fp16 rounding of the result (2^-11 relative).
    half = ops.conv2d(nt.tensor(x.astype(np.float16)), nt.tensor(w.astype(np.float16)), 1, 1,
                      tile=path)
    assert half.dtype == nt.float16
    want_half, _, _ = conv_reference(x.astype(np.float16).astype(np.float32),
                                     w.astype(np.float16).astype(np.float32), g, geometry)
    np.testing.assert_allclose(half.numpy().astype(np.float64), want_half, rtol=2e-3,
                               atol=2e-3 * np.abs(want_half).max())


def test_weight_grad_summed_by_a_second_launch_where_the_fence_is_unknown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gemm = importlib.import_module("netcl.core.tensor.ops.gemm")
    monkeypatch.setattr(gemm, "_sums_in_launch", lambda device: False)
    x, w = image((3, 2, 5, 4)), image((3, 2, 3, 3), seed=1)
    g = image((3, 3, 5, 4), seed=2)
    _, _, want_gw = conv_reference(x, w, g, (3, 1, 1, 1))
    got = ops.conv2d_weight_grad(nt.tensor(g), nt.tensor(x), w.shape, 1, 1, tile=PATHS[1])
    assert_close(got, want_gw, 60)


def test_weight_grad_sums_groups_of_images_past_the_slab_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gemm = importlib.import_module("netcl.core.tensor.ops.gemm")
    # Slabs of 3 x 18 floats: two images' worth per group, so 5 images make 3 groups.
    monkeypatch.setattr(gemm, "MAX_SLAB_BYTES", 2 * 3 * 18 * 4)
    x, w = image((5, 2, 5, 4)), image((3, 2, 3, 3), seed=1)
    g = image((5, 3, 5, 4), seed=2)
    _, _, want_gw = conv_reference(x, w, g, (3, 1, 1, 1))
    got = ops.conv2d_weight_grad(nt.tensor(g), nt.tensor(x), w.shape, 1, 1, tile=PATHS[1])
    assert_close(got, want_gw, 100)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_conv2d_with_bias_and_its_three_gradients_match_pytorch(
    geometry: tuple, batch: int
) -> None:
    # On a CPU the bias is added as the product is reordered and the three gradients
    # share one reordering of g (conv_cpu.py); elsewhere a broadcast add and a sum.
    kernel = (geometry[0],) * 2 if isinstance(geometry[0], int) else geometry[0]
    x, w, b = image((batch, 5, 9, 7)), image((6, 5, *kernel), seed=1), image((6,), seed=3)
    _, stride, padding, dilation = geometry
    want = TF.conv2d(torch.from_numpy(x).double(), torch.from_numpy(w).double(),
                     torch.from_numpy(b).double(), stride, padding, dilation).numpy()
    out = ops.conv2d(nt.tensor(x), nt.tensor(w), stride, padding, dilation, bias=nt.tensor(b))
    terms = 5 * kernel[0] * kernel[1]
    assert_close(out, want, terms + 1)
    g = image(want.shape, seed=2)
    _, want_gx, want_gw = conv_reference(x, w, g, geometry)
    gx, gw, gb = ops.conv2d_grads(nt.tensor(g), nt.tensor(x), nt.tensor(w), stride, padding,
                                  dilation, needs=(True, True, True))
    assert gx is not None and gw is not None and gb is not None
    assert_close(gx, want_gx, 6 * kernel[0] * kernel[1])
    assert_close(gw, want_gw, batch * want.shape[2] * want.shape[3])
    assert_close(gb, g.astype(np.float64).sum((0, 2, 3)), batch * want.shape[2] * want.shape[3])
    assert ops.conv2d_grads(nt.tensor(g), nt.tensor(x), nt.tensor(w), stride, padding, dilation,
                            needs=(False, True, False))[::2] == (None, None)


def test_conv2d_bias_of_the_wrong_shape_raises() -> None:
    x, w = nt.tensor(image((1, 3, 5, 5))), nt.tensor(image((2, 3, 3, 3)))
    with pytest.raises(ValueError, match=r"bias \(3,\).*must be \(2,\)"):
        ops.conv2d(x, w, bias=nt.tensor(image((3,))))


def test_conv2d_records_once_and_its_rule_gives_both_gradients() -> None:
    from netcl.autograd import Tape

    x, w = image((2, 3, 5, 5)), image((2, 3, 3, 3), seed=1)
    tx, tw = nt.tensor(x).requires_grad_(), nt.tensor(w).requires_grad_()
    with Tape() as tape:
        loss = ops.sum(ops.conv2d(tx, tw, 1, 1))
    tape.backward(loss)
    _, want_gx, want_gw = conv_reference(x, w, np.ones((2, 2, 5, 5), np.float32), (3, 1, 1, 1))
    assert tx.grad is not None and tw.grad is not None
    assert_close(tx.grad, want_gx, 18)
    assert_close(tw.grad, want_gw, 50)


def test_conv2d_bad_input_raises_naming_the_shapes() -> None:
    x, w = nt.tensor(image((1, 3, 5, 5))), nt.tensor(image((2, 3, 3, 3)))
    with pytest.raises(ValueError, match=r"\(1, 4, 5, 5\).*\(2, 3, 3, 3\).*channel count"):
        ops.conv2d(nt.tensor(image((1, 4, 5, 5))), w)
    with pytest.raises(ValueError, match=r"4-D weight.*\(2, 27\)"):
        ops.conv2d(x, nt.tensor(image((2, 27))))
    with pytest.raises(ValueError, match=r"gradient \(1, 2, 4, 4\).*must be \(1, 2, 3, 3\)"):
        ops.conv2d_input_grad(nt.tensor(image((1, 2, 4, 4))), w, x.shape)
    with pytest.raises(ValueError, match=r"\(1, 3, 5, 5\) does not have the 4 channels"):
        ops.conv2d_weight_grad(nt.tensor(image((1, 2, 3, 3))), x, (2, 4, 3, 3))


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_unfold_and_fold_match_pytorch(geometry: tuple) -> None:
    kernel, stride, padding, dilation = geometry
    x = image((2, 3, 7, 6))
    cols = ops.unfold(nt.tensor(x), kernel, stride, padding, dilation)
    expected = TF.unfold(torch.from_numpy(x), kernel, dilation, padding, stride)
    np.testing.assert_array_equal(cols.numpy(), expected.numpy())
    back = ops.fold(cols, (7, 6), kernel, stride, padding, dilation)
    expected_back = TF.fold(expected, (7, 6), kernel, dilation, padding, stride)
    np.testing.assert_allclose(back.numpy(), expected_back.numpy(), rtol=1e-6, atol=1e-6)


def test_unfold_reads_a_strided_view_without_a_copy() -> None:
    x = image((3, 2, 5, 5))
    view = ops.permute(nt.tensor(x.transpose(1, 0, 2, 3).copy()), (1, 0, 2, 3))
    assert not view.is_contiguous
    expected = TF.unfold(torch.from_numpy(x), 2)
    np.testing.assert_array_equal(ops.unfold(view, 2).numpy(), expected.numpy())


# Windows that share no pixel (stride >= kernel, no dilation) take the CPU's per-window
# backward: with pixels in no window (7 rows by 2, stride past the kernel, padding) or
# none ((1, 2) on 7x6); the others (overlapping, dilated) its per-pixel gather.
POOLS = [(2, None, 0, 1), (2, 3, 1, 1), ((1, 2), None, 0, 1), (3, 2, 1, 1), (2, 1, 1, 2)]


@pytest.mark.parametrize("geometry", POOLS, ids=str)
def test_max_pool2d_and_its_indices_match_pytorch(geometry: tuple) -> None:
    check_max_pool2d_against_torch(image((2, 3, 7, 6), seed=1), geometry, grad_seed=2)


# No padding: the CPU kernel's windows-inside form (the first tap starts the max, no
# bound tests); padded: its bound-tested form. Ties keep the first, a NaN wins (one a
# window here: torch keeps the last of several), a window of -inf gives its first pixel.
@pytest.mark.parametrize("geometry", [(2, None, 0, 1), (3, 2, 1, 1)], ids=str)
def test_max_pool2d_ties_nan_and_minus_infinity_match_pytorch(geometry: tuple) -> None:
    x = np.round(image((2, 2, 6, 6), seed=3))  # many equal values: ties
    x[0, 0, :2, :2] = -np.inf
    x[0, 1, 1, 1] = np.nan
    x[1, 0, 4, 5] = np.nan
    x[1, 1, 2:4, 2:4] = 0.0
    check_max_pool2d_against_torch(x, geometry, grad_seed=4)


def check_max_pool2d_against_torch(x: np.ndarray, geometry: tuple, grad_seed: int) -> None:
    """Output and int64 indices equal torch's; the gradient of a random upstream
    gradient matches torch's."""
    kernel, stride, padding, dilation = geometry
    out, indices = ops.max_pool2d(nt.tensor(x), kernel, stride, padding, dilation)
    expected, expected_indices = TF.max_pool2d(
        torch.from_numpy(x), kernel, stride, padding, dilation, return_indices=True
    )
    np.testing.assert_array_equal(out.numpy(), expected.numpy())
    np.testing.assert_array_equal(indices.numpy(), expected_indices.numpy())
    assert indices.dtype == nt.int64
    g = image(tuple(expected.shape), seed=grad_seed)
    grad = ops.max_pool2d_backward(
        nt.tensor(g), indices, x.shape, kernel, stride, padding, dilation
    )
    xt = torch.from_numpy(x).requires_grad_()
    TF.max_pool2d(xt, kernel, stride, padding, dilation).backward(torch.from_numpy(g))
    assert xt.grad is not None
    np.testing.assert_allclose(grad.numpy(), xt.grad.numpy(), rtol=1e-6)


def test_float16_matches_float32_rounded() -> None:
    x = image((1, 2, 5, 5))
    half = nt.tensor(x.astype(np.float16))
    cols = ops.unfold(half, 3, 1, 1)
    assert cols.dtype == nt.float16
    expected = TF.unfold(torch.from_numpy(x.astype(np.float16).astype(np.float32)), 3, padding=1)
    np.testing.assert_array_equal(cols.numpy().astype(np.float32), expected.numpy())
    out, _ = ops.max_pool2d(half, 2)
    assert out.dtype == nt.float16


def test_bad_input_raises_naming_the_shapes() -> None:
    x = nt.tensor(image((1, 1, 4, 4)))
    with pytest.raises(ValueError, match=r"4-D input.*\(4, 4\)"):
        ops.unfold(nt.tensor(image((4, 4))), 2)
    with pytest.raises(ValueError, match=r"5x5 kernel.*4x4"):
        ops.unfold(x, 5)
    with pytest.raises(ValueError, match="stride must be"):
        ops.unfold(x, 2, stride=0)
    with pytest.raises(ValueError, match=r"padding 2x2 must be at most half the kernel 3x3"):
        ops.max_pool2d(x, 3, 1, 2)
    with pytest.raises(ValueError, match=r"\(1, 4, 8\).*2x2 kernel over 4x4"):
        ops.fold(nt.tensor(image((1, 4, 8))), (4, 4), 2)
    with pytest.raises(TypeError, match="float32, float16 and bfloat16"):
        ops.unfold(nt.tensor(np.ones((1, 1, 3, 3), np.int32)), 2)
