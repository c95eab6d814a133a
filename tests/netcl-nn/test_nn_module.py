"""Module: registration, traversal, modes, state_dict round trip and atomic, checked loads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import netcl.autograd as ag
import netcl.core.tensor as nt
import netcl.nn as nn
from netcl.core.tensor import Parameter, Tensor, ops


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(None, 3, 4)
        self.scale = Parameter(nt.ones(4))
        self.register_buffer("steps", nt.zeros(1))
        self.register_buffer("cache", nt.zeros(2), persistent=False)
        self.drop = nn.Dropout(0.5)
        self.note = "not registered"

    def forward(self, x: Tensor) -> Tensor:
        return ops.mul(self.drop(self.fc(x)), self.scale)


def make_model() -> nn.Sequential:
    return nn.Sequential(Block(), nn.ReLU(), nn.Linear(None, 4, 2))


def test_assignment_registers_parameters_and_submodules_in_order() -> None:
    model = make_model()
    names = [name for name, _ in model.named_parameters()]
    # A module's own parameters, then its children's, depth first, as in PyTorch.
    assert names == ["0.scale", "0.fc.weight", "0.fc.bias", "2.weight", "2.bias"]
    assert len(list(model.parameters())) == 5
    assert [type(m).__name__ for m in model.children()] == ["Block", "ReLU", "Linear"]
    assert [n for n, _ in model.named_modules()] == ["", "0", "0.fc", "0.drop", "1", "2"]
    assert [n for n, _ in model.named_buffers()] == ["0.steps", "0.cache"]
    assert len(model) == 3 and isinstance(model[2], nn.Linear)


def test_a_shared_parameter_is_listed_once() -> None:
    first = nn.Linear(None, 3, 3)
    second = nn.Linear(None, 3, 3)
    second.weight = first.weight
    model = nn.Sequential(first, second)
    assert len(list(model.parameters())) == 3
    assert "1.weight" in model.state_dict()  # saved under both names, as PyTorch does


def test_reassigning_and_deleting_update_the_registry() -> None:
    layer = nn.Linear(None, 2, 2)
    with pytest.raises(TypeError, match=r"parameter 'weight'.*Parameter or None"):
        layer.weight = nt.ones((2, 2))  # type: ignore[assignment]
    layer.bias = None
    assert [n for n, _ in layer.named_parameters()] == ["weight"]
    del layer.weight
    assert list(layer.parameters()) == []

    class Early(nn.Module):
        def __init__(self) -> None:
            self.w = Parameter(nt.ones(1))

    with pytest.raises(AttributeError, match="super"):
        Early()


def test_train_and_eval_reach_every_submodule() -> None:
    model = make_model()
    assert model.eval() is model
    assert all(not m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


def test_call_runs_forward_and_a_module_without_forward_raises() -> None:
    with pytest.raises(NotImplementedError, match="Module does not define forward"):
        nn.Module()(1)
    model = make_model().eval()
    x = nt.tensor(np.ones((5, 3), np.float32))
    assert model(x).shape == (5, 2)


@pytest.mark.smoke
def test_state_dict_round_trip_reproduces_the_model() -> None:
    nt.manual_seed(0)
    source = make_model()
    nt.manual_seed(1)
    target = make_model()
    state = source.state_dict()
    assert set(state) == {n for n, _ in source.named_parameters()} | {"0.steps"}
    assert all(isinstance(v, np.ndarray) for v in state.values())
    state["0.steps"] = np.array([7.0], np.float32)
    result = target.load_state_dict(state)
    assert result.missing_keys == [] and result.unexpected_keys == []
    x = nt.tensor(np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32))
    source.eval()
    target.eval()
    np.testing.assert_array_equal(target(x).numpy(), source(x).numpy())
    np.testing.assert_array_equal(target[0].steps.numpy(), [7.0])
    # The state is a copy: changing it afterwards does not touch the model.
    state["2.bias"][:] = 100
    assert np.abs(target.state_dict()["2.bias"]).max() < 100


def test_load_keeps_parameters_in_their_memory() -> None:
    layer = nn.Linear(None, 2, 2)
    weight = layer.weight
    layer.load_state_dict({"weight": np.eye(2), "bias": [1, 2]})
    assert layer.weight is weight
    np.testing.assert_array_equal(weight.numpy(), np.eye(2))
    np.testing.assert_array_equal(layer.bias.numpy() if layer.bias is not None else None, [1, 2])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.update({"2.weight": np.zeros((3, 4), np.float32)}),
         r"key '2\.weight': the state has shape \(3, 4\), the module expects \(2, 4\)"),
        (lambda s: s.pop("0.fc.bias"), r"missing key '0\.fc\.bias' \(shape \(4,\)\)"),
        (lambda s: s.update({"0.extra": np.zeros(1)}), r"unexpected key '0\.extra'"),
        (lambda s: s.update({"0.scale": np.array(["a"] * 4)}), r"'0\.scale': cannot cast"),
    ],
    ids=["wrong_shape", "missing_key", "unexpected_key", "wrong_dtype"],
)
def test_a_bad_state_raises_naming_the_key_and_changes_nothing(
    change: Callable[[dict[str, Any]], object], message: str
) -> None:
    model = make_model()
    before = model.state_dict()
    state = {k: v + 1 for k, v in before.items()}  # every other entry is valid and different
    change(state)
    with pytest.raises(nn.StateDictError, match=message):
        model.load_state_dict(state)
    after = model.state_dict()
    for name in before:
        np.testing.assert_array_equal(after[name], before[name])


def test_non_strict_load_reports_missing_and_unexpected_keys() -> None:
    layer = nn.Linear(None, 2, 2)
    result = layer.load_state_dict({"weight": np.ones((2, 2)), "other": np.ones(1)}, strict=False)
    assert result.missing_keys == ["bias"] and result.unexpected_keys == ["other"]
    np.testing.assert_array_equal(layer.weight.numpy(), np.ones((2, 2)))
    with pytest.raises(nn.StateDictError, match=r"'weight'.*\(3,\).*\(2, 2\)"):
        layer.load_state_dict({"weight": np.ones(3)}, strict=False)


def test_zero_grad_clears_parameter_grads() -> None:
    model = make_model().eval()
    with ag.Tape() as tape:
        loss = ops.sum(model(nt.ones((2, 3))))
    tape.backward(loss)
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_repr_shows_the_tree() -> None:
    text = repr(nn.Sequential(nn.Linear(None, 3, 4, bias=False), nn.GELU("tanh")))
    assert "(0): Linear(in_features=3, out_features=4, bias=False)" in text
    assert "(1): GELU(approximate='tanh')" in text


def test_a_torch_tensor_passed_to_a_model_names_the_type_and_the_fix() -> None:
    import torch

    model = nn.Sequential(nn.Linear(None, 4, 2), nn.ReLU())
    with pytest.raises(TypeError, match=r"Sequential: input 0 is a torch.Tensor; netcl modules "
                       r"take netcl Tensors"):
        model(torch.zeros(3, 4))
