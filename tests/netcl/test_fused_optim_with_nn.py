"""A model trained through autograd with the fused optimizers: grads land in the flat buffer.

``fused=None`` (the default) and ``fused=True`` lay a group's parameters out in one
flat buffer and step it with one launch; ``fused=False`` is the per-parameter
reference. Training the same model both ways must give the same numbers.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import netcl.autograd as ag
import netcl.core.tensor as nt
import netcl.nn as nn
import netcl.optim as no
from netcl.optim.functional import kernels

Fused = bool | None


def data() -> tuple[nt.Tensor, nt.Tensor]:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((64, 10)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1).astype(np.int64)
    return nt.tensor(x), nt.tensor(y)


def mlp() -> nn.Sequential:
    """The same initial weights on every call."""
    nt.manual_seed(7)
    return nn.Sequential(nn.Linear(None, 10, 32), nn.ReLU(), nn.Linear(None, 32, 3))


def linear(model: nn.Sequential, index: int) -> nn.Linear:
    layer = model[index]
    assert isinstance(layer, nn.Linear)
    return layer


def backward(model: nn.Module, x: nt.Tensor, y: nt.Tensor) -> float:
    with ag.Tape() as tape:
        loss = nn.cross_entropy(model(x), y)
    tape.backward(loss)
    return float(loss.item())


def identities(model: nn.Module) -> list[tuple[str, int]]:
    return [(name, id(p)) for name, p in model.named_parameters()]


def values(model: nn.Module) -> dict[str, np.ndarray]:
    return {name: p.numpy() for name, p in model.named_parameters()}


def grads(model: nn.Module) -> dict[str, np.ndarray]:
    out = {}
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        out[name] = p.grad.numpy()
    return out


def assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert list(a) == list(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


OPTIMIZERS: list[tuple[type[no.Optimizer], dict[str, Any]]] = [
    (no.SGD, {"lr": 0.1, "weight_decay": 1e-2}),
    (no.Adam, {"lr": 1e-2}),
    (no.Adam, {"lr": 1e-2, "amsgrad": True, "weight_decay": 1e-2}),
    (no.AdamW, {"lr": 1e-2, "weight_decay": 0.1}),
    (no.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    (no.RMSProp, {"lr": 1e-2, "centered": True}),
]
OPTIMIZER_IDS = ["SGD", "Adam", "Adam-amsgrad", "AdamW", "SGD-nesterov", "RMSProp"]


@pytest.mark.parametrize("fused", [None, True], ids=["fused-default", "fused-true"])
@pytest.mark.parametrize(("cls", "kwargs"), OPTIMIZERS, ids=OPTIMIZER_IDS)
def test_autograd_grads_land_in_the_flat_grad_buffer(
    cls: type[no.Optimizer], kwargs: dict[str, Any], fused: Fused
) -> None:
    x, y = data()
    reference = mlp()
    backward(reference, x, y)
    expected = grads(reference)

    model = mlp()
    named = identities(model)
    params = list(model.parameters())
    optimizer = cls(params, **kwargs, fused=fused)
    assert identities(model) == named  # the same Parameter objects as before
    (bucket,) = optimizer.flat_layout.buckets
    assert bucket.params == params and bucket.total == sum(p.size for p in params)
    assert len(bucket.grad_homes) == len(params)
    backward(model, x, y)
    for i, p in enumerate(params):
        home = bucket.grad_homes[i]
        assert p.grad is home and p.grad_home is home
        assert optimizer.flat_layout.placement(p) == (bucket, i)
        assert home.buffer is bucket.grad_flat.buffer
        assert home.offset == bucket.grad_flat.offset + bucket.starts[i]
        assert home.shape == p.shape and home.is_contiguous
        assert p.buffer is bucket.param_flat.buffer
        assert p.offset == bucket.param_offsets[i] == bucket.param_flat.offset + bucket.starts[i]
    # The flat buffers hold exactly the model's grads and weights, end to end, in order.
    np.testing.assert_array_equal(
        bucket.grad_flat.numpy(), np.concatenate([g.ravel() for g in expected.values()])
    )
    np.testing.assert_array_equal(
        bucket.param_flat.numpy(), np.concatenate([p.numpy().ravel() for p in params])
    )
    assert_same(grads(model), expected)


def test_building_the_optimizer_changes_no_value() -> None:
    x, _ = data()
    model = mlp()
    before = values(model)
    with ag.no_grad():
        out_before = model(x).numpy()
    optimizer = no.Adam(model.parameters())
    assert len(optimizer.flat_layout.buckets) == 1
    assert_same(values(model), before)
    with ag.no_grad():
        np.testing.assert_array_equal(model(x).numpy(), out_before)


def train(
    cls: type[no.Optimizer],
    kwargs: dict[str, Any],
    fused: Fused,
    set_to_none: bool,
    steps: int = 10,
) -> tuple[list[float], dict[str, np.ndarray], no.Optimizer]:
    x, y = data()
    model = mlp()
    optimizer = cls(model.parameters(), **kwargs, fused=fused)
    losses = []
    for _ in range(steps):
        losses.append(backward(model, x, y))
        optimizer.step()
        optimizer.zero_grad(set_to_none=set_to_none)
    return losses, values(model), optimizer


@pytest.mark.parametrize("set_to_none", [True, False], ids=["set-to-none", "zero-fill"])
@pytest.mark.parametrize("fused", [None, True], ids=["fused-default", "fused-true"])
@pytest.mark.parametrize(("cls", "kwargs"), OPTIMIZERS, ids=OPTIMIZER_IDS)
def test_training_fused_and_per_parameter_is_bit_identical(
    cls: type[no.Optimizer], kwargs: dict[str, Any], fused: Fused, set_to_none: bool
) -> None:
    fused_losses, fused_params, fused_opt = train(cls, kwargs, fused, set_to_none)
    loose_losses, loose_params, loose_opt = train(cls, kwargs, False, set_to_none)
    assert len(fused_opt.flat_layout.buckets) == 1 and not loose_opt.flat_layout.buckets
    assert fused_losses == loose_losses
    assert fused_losses[-1] < fused_losses[0]
    assert_same(fused_params, loose_params)
    # The state too, as the state dicts read it.
    fused_state, loose_state = fused_opt.state_dict()["state"], loose_opt.state_dict()["state"]
    plain_sgd = cls is no.SGD and not kwargs.get("momentum")  # keeps no state
    assert sorted(fused_state) == sorted(loose_state) == ([] if plain_sgd else [0, 1, 2, 3])
    for index, entries in loose_state.items():
        assert set(fused_state[index]) == set(entries)
        for key, value in entries.items():
            np.testing.assert_array_equal(fused_state[index][key], value, err_msg=key)


@pytest.mark.parametrize("fused", [None, False], ids=["fused", "per-parameter"])
def test_zero_grad_after_a_step_leaves_no_trace(fused: Fused) -> None:
    x, y = data()
    model = mlp()
    optimizer = no.Adam(model.parameters(), fused=fused)
    backward(model, x, y)
    optimizer.step()
    optimizer.zero_grad(set_to_none=False)
    for name, grad in grads(model).items():
        np.testing.assert_array_equal(grad, 0.0, err_msg=name)
    if fused is None:
        np.testing.assert_array_equal(optimizer.flat_layout.buckets[0].grad_flat.numpy(), 0.0)
    optimizer.zero_grad(set_to_none=True)
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("set_to_none", [True, False], ids=["set-to-none", "zero-fill"])
def test_two_backwards_accumulate_in_the_flat_buffer(set_to_none: bool) -> None:
    x, y = data()
    x2 = nt.tensor(np.flip(x.numpy(), axis=0).copy())
    results = []
    for fused in (None, False):
        model = mlp()
        optimizer = no.Adam(model.parameters(), lr=1e-2, fused=fused)
        for _ in range(3):
            backward(model, x, y)
            backward(model, x2, y)  # no zero_grad between: the grads add up
            if fused is None:
                bucket = optimizer.flat_layout.buckets[0]
                assert all(
                    p.grad is home
                    for p, home in zip(bucket.params, bucket.grad_homes, strict=True)
                )
            accumulated = grads(model)
            optimizer.step()
            optimizer.zero_grad(set_to_none=set_to_none)
        results.append((accumulated, values(model)))
    (fused_grads, fused_values), (loose_grads, loose_values) = results
    assert_same(fused_grads, loose_grads)
    assert_same(fused_values, loose_values)
    # Accumulated, not overwritten: the sum of the two batches' grads.
    model = mlp()
    backward(model, x, y)
    first = grads(model)
    model.zero_grad()
    backward(model, x2, y)
    second = grads(model)
    model = mlp()
    (bucket,) = no.Adam(model.parameters()).flat_layout.buckets
    backward(model, x, y)
    backward(model, x2, y)
    assert all(p.grad is p.grad_home for p in bucket.params)
    for name, grad in grads(model).items():
        np.testing.assert_allclose(grad, first[name] + second[name], rtol=1e-6, atol=1e-7)


def test_grads_computed_before_the_optimizer_is_built_move_into_the_flat_buffer() -> None:
    x, y = data()
    results = []
    for fused in (None, False):
        model = mlp()
        backward(model, x, y)
        before = grads(model)
        optimizer = no.Adam(model.parameters(), lr=1e-2, fused=fused)
        if fused is None:
            bucket = optimizer.flat_layout.buckets[0]
            assert all(
                p.grad is home for p, home in zip(bucket.params, bucket.grad_homes, strict=True)
            )
        assert_same(grads(model), before)
        optimizer.step()
        results.append(values(model))
    assert_same(results[0], results[1])
    assert any(
        not np.array_equal(after, before)
        for after, before in zip(results[0].values(), values(mlp()).values(), strict=True)
    )


def test_the_model_sees_the_updated_parameters() -> None:
    model = mlp()
    first, second = linear(model, 0), linear(model, 2)
    named = identities(model)
    weight = first.weight
    optimizer = no.SGD(model.parameters(), lr=0.5)
    assert first.weight is weight and identities(model) == named
    x, y = data()
    before = weight.numpy()
    backward(model, x, y)
    grad = weight.grad
    assert grad is not None
    expected = before - 0.5 * grad.numpy()
    optimizer.step()
    np.testing.assert_allclose(first.weight.numpy(), expected, rtol=1e-6, atol=1e-7)
    # Every reference reads the same values: the layers, the names, the state dict, the bucket.
    (bucket,) = optimizer.flat_layout.buckets
    flat = bucket.param_flat.numpy()
    state = model.state_dict()
    for i, (name, p) in enumerate(model.named_parameters()):
        assert (name, id(p)) == named[i] and p is bucket.params[i]
        start = bucket.starts[i]
        np.testing.assert_array_equal(flat[start:start + p.size], p.numpy().ravel())
        np.testing.assert_array_equal(state[name], p.numpy())
    with ag.no_grad():
        out = model(x).numpy()
    assert first.bias is not None and second.bias is not None
    hidden = np.maximum(x.numpy() @ expected.T + first.bias.numpy(), 0.0)
    np.testing.assert_allclose(
        out, hidden @ second.weight.numpy().T + second.bias.numpy(), rtol=1e-4, atol=1e-5
    )


@pytest.mark.parametrize("fused", [None, False], ids=["fused", "per-parameter"])
def test_loading_weights_after_the_optimizer_was_built(fused: Fused) -> None:
    x, y = data()
    nt.manual_seed(11)
    other = nn.Sequential(nn.Linear(None, 10, 32), nn.ReLU(), nn.Linear(None, 32, 3))
    weights = other.state_dict()
    model = mlp()
    optimizer = no.Adam(model.parameters(), lr=1e-2, fused=fused)
    model.load_state_dict(weights)
    if fused is None:
        np.testing.assert_array_equal(
            optimizer.flat_layout.buckets[0].param_flat.numpy(),
            np.concatenate([w.ravel() for w in weights.values()]),
        )
    for _ in range(3):
        backward(model, x, y)
        optimizer.step()
        optimizer.zero_grad()
    reference = no.Adam(other.parameters(), lr=1e-2, fused=False)
    for _ in range(3):
        backward(other, x, y)
        reference.step()
        reference.zero_grad()
    assert_same(values(model), values(other))


# -- kernel launches --------------------------------------------------------------------------


@pytest.fixture
def adam_launches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The element count of every Adam kernel launch, in order."""
    launches: list[int] = []

    def counting(*args: Any, **kwargs: Any) -> None:
        launches.append(int(args[3][0].count))  # the parameter operand's elements
        kernels.launch_step(*args, **kwargs)

    monkeypatch.setattr(
        importlib.import_module("netcl.optim.functional.adam"), "launch_step", counting
    )
    return launches


