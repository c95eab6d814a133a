"""tril, triu, masked_fill, split, chunk and the dim=/keepdim= spellings against PyTorch."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import netcl.autograd as ag
from netcl.core.tensor import Tensor, from_numpy, ops


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240611)


def _pair(rng: np.random.Generator, shape: tuple[int, ...]) -> tuple[Tensor, torch.Tensor]:
    values = rng.standard_normal(shape).astype(np.float32)
    return from_numpy(values).requires_grad_(), torch.tensor(values, requires_grad=True)


@pytest.mark.parametrize("diagonal", [-2, -1, 0, 1, 3])
@pytest.mark.parametrize("name", ["tril", "triu"])
def test_triangles_and_their_gradients_match_torch(name: str, diagonal: int,
                                                   rng: np.random.Generator) -> None:
    ours, theirs = _pair(rng, (2, 4, 6))
    grad = rng.standard_normal((2, 4, 6)).astype(np.float32)
    with ag.Tape() as tape:
        out = getattr(ours, name)(diagonal)
        loss = ops.sum(ops.mul(out, from_numpy(grad)))
    tape.backward(loss)
    expected = getattr(torch, name)(theirs, diagonal)
    expected.backward(torch.tensor(grad))
    np.testing.assert_array_equal(out.numpy(), expected.detach().numpy())
    np.testing.assert_array_equal(ours.grad.numpy(), theirs.grad.numpy())


def test_triangle_of_bool_and_int_keeps_the_dtype() -> None:
    ones = from_numpy(np.ones((3, 3), bool))
    np.testing.assert_array_equal(ops.tril(ones).numpy(), np.tril(np.ones((3, 3), bool)))
    ints = from_numpy(np.arange(9, dtype=np.int64).reshape(3, 3))
    assert ops.triu(ints, 1).numpy().tolist() == np.triu(np.arange(9).reshape(3, 3), 1).tolist()


def test_masked_fill_broadcasts_the_mask_and_passes_the_rest_of_the_gradient(
    rng: np.random.Generator,
) -> None:
    ours, theirs = _pair(rng, (2, 3, 4))
    mask = rng.random((3, 1)) > 0.5
    with ag.Tape() as tape:
        out = ours.masked_fill(from_numpy(mask), -1e9)
        loss = ops.sum(ops.mul(out, out))
    tape.backward(loss)
    expected = theirs.masked_fill(torch.tensor(mask), -1e9)
    (expected * expected).sum().backward()
    np.testing.assert_array_equal(out.numpy(), expected.detach().numpy())
    np.testing.assert_array_equal(ours.grad.numpy(), theirs.grad.numpy())
    with pytest.raises(TypeError, match="bool Tensor"):
        ours.masked_fill(from_numpy(mask.astype(np.int32)), 0.0)
    with pytest.raises(ValueError, match="does not broadcast"):
        ours.masked_fill(from_numpy(np.ones((2, 3, 4, 1), bool)), 0.0)


def test_tensor_where_matches_torch(rng: np.random.Generator) -> None:
    values = rng.standard_normal((3, 4)).astype(np.float32)
    cond = values > 0
    ours = from_numpy(values).where(from_numpy(cond), 7.0).numpy()
    np.testing.assert_array_equal(ours, torch.tensor(values).where(torch.tensor(cond), 7.0))


@pytest.mark.parametrize(("how", "dim"), [(2, 1), (3, -1), ([1, 4, 0], 1), ([2, 0, 3], -1)])
def test_split_matches_torch(how: Any, dim: int, rng: np.random.Generator) -> None:
    values = rng.standard_normal((2, 5, 5)).astype(np.float32)
    ours = from_numpy(values).split(how, dim)
    theirs = torch.tensor(values).split(how, dim)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize(("chunks", "size"), [(3, 7), (4, 6), (5, 3), (2, 1)])
def test_chunk_matches_torch_and_its_gradient_reaches_every_piece(
    chunks: int, size: int, rng: np.random.Generator
) -> None:
    ours, theirs = _pair(rng, (size, 2))
    with ag.Tape() as tape:
        pieces = ours.chunk(chunks)
        loss = ops.sum(ops.cat([ops.mul(p, float(i + 1)) for i, p in enumerate(pieces)]))
    tape.backward(loss)
    expected = theirs.chunk(chunks)
    torch.cat([p * float(i + 1) for i, p in enumerate(expected)]).sum().backward()
    assert [p.shape for p in pieces] == [tuple(p.shape) for p in expected]
    np.testing.assert_array_equal(ours.grad.numpy(), theirs.grad.numpy())


def test_split_sections_must_sum_to_the_size() -> None:
    with pytest.raises(ValueError, match="sum to 5"):
        from_numpy(np.zeros((5,), np.float32)).split([2, 2])


def test_dim_and_keepdim_mean_what_axis_and_keepdims_mean(rng: np.random.Generator) -> None:
    values = rng.standard_normal((2, 3, 4)).astype(np.float32)
    x, t = from_numpy(values), torch.tensor(values)
    for name in ("sum", "mean", "logsumexp"):
        np.testing.assert_array_equal(getattr(x, name)(dim=1, keepdim=True).numpy(),
                                      getattr(x, name)(axis=1, keepdims=True).numpy())
        np.testing.assert_allclose(getattr(x, name)(dim=(0, 2)).numpy(),
                                   getattr(t, name)(dim=(0, 2)).numpy(), rtol=1e-6)
    assert x.argmax(dim=2).numpy().tolist() == t.argmax(dim=2).tolist()
    for name in ("max", "min"):
        values, indices = getattr(x, name)(dim=1, keepdim=True)
        expected = getattr(t, name)(dim=1, keepdim=True)
        np.testing.assert_array_equal(values.numpy(), expected.values.numpy())
        assert indices.numpy().tolist() == expected.indices.tolist()
        np.testing.assert_array_equal(getattr(x, name)(axis=1).numpy(),
                                      expected.values.numpy()[:, 0])
    np.testing.assert_allclose(x.softmax(dim=1).numpy(), t.softmax(dim=1).numpy(), rtol=1e-6)
    assert ops.cat([x, x], dim=2).shape == (2, 3, 8)
    assert ops.stack([x, x], dim=1).shape == (2, 2, 3, 4)
    assert x.unsqueeze(dim=0).squeeze(dim=0).shape == x.shape
    with pytest.raises(TypeError, match="one argument"):
        x.sum(axis=0, dim=1)
    with pytest.raises(TypeError, match="one argument"):
        ops.cat([x, x], 1, dim=2)
