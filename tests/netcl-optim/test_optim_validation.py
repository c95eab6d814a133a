"""Construction-time checks: hyperparameters, parameter lists, defaults matching PyTorch's."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pytest
import torch

import netcl.optim as no
from netcl.core.tensor import Parameter, from_numpy, zeros


def param(n: int = 4) -> Parameter:
    return Parameter(from_numpy(np.arange(n, dtype=np.float32)))


# (optimizer, kwargs, the words the error must contain: argument name and value)
BAD_HYPERPARAMETERS: list[tuple[type[no.Optimizer], dict[str, Any], str]] = [
    (no.Adam, {"lr": -1e-3}, "invalid lr: -0.001"),
    (no.Adam, {"lr": float("nan")}, "invalid lr: nan"),
    (no.Adam, {"lr": "0.1"}, "invalid lr: '0.1'"),
    (no.Adam, {"betas": (1.0, 0.999)}, "invalid beta1 (betas[0]): 1.0"),
    (no.Adam, {"betas": (0.9, -0.1)}, "invalid beta2 (betas[1]): -0.1"),
    (no.Adam, {"betas": (0.9,)}, "invalid betas: (0.9,)"),
    (no.Adam, {"eps": -1e-8}, "invalid eps: -1e-08"),
    (no.Adam, {"weight_decay": -0.1}, "invalid weight_decay: -0.1"),
    (no.Adam, {"amsgrad": 1}, "invalid amsgrad: 1"),
    (no.AdamW, {"weight_decay": -1.0}, "invalid weight_decay: -1.0"),
    (no.AdamW, {"maximize": "yes"}, "invalid maximize: 'yes'"),
    (no.SGD, {"lr": -0.1}, "invalid lr: -0.1"),
    (no.SGD, {"weight_decay": float("inf")}, "invalid weight_decay: inf"),
    # torch.optim.SGD's conditions, by both names (SGD's momentum defaults to 0, Momentum's 0.9).
    *((cls, kwargs, fragment) for cls in (no.SGD, no.Momentum) for kwargs, fragment in (
        ({"momentum": -0.5}, "invalid momentum: -0.5"),
        ({"nesterov": True, "momentum": 0.0}, "invalid nesterov: True"),
        ({"nesterov": True, "momentum": 0.9, "dampening": 0.1}, "Nesterov needs momentum > 0"),
        ({"dampening": float("nan")}, "invalid dampening: nan"),
    )),
    (no.SGD, {"nesterov": True}, "invalid nesterov: True with momentum=0.0"),
    (no.RMSProp, {"alpha": 1.5}, "invalid alpha: 1.5"),
    (no.RMSProp, {"alpha": -0.1}, "invalid alpha: -0.1"),
    (no.RMSProp, {"eps": -1.0}, "invalid eps: -1.0"),
    (no.RMSProp, {"momentum": -0.9}, "invalid momentum: -0.9"),
    (no.RMSProp, {"centered": None}, "invalid centered: None"),
]


@pytest.mark.parametrize(("cls", "kwargs", "fragment"), BAD_HYPERPARAMETERS,
                         ids=[f"{c.__name__}-{'-'.join(k)}" for c, k, _ in BAD_HYPERPARAMETERS])
def test_bad_hyperparameter_raises_naming_argument_and_value(
    cls: type[no.Optimizer], kwargs: dict[str, Any], fragment: str
) -> None:
    p = param()
    owner = no.SGD([p], lr=0.1)
    with pytest.raises(ValueError) as error:
        cls([p], **kwargs)
    assert fragment in str(error.value)
    assert cls.__name__ in str(error.value)
    p.grad = zeros((4,))
    owner.step()  # the refused optimizer took nothing: p is still owner's to step


def test_bad_hyperparameter_in_a_group_names_the_group() -> None:
    with pytest.raises(ValueError, match=r"Adam param group 1: invalid lr: -2"):
        no.Adam([{"params": [param()]}, {"params": [param()], "lr": -2}])
    with pytest.raises(ValueError, match=r"Adam: invalid lr: -1"):  # a default, overridden
        no.Adam([{"params": [param()], "lr": 0.1}], lr=-1)
    optimizer = no.Adam([param()])
    with pytest.raises(ValueError, match=r"param group 1: invalid eps"):
        optimizer.add_param_group({"params": [param()], "eps": -1.0})
    assert len(optimizer.param_groups) == 1


@pytest.mark.parametrize(
    ("params", "error", "fragment"),
    [
        ([], ValueError, "empty parameter list"),
        ([{"params": []}], ValueError, "empty parameter list"),
        ([{"lr": 0.1}], ValueError, "has no 'params'"),
        ([np.zeros(3)], TypeError, "params[0] is a ndarray, not a Tensor"),
        ([zeros(3, dtype="int32")], TypeError, "dtype int32"),
        (None, TypeError, "got NoneType"),
        ([{"params": {1}}], TypeError, "not a set"),
    ],
    ids=["empty", "empty-group", "group-without-params", "not-a-tensor", "int-tensor", "none",
         "set"],
)
def test_bad_parameter_lists_raise(params: Any, error: type[Exception], fragment: str) -> None:
    with pytest.raises(error) as raised:
        no.SGD(params, lr=0.1)
    assert fragment in str(raised.value)


def test_single_tensor_and_mixed_lists_raise() -> None:
    p = param()
    with pytest.raises(TypeError, match="got one Tensor"):
        no.SGD(p)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="mixes Tensors and param-group dicts"):
        no.SGD([p, {"params": [param()]}])


def test_a_parameter_twice_raises() -> None:
    p, q = param(), param()
    with pytest.raises(ValueError, match="appears more than once"):
        no.Adam([p, q, p])
    with pytest.raises(ValueError, match="parameter 0 of param group 1"):
        no.Adam([{"params": [p]}, {"params": [p]}])
    optimizer = no.Adam([p])
    with pytest.raises(ValueError, match="appears more than once"):
        optimizer.add_param_group({"params": [q, p]})
    assert len(optimizer.param_groups) == 1


def test_groups_fill_defaults_and_keep_their_own_values() -> None:
    p, q = param(), param()
    optimizer = no.Adam([{"params": p}, {"params": [q], "lr": 0.5, "tag": "head"}], lr=0.1)
    first, second = optimizer.param_groups
    assert first["params"][0] is p and first["lr"] == 0.1 and first["betas"] == (0.9, 0.999)
    assert second["lr"] == 0.5 and second["tag"] == "head" and second["eps"] == 1e-8
    assert optimizer.defaults["lr"] == 0.1
    assert "Parameter Group 1" in repr(optimizer) and "lr: 0.5" in repr(optimizer)


@pytest.mark.parametrize(
    ("ours", "theirs", "extra"),
    [
        (no.Adam, torch.optim.Adam, {}),
        (no.AdamW, torch.optim.AdamW, {}),
        (no.SGD, torch.optim.SGD, {}),
        (no.Momentum, torch.optim.SGD, {"momentum": 0.9}),  # the one default that differs
        (no.RMSProp, torch.optim.RMSprop, {}),
    ],
)
def test_defaults_match_pytorch(ours: type, theirs: type, extra: dict[str, Any]) -> None:
    theirs_defaults = {
        name: p.default for name, p in inspect.signature(theirs).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    for name, p in inspect.signature(ours).parameters.items():
        # netcl's own arguments (torch.optim.RMSprop has no fused; Adam's and SGD's
        # fused=None mean "not fused" there, "fused where possible" here; torch keeps no
        # master weights).
        if p.default is inspect.Parameter.empty or name in ("allow_shared", "fused",
                                                            "master_weights"):
            continue
        assert name in theirs_defaults, f"{ours.__name__}({name}) is not a torch argument"
        assert p.default == extra.get(name, theirs_defaults[name]), name


def test_sgd_takes_torch_sgds_arguments_in_torchs_order() -> None:
    """``SGD(params, 0.1, 0.9, 0, 5e-4, True)`` means what it means to torch."""
    ours = list(inspect.signature(no.SGD).parameters.values())
    theirs = list(inspect.signature(torch.optim.SGD).parameters.values())
    positional = [p.name for p in theirs if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    assert [p.name for p in ours[:len(positional)]] == positional
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in ours[len(positional):])
    group = no.SGD([param()], 0.1, 0.9, 0, 5e-4, True).param_groups[0]
    assert (group["lr"], group["momentum"], group["dampening"], group["weight_decay"],
            group["nesterov"]) == (0.1, 0.9, 0, 5e-4, True)