def run_steps(
    model: nn.Module, optimizer: no.Optimizer, steps: int = 3,
    before_step: Callable[[], None] | None = None,
) -> None:
    x, y = data()
    for _ in range(steps):
        backward(model, x, y)
        if before_step is not None:
            before_step()
        optimizer.step()
        optimizer.zero_grad()


@pytest.mark.parametrize("fused", [None, True])
def test_one_adam_launch_per_step_for_the_whole_model(
    adam_launches: list[int], fused: Fused
) -> None:
    model = mlp()
    optimizer = no.Adam(model.parameters(), fused=fused)
    total = sum(p.size for p in model.parameters())
    assert total == 10 * 32 + 32 + 32 * 3 + 3
    run_steps(model, optimizer)
    assert adam_launches == [total] * 3


def test_per_parameter_adam_launches_once_per_parameter(adam_launches: list[int]) -> None:
    model = mlp()
    optimizer = no.Adam(model.parameters(), fused=False)
    sizes = [p.size for p in model.parameters()]
    assert len(sizes) == 4
    run_steps(model, optimizer)
    assert adam_launches == sizes * 3


def test_one_launch_per_bucket_with_two_param_groups(adam_launches: list[int]) -> None:
    model = mlp()
    first, second = linear(model, 0), linear(model, 2)
    groups: list[dict[str, Any]] = [
        {"params": [first.weight, first.bias]},
        {"params": [second.weight, second.bias], "lr": 1e-2},
    ]
    optimizer = no.Adam(groups)
    assert len(optimizer.flat_layout.buckets) == 2
    sizes = [b.total for b in optimizer.flat_layout.buckets]
    assert sizes == [10 * 32 + 32, 32 * 3 + 3]
    run_steps(model, optimizer)
    assert adam_launches == sizes * 3


