"""Tensors, Parameters and Modules pickle and deepcopy through host memory."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

import netcl.autograd as ag
import netcl.core.tensor as nt
import netcl.nn as nn
from netcl.core.device import Device, manager
from netcl.core.tensor import Parameter, Tensor, loading_onto
from netcl.optim import Adam


def roundtrip(value: object) -> object:
    return pickle.loads(pickle.dumps(value))


@pytest.mark.parametrize("dtype", ["float32", "float16", "int32", "int64", "bool"])
def test_a_tensor_of_every_dtype_round_trips(dtype: str) -> None:
    values = (np.arange(12) % 3).reshape(3, 4).astype(dtype)
    t = nt.tensor(values)
    back = roundtrip(t)
    assert isinstance(back, Tensor) and back.dtype == t.dtype and back.shape == (3, 4)
    np.testing.assert_array_equal(back.numpy(), values)
    assert back.buffer is not t.buffer


def test_a_view_pickles_its_elements_and_a_parameter_stays_a_parameter() -> None:
    base = nt.tensor(np.arange(12, dtype=np.float32).reshape(3, 4))
    view = roundtrip(base.T[1:])
    assert isinstance(view, Tensor) and view.is_contiguous
    np.testing.assert_array_equal(view.numpy(), np.arange(12).reshape(3, 4).T[1:])
    frozen = Parameter(nt.tensor([1.0, 2.0]), requires_grad=False)
    back = roundtrip(frozen)
    assert type(back) is Parameter and back.requires_grad is False
    trained = roundtrip(nt.tensor([3.0], requires_grad=True))
    assert isinstance(trained, Tensor) and trained.requires_grad and trained.is_leaf


def test_a_deep_copied_model_computes_the_same_and_trains_independently() -> None:
    nt.manual_seed(0)
    model = nn.Sequential(nn.Linear(None, 4, 8), nn.ReLU(), nn.Linear(None, 8, 3))
    Adam(model.parameters(), lr=0.1)  # params become views of the optimizer's flat buffer
    x = nt.randn((5, 4))
    for twin in (copy.deepcopy(model), roundtrip(model)):
        assert isinstance(twin, nn.Module)
        np.testing.assert_array_equal(twin(x).numpy(), model(x).numpy())
        assert all(type(p) is Parameter for p in twin.parameters())
        before = [p.numpy() for p in model.parameters()]
        optimizer = Adam(twin.parameters(), lr=0.1)
        with ag.Tape() as tape:
            loss = twin(x).sum()
        tape.backward(loss)
        optimizer.step()
        for p, old in zip(model.parameters(), before, strict=True):
            np.testing.assert_array_equal(p.numpy(), old)  # the original is untouched
        assert not np.array_equal(twin(x).numpy(), model(x).numpy())


def test_a_tensor_referenced_twice_is_loaded_once() -> None:
    shared = nt.tensor([1.0, 2.0])
    first, second = roundtrip([shared, shared])  # type: ignore[misc]
    assert first is second


def test_loading_onto_a_named_device() -> None:
    other = Device(manager.default("auto").cl_device, "other")
    data = pickle.dumps(nn.Linear(None, 2, 2))
    with loading_onto(other):
        layer = pickle.loads(data)
    assert isinstance(layer, nn.Linear) and layer.weight.device is other
    assert pickle.loads(data).weight.device is manager.default("auto")
