"""clip_grad_norm_ and clip_grad_value_ against torch.nn.utils."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from netcl.core.tensor import Parameter, from_numpy
from netcl.optim import clip_grad_norm_, clip_grad_value_

SHAPES = [(3,), (40, 7), (5000,), ()]


def pair(seed: int = 0, scale: float = 1.0) -> tuple[list[Parameter], list[torch.Tensor]]:
    rng = np.random.default_rng(seed)
    ours, theirs = [], []
    for shape in SHAPES:
        p = Parameter(from_numpy(np.zeros(shape, np.float32)))
        grad = np.asarray(scale * rng.standard_normal(shape), dtype=np.float32)
        p.grad = from_numpy(grad)
        t = torch.zeros(shape, requires_grad=True)
        t.grad = torch.from_numpy(grad.copy())
        ours.append(p)
        theirs.append(t)
    ours.append(Parameter(from_numpy(np.zeros(2, np.float32))))  # no grad: ignored
    return ours, theirs


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, -math.inf, 3.0, 0.5])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm_matches_torch(norm_type: float, max_norm: float) -> None:
    ours, theirs = pair()
    total = clip_grad_norm_(ours, max_norm, norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type, foreach=False)
    assert isinstance(total, float)
    assert total == pytest.approx(float(expected), rel=1e-5)
    for p, t in zip(ours, theirs, strict=False):
        assert p.grad is not None
        np.testing.assert_allclose(p.grad.numpy(), t.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_clip_grad_norm_accepts_a_generator_and_one_tensor() -> None:
    ours, theirs = pair(seed=1, scale=3.0)
    total = clip_grad_norm_((p for p in ours), 1.0)
    torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    np.testing.assert_allclose(ours[2].grad.numpy(), theirs[2].grad.numpy(), rtol=1e-5)
    assert total > 1.0
    single = ours[1]
    assert clip_grad_norm_(single, 1e9) == pytest.approx(float(theirs[1].grad.norm()), rel=1e-5)


def test_clip_grad_norm_of_fp16_grads_is_computed_in_float32() -> None:
    grad = np.full(70000, 300.0, dtype=np.float16)  # sum of squares overflows fp16
    p = Parameter(from_numpy(np.zeros(70000, np.float16)))
    p.grad = from_numpy(grad)
    total = clip_grad_norm_([p], 1.0)
    assert total == pytest.approx(300.0 * math.sqrt(70000), rel=1e-5)
    assert p.grad.dtype == np.float16
    np.testing.assert_allclose(p.grad.numpy().astype(np.float64),
                               np.full(70000, 300.0 / total), rtol=1e-3)


def test_nonfinite_norm() -> None:
    ours, _ = pair()
    values = ours[0].grad.numpy()
    values[1] = np.nan
    ours[0].grad = from_numpy(values)
    assert math.isnan(clip_grad_norm_(ours, 1.0))
    with pytest.raises(RuntimeError, match="error_if_nonfinite"):
        clip_grad_norm_(ours, 1.0, error_if_nonfinite=True)
    assert clip_grad_norm_([], 1.0) == 0.0


@pytest.mark.parametrize(("args", "fragment"), [
    ({"max_norm": -1.0}, "invalid max_norm: -1.0"),
    ({"max_norm": 1.0, "norm_type": 0.0}, "invalid norm_type: 0.0"),
])
def test_clip_grad_norm_rejects_bad_arguments(args: dict[str, Any], fragment: str) -> None:
    ours, _ = pair()
    with pytest.raises(ValueError, match=fragment):
        clip_grad_norm_(ours, **args)


@pytest.mark.parametrize("clip_value", [0.1, 1.0, 10.0])
def test_clip_grad_value_matches_torch(clip_value: float) -> None:
    ours, theirs = pair(seed=2)
    clip_grad_value_(ours, clip_value)
    torch.nn.utils.clip_grad_value_(theirs, clip_value, foreach=False)
    for p, t in zip(ours, theirs, strict=False):
        assert p.grad is not None
        np.testing.assert_array_equal(p.grad.numpy(), t.grad.numpy())
    with pytest.raises(ValueError, match="invalid clip_value: -1"):
        clip_grad_value_(ours, -1)