def test_a_missing_grad_splits_the_bucket_into_two_launches(adam_launches: list[int]) -> None:
    """The first layer's bias gets no grad: the run breaks there, and nothing else changes."""
    results = []
    for fused in (None, False):
        adam_launches.clear()
        model = mlp()
        first = linear(model, 0)
        optimizer = no.Adam(model.parameters(), lr=1e-2, fused=fused)
        bias = first.bias
        assert bias is not None

        def drop_bias_grad(bias: nt.Tensor = bias) -> None:
            bias.grad = None

        run_steps(model, optimizer, before_step=drop_bias_grad)
        if fused is None:
            assert adam_launches == [10 * 32, 32 * 3 + 3] * 3
        else:
            assert adam_launches == [10 * 32, 32 * 3, 3] * 3
        assert id(bias) not in {id(p) for p in optimizer.state}  # never stepped, no state
        results.append(values(model))
    assert_same(results[0], results[1])
    np.testing.assert_array_equal(results[0]["0.bias"], values(mlp())["0.bias"])


class ToFloat32(nn.Module):
    def forward(self, x: nt.Tensor) -> nt.Tensor:
        return x.astype(nt.float32)


def mixed_precision_mlp() -> nn.Sequential:
    """A float16 first layer and a float32 second one: one param group, two buckets."""
    nt.manual_seed(7)
    return nn.Sequential(
        nn.Linear(None, 10, 32, dtype=nt.float16), ToFloat32(), nn.ReLU(),
        nn.Linear(None, 32, 3),
    )


