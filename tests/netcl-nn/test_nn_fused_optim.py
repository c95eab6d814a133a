"""A model trained through autograd with the fused optimizers: grads land in the flat buffer."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import pytest

import netcl.autograd as ag
import netcl.core.tensor as nt
import netcl.nn as nn
import netcl.optim as no
from netcl.optim.functional import kernels


def data() -> tuple[nt.Tensor, nt.Tensor]:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((64, 10)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1).astype(np.int64)
    return nt.tensor(x), nt.tensor(y)


def mlp() -> nn.Module:
    nt.manual_seed(7)
    return nn.Sequential(nn.Linear(None, 10, 32), nn.ReLU(), nn.Linear(None, 32, 3))


def backward(model: nn.Module, x: nt.Tensor, y: nt.Tensor) -> float:
    with ag.Tape() as tape:
        loss = nn.cross_entropy(model(x), y)
    tape.backward(loss)
    return float(loss.item())


OPTIMIZERS = [
    (no.Adam, {"lr": 1e-2}), (no.AdamW, {"lr": 1e-2, "weight_decay": 0.1}),
    (no.Momentum, {"lr": 0.1, "nesterov": True}), (no.RMSProp, {"lr": 1e-2, "centered": True}),
]


@pytest.mark.parametrize(("cls", "kwargs"), OPTIMIZERS, ids=lambda v: getattr(v, "__name__", ""))
def test_autograd_grads_land_in_the_flat_grad_buffer(
    cls: type[no.Optimizer], kwargs: dict[str, Any]
) -> None:
    model = mlp()
    params = list(model.parameters())
    optimizer = cls(params, **kwargs)
    assert [id(p) for p in model.parameters()] == [id(p) for p in params]
    (bucket,) = optimizer._buckets
    backward(model, *data())
    for p, home in zip(params, bucket.grad_homes, strict=True):
        assert p.grad is home
        assert p.buffer is bucket.param_flat.buffer
        assert home.buffer is bucket.grad_flat.buffer


@pytest.mark.parametrize("set_to_none", [True, False])
@pytest.mark.parametrize(("cls", "kwargs"), OPTIMIZERS, ids=lambda v: getattr(v, "__name__", ""))
def test_training_fused_and_per_parameter_is_bit_identical(
    cls: type[no.Optimizer], kwargs: dict[str, Any], set_to_none: bool
) -> None:
    x, y = data()
    runs = []
    for fused in (None, False):
        model = mlp()
        optimizer = cls(model.parameters(), **kwargs, fused=fused)
        losses = []
        for _ in range(10):
            losses.append(backward(model, x, y))
            optimizer.step()
            optimizer.zero_grad(set_to_none=set_to_none)
        runs.append((losses, [p.numpy() for p in model.parameters()]))
    (fused_losses, fused_params), (loose_losses, loose_params) = runs
    assert fused_losses == loose_losses
    assert fused_losses[-1] < fused_losses[0]
    for a, b in zip(fused_params, loose_params, strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_model_sees_the_updated_parameters() -> None:
    model = mlp()
    first = model[0]
    assert isinstance(first, nn.Linear)
    weight = first.weight
    optimizer = no.SGD(model.parameters(), lr=0.5)
    assert first.weight is weight
    x, y = data()
    before = weight.numpy()
    backward(model, x, y)
    grad = weight.grad
    assert grad is not None
    expected = before - 0.5 * grad.numpy()
    optimizer.step()
    np.testing.assert_allclose(first.weight.numpy(), expected, rtol=1e-6, atol=1e-7)
    with ag.no_grad():
        out = model(x).numpy()
    first_out = np.maximum(x.numpy() @ expected.T + first.bias.numpy(), 0.0)
    second = model[2]
    assert isinstance(second, nn.Linear)
    np.testing.assert_allclose(
        out, first_out @ second.weight.numpy().T + second.bias.numpy(), rtol=1e-4, atol=1e-5
    )


def test_one_adam_launch_per_step_for_the_whole_model(monkeypatch: pytest.MonkeyPatch) -> None:
    launches: list[int] = []

    def counting(*args: Any, **kwargs: Any) -> None:
        launches.append(args[3])
        kernels.launch_over(*args, **kwargs)

    monkeypatch.setattr(
        importlib.import_module("netcl.optim.functional.adam"), "launch_over", counting
    )
    model = mlp()
    optimizer = no.Adam(model.parameters())
    total = sum(p.size for p in model.parameters())
    x, y = data()
    for _ in range(3):
        backward(model, x, y)
        optimizer.step()
        optimizer.zero_grad()
    assert launches == [total] * 3
