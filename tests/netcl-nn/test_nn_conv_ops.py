"""The tensor layer's convolution ops (ops/conv.py) that Conv2d and MaxPool2d stand on,
against PyTorch's unfold, fold and max_pool2d, and their errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import netcl.core.tensor as nt
from netcl.core.tensor import ops

TF = torch.nn.functional

GEOMETRIES = [  # kernel, stride, padding, dilation
    (3, 1, 0, 1),
    (3, 2, 1, 1),
    ((2, 3), (1, 2), (1, 0), (2, 1)),
    (1, 1, 0, 1),
]


def image(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


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


@pytest.mark.parametrize("geometry", [(2, None, 0, 1), (3, 2, 1, 1), (2, 1, 1, 2)], ids=str)
def test_max_pool2d_and_its_indices_match_pytorch(geometry: tuple) -> None:
    kernel, stride, padding, dilation = geometry
    x = image((2, 3, 7, 6), seed=1)
    out, indices = ops.max_pool2d(nt.tensor(x), kernel, stride, padding, dilation)
    expected, expected_indices = TF.max_pool2d(
        torch.from_numpy(x), kernel, stride, padding, dilation, return_indices=True
    )
    np.testing.assert_array_equal(out.numpy(), expected.numpy())
    np.testing.assert_array_equal(indices.numpy(), expected_indices.numpy())
    assert indices.dtype == nt.int64
    g = image(tuple(expected.shape), seed=2)
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
    with pytest.raises(TypeError, match="float32 and float16"):
        ops.unfold(nt.tensor(np.ones((1, 1, 3, 3), np.int32)), 2)