def test_one_launch_per_dtype_bucket_and_the_same_numbers(adam_launches: list[int]) -> None:
    x, y = data()
    x16 = x.astype(nt.float16)
    results = []
    for fused in (None, False):
        adam_launches.clear()
        model = mixed_precision_mlp()
        optimizer = no.Adam(model.parameters(), lr=1e-2, fused=fused)
        if fused is None:
            assert [(b.param_flat.dtype, b.total) for b in optimizer.flat_layout.buckets] == [
                (nt.float16, 10 * 32 + 32), (nt.float32, 32 * 3 + 3)
            ]
            for bucket in optimizer.flat_layout.buckets:
                assert bucket.grad_flat.dtype == bucket.param_flat.dtype
        losses = []
        for _ in range(5):
            losses.append(backward(model, x16, y))
            for p in model.parameters():
                assert p.grad is not None and p.grad.dtype == p.dtype
                if fused is None:
                    assert p.grad is p.grad_home
            optimizer.step()
            optimizer.zero_grad(set_to_none=False)
        expected = [10 * 32 + 32, 32 * 3 + 3] if fused is None else [320, 32, 96, 3]
        assert adam_launches == expected * 5
        results.append((losses, values(model)))
    (fused_losses, fused_values), (loose_losses, loose_values) = results
    assert fused_losses == loose_losses and fused_losses[-1] < fused_losses[0]
    assert_same(fused_values, loose_values)
    assert fused_values["0.weight"].dtype == np.float16


