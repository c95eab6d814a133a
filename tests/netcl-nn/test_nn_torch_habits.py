"""What a PyTorch training script calls on a model, beside the layers: Module.apply,
requires_grad_, zero_grad(set_to_none=...), buffers(), get_submodule, train's check, nn.init
with torch's names and formulas, and Dropout's inplace, each against torch 2.13."""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pytest
import torch

import netcl.autograd as ag
import netcl.core.tensor as nt
import netcl.nn as nn
from netcl.core.tensor import ops
from netcl.nn import functional as F
from netcl.nn import init

TNN = torch.nn


def cnn(lib: Any, *q: None) -> Any:
    """A torchvision-style block: conv, batch norm, ReLU(inplace=True), pooling, a head."""
    return lib.Sequential(lib.Conv2d(*q, 1, 4, 3, padding=1), lib.BatchNorm2d(*q, 4),
                          lib.ReLU(inplace=True), lib.AdaptiveAvgPool2d(1), lib.Flatten(),
                          lib.Dropout(0.1, inplace=True), lib.Linear(*q, 4, 2))


def test_apply_visits_children_first_then_the_module_and_returns_it() -> None:
    ours, theirs = cnn(nn, None), cnn(TNN)
    seen: list[list[str]] = [[], []]
    assert ours.apply(lambda m: seen[0].append(type(m).__name__)) is ours
    assert theirs.apply(lambda m: seen[1].append(type(m).__name__)) is theirs
    assert seen[0] == seen[1] and seen[0][-1] == "Sequential"


def test_requires_grad_freezes_a_submodule_and_returns_it() -> None:
    ours, theirs = cnn(nn, None), cnn(TNN)
    assert ours[0].requires_grad_(False) is ours[0]
    theirs[0].requires_grad_(False)
    assert [(n, p.requires_grad) for n, p in ours.named_parameters()] == [
        (n, p.requires_grad) for n, p in theirs.named_parameters()]
    ours.requires_grad_()
    assert all(p.requires_grad for p in ours.parameters())


def test_zero_grad_sets_to_none_or_zeros_and_leaves_a_missing_grad_none() -> None:
    model = nn.Sequential(nn.Linear(None, 3, 2), nn.Linear(None, 2, 2))
    with ag.Tape() as tape:
        loss = ops.sum(model[0](nt.ones((1, 3))))
    tape.backward(loss)  # the second layer gets no gradient
    grad = model[0].weight.grad
    model.zero_grad(set_to_none=False)
    assert model[0].weight.grad is grad  # the same tensor, zeroed in place, as torch's
    np.testing.assert_array_equal(grad.numpy() if grad is not None else None, np.zeros((2, 3)))
    assert model[1].weight.grad is None
    model.zero_grad()  # torch's default: set_to_none=True
    assert all(p.grad is None for p in model.parameters())


def test_buffers_and_named_buffers_as_torch_s() -> None:
    ours, theirs = cnn(nn, None), cnn(TNN)
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert len(list(ours.buffers())) == len(list(theirs.buffers())) == 3
    assert list(ours.buffers(recurse=False)) == list(theirs.buffers(recurse=False)) == []
    assert [n for n, _ in ours[1].named_buffers("bn", recurse=False)] == [
        n for n, _ in theirs[1].named_buffers("bn", recurse=False)]


def test_get_submodule_and_get_parameter_follow_dotted_paths_as_torch_s() -> None:
    ours, theirs = cnn(nn, None), cnn(TNN)
    assert ours.get_submodule("") is ours and ours.get_submodule("1") is ours[1]
    assert ours.get_parameter("6.bias") is ours[6].bias
    assert ours.get_parameter("6.bias").shape == tuple(theirs.get_parameter("6.bias").shape)
    # (call, target, what the message names: the failing step's call and path)
    for call, target, named in [("get_submodule", "9", "get_submodule('9')"),
                                ("get_submodule", "1.weight", "get_submodule('1.weight')"),
                                ("get_parameter", "1.running_mean",
                                 "get_parameter('1.running_mean')"),
                                ("get_parameter", "9.bias", "get_submodule('9')")]:
        with pytest.raises(AttributeError, match=re.escape(named)):
            getattr(ours, call)(target)
        with pytest.raises(AttributeError):
            getattr(theirs, call)(target)
    with pytest.raises(AttributeError, match=r"Sequential has no submodule '9' .*does not exist"):
        ours.get_submodule("9")
    with pytest.raises(ValueError, match="mode must be a bool, got 'no'"):
        ours.train("no")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        theirs.train("no")


