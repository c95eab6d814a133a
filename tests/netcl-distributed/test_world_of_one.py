"""A world of one pays nothing for the data-parallel wrappers: no host copy, no collective."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import netcl.autograd as ag
import netcl.distributed as dist
from netcl.core.tensor import from_numpy, manual_seed
from netcl.distributed import host_copy
from netcl.nn import Linear, Module, ReLU, Sequential, cross_entropy
from netcl.optim import SGD, Adam, Optimizer


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[dist.World]:
    monkeypatch.setenv("NETCL_DEVICE", "auto")
    yield dist.init()


def _model(world: dist.World) -> Module:
    manual_seed(3)
    q = world.device.queue
    return Sequential(Linear(q, 6, 9), ReLU(), Linear(q, 9, 4))


def _never(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("a world of one copied a bucket to the host")


@pytest.mark.parametrize(("optimizer_class", "defaults"),
                         [(Adam, {"lr": 0.01, "weight_decay": 0.1}),
                          (SGD, {"lr": 0.05, "momentum": 0.9})])
def test_zero_in_a_world_of_one_is_the_plain_optimizer(
    world: dist.World, monkeypatch: pytest.MonkeyPatch, optimizer_class: type[Optimizer],
    defaults: dict[str, Any],
) -> None:
    plain_model, zero_model = _model(world), _model(world)
    plain = optimizer_class(plain_model.parameters(), **defaults)
    zero = dist.ZeroRedundancyOptimizer(list(zero_model.parameters()), optimizer_class,
                                        **defaults)
    monkeypatch.setattr(host_copy, "to_host", _never)
    monkeypatch.setattr(host_copy, "to_device", _never)
    rng = np.random.default_rng(0)
    q = world.device.queue
    for _ in range(3):
        x = from_numpy(rng.standard_normal((5, 6)).astype(np.float32), q)
        y = from_numpy(rng.integers(0, 4, 5), q)
        for model, optimizer in ((plain_model, plain), (zero_model, zero)):
            with ag.Tape() as tape:
                loss = cross_entropy(model(x), y)
            tape.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
    # The same kernels over the same values: bit for bit, not merely close.
    for a, b in zip(plain_model.parameters(), zero_model.parameters(), strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