class TiedLanguageModel(nn.Module):
    """An embedding whose weight is also the output layer's: one Parameter, two uses."""

    def __init__(self) -> None:
        super().__init__()
        nt.manual_seed(2)
        self.emb = nn.Embedding(None, 20, 8)
        self.norm = nn.LayerNorm(None, 8)
        self.out = nn.Linear(None, 8, 20, bias=False)
        self.out.weight = self.emb.weight

    def forward(self, idx: nt.Tensor) -> nt.Tensor:
        out: nt.Tensor = self.out(self.norm(self.emb(idx)))
        return out


def test_a_tied_weight_gets_both_grads_in_its_home() -> None:
    rng = np.random.default_rng(0)
    # Each token once: the embedding's backward adds rows with float atomics, whose order
    # (and so the last bit of a row hit twice) varies between runs on a GPU, fused or not.
    idx, target = nt.tensor(rng.permutation(20)), nt.tensor(rng.integers(0, 20, 20))
    results = []
    for fused in (None, False):
        model = TiedLanguageModel()
        optimizer = no.AdamW(model.parameters(), lr=1e-2, fused=fused)
        if fused is None:
            (bucket,) = optimizer.flat_layout.buckets
            assert bucket.params[0] is model.emb.weight is model.out.weight
        losses = []
        for _ in range(5):
            with ag.Tape() as tape:
                loss = nn.cross_entropy(model(idx), target)
            tape.backward(loss)
            losses.append(float(loss.item()))
            if fused is None:
                assert model.emb.weight.grad is bucket.grad_homes[0]
            optimizer.step()
            model.zero_grad()  # the module's own zero_grad: grads None, homes kept
        results.append((losses, values(model), model.out.weight.numpy()))
    (fused_losses, fused_values, fused_out), (loose_losses, loose_values, _) = results
    assert list(fused_values) == ["emb.weight", "norm.weight", "norm.bias"]
    assert fused_losses == loose_losses and fused_losses[-1] < fused_losses[0]
    assert_same(fused_values, loose_values)
    np.testing.assert_array_equal(fused_out, fused_values["emb.weight"])