NONLINEARITIES = ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
                  "conv_transpose2d", "conv_transpose3d", "sigmoid", "tanh", "relu",
                  "leaky_relu", "selu"]


def test_calculate_gain_is_torch_s_table() -> None:
    for name in NONLINEARITIES:
        assert init.calculate_gain(name) == TNN.init.calculate_gain(name), name
    assert init.calculate_gain("leaky_relu", 0.2) == TNN.init.calculate_gain("leaky_relu", 0.2)
    with pytest.raises(ValueError, match="unsupported nonlinearity 'swish'"):
        init.calculate_gain("swish")


# (shape, a, mode, nonlinearity): Conv2d's and Linear's weights, torchvision's ResNet call.
KAIMING = [((8, 3, 3, 3), 0.0, "fan_out", "relu"), ((5, 7), math.sqrt(5), "fan_in",
                                                     "leaky_relu"), ((6, 4), 0.1, "fan_in", "tanh")]


@pytest.mark.parametrize(("shape", "a", "mode", "nonlinearity"), KAIMING)
def test_kaiming_draws_with_torch_s_std_and_bound(shape: tuple[int, ...], a: float, mode: str,
                                                  nonlinearity: str) -> None:
    # torch's own arithmetic, in double, then the same seeded draw of normal_/uniform_: the
    # results are equal bit for bit exactly when the std and the bound are torch's.
    fan_in, fan_out = TNN.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    std = TNN.init.calculate_gain(nonlinearity, a) / math.sqrt(
        fan_in if mode == "fan_in" else fan_out)
    for ours, reference in [(init.kaiming_normal_, lambda t: init.normal_(t, 0.0, std)),
                            (init.kaiming_uniform_,
                             lambda t: init.uniform_(t, -math.sqrt(3.0) * std,
                                                     math.sqrt(3.0) * std))]:
        nt.manual_seed(3)
        drawn = ours(nt.empty(shape), a=a, mode=mode, nonlinearity=nonlinearity).numpy()
        nt.manual_seed(3)
        np.testing.assert_array_equal(drawn, reference(nt.empty(shape)).numpy())
    with pytest.raises(ValueError, match="kaiming_normal_: mode must be 'fan_in' or "
                       "'fan_out', got 'fan'"):
        init.kaiming_normal_(nt.empty(shape), mode="fan")


def test_init_takes_torch_s_keyword_names() -> None:
    t = nt.empty((64, 64))
    draw = init.uniform_(t, a=2.0, b=3.0).numpy()
    assert draw.min() >= 2.0 and draw.max() < 3.0 and draw.std() > 0.2
    np.testing.assert_array_equal(init.constant_(t, val=0.5).numpy(), np.full((64, 64), 0.5))


def test_dropout_takes_torch_s_inplace_and_computes_out_of_place() -> None:
    assert repr(nn.Dropout(0.1, inplace=True)) == repr(TNN.Dropout(0.1, inplace=True))
    assert repr(nn.Dropout()) == repr(TNN.Dropout())
    x = nt.ones((16, 16))
    nt.manual_seed(5)
    plain = F.dropout(x, 0.5, True).numpy()
    nt.manual_seed(5)
    inplace = F.dropout(x, 0.5, True, True).numpy()  # torch's positional order
    np.testing.assert_array_equal(inplace, plain)
    assert 0 < (plain == 0).sum() < plain.size
    np.testing.assert_array_equal(x.numpy(), np.ones((16, 16)))  # left unchanged
    nt.manual_seed(5)
    np.testing.assert_array_equal(nn.Dropout(0.5, inplace=True)(x).numpy(), plain)
