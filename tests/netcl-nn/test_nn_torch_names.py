"""The names PyTorch users type from habit: SiLU, LeakyReLU, Softmax, LogSoftmax, Identity,
the loss modules and ModuleDict, each against torch's forward, backward and state_dict."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from test_nn_torch_parity import assert_close, run_both

import netcl.core.tensor as nt
import netcl.nn as nn
from netcl.core.tensor import Tensor
from netcl.nn import functional as F

# Both sides compute in float32: each add, multiply or divide within half a unit in the last
# place (2^-24 relative), each exp or log within 3 (OpenCL's full profile; torch's are
# closer). The longest chain here, a weighted, smoothed cross-entropy and its backward, is
# about 24 of those units a side: log_softmax (4 exps, 3 adds, a log, a subtraction), the
# weights' product, smoothing's mean and mix, a sum over 6 rows and the division, retraced
# by the backward. Two sides within 24 each differ by at most 48; 64 units, judged against
# the tensor's largest entry (assert_close's atol: a sum rounds relative to its terms, not
# to its result), is that rounded up. A wrong formula misses by orders more.
RTOL = 64 * 2.0**-24

rng = np.random.default_rng(7)
X = (rng.standard_normal((6, 4)) * 3).astype(np.float32)
X[0, :2] = 0.0  # leaky_relu's gradient at 0 is torch's negative_slope
SPATIAL = (rng.standard_normal((2, 4, 3)) * 3).astype(np.float32)  # (N, C, d)
CLASSES = np.array([0, 3, 2, 1, 2, 3])
SPATIAL_CLASSES = np.array([[0, 3, 2], [2, 1, 2]])
SOFT = rng.uniform(size=(6, 4)).astype(np.float32)
W = np.array([0.5, 2.0, 1.0, 3.0], np.float32)  # one weight a class
POS_W = np.array([1.0, 2.0, 0.5, 3.0], np.float32)
ELEMENT_W = rng.uniform(0.5, 2.0, (6, 1)).astype(np.float32)  # per row, broadcast
MSE_W = rng.uniform(0.5, 2.0, (6, 4)).astype(np.float32)  # mse_loss's: the input's shape
n, t = nt.tensor, torch.from_numpy
TNN = torch.nn

# (id, netcl module, torch module, input, target or None). The functional forms' own rows
# (weights with probability targets, spatial nll_loss) are in test_nn_torch_parity.py.
MODULE_CASES: list[tuple[str, nn.Module, TNN.Module, Any, Any]] = [
    ("silu", nn.SiLU(), TNN.SiLU(), X, None),
    ("leaky_relu", nn.LeakyReLU(), TNN.LeakyReLU(), X, None),
    ("leaky_relu_0.2", nn.LeakyReLU(0.2), TNN.LeakyReLU(0.2), X, None),
    ("softmax", nn.Softmax(1), TNN.Softmax(1), X, None),
    ("log_softmax_dim0", nn.LogSoftmax(dim=0), TNN.LogSoftmax(dim=0), X, None),
    ("identity", nn.Identity(3, bias=False), TNN.Identity(3, bias=False), X, None),
    ("ce", nn.CrossEntropyLoss(), TNN.CrossEntropyLoss(), X, CLASSES),
    ("ce_weight_ignore_smoothing",
     nn.CrossEntropyLoss(n(W), ignore_index=2, label_smoothing=0.1),
     TNN.CrossEntropyLoss(t(W), ignore_index=2, label_smoothing=0.1), X, CLASSES),
    ("ce_weight_none", nn.CrossEntropyLoss(n(W), reduction="none"),
     TNN.CrossEntropyLoss(t(W), reduction="none"), X, CLASSES),
    ("ce_weight_spatial_sum", nn.CrossEntropyLoss(n(W), reduction="sum"),
     TNN.CrossEntropyLoss(t(W), reduction="sum"), SPATIAL, SPATIAL_CLASSES),
    ("nll", nn.NLLLoss(), TNN.NLLLoss(), X, CLASSES),
    ("nll_weight_ignore", nn.NLLLoss(n(W), ignore_index=3),
     TNN.NLLLoss(t(W), ignore_index=3), X, CLASSES),
    ("mse", nn.MSELoss(), TNN.MSELoss(), X, SOFT),
    ("mse_sum", nn.MSELoss(reduction="sum"), TNN.MSELoss(reduction="sum"), X, SOFT),
    ("bce_logits", nn.BCEWithLogitsLoss(), TNN.BCEWithLogitsLoss(), X, SOFT),
    ("bce_logits_weights",
     nn.BCEWithLogitsLoss(n(ELEMENT_W), pos_weight=n(POS_W)),
     TNN.BCEWithLogitsLoss(t(ELEMENT_W), pos_weight=t(POS_W)), X, SOFT),
]


@pytest.mark.parametrize(("ours", "theirs", "x", "target"), [c[1:] for c in MODULE_CASES],
                         ids=[c[0] for c in MODULE_CASES])
def test_module_matches_torch(ours: nn.Module, theirs: TNN.Module, x: Any, target: Any) -> None:
    if target is None:
        run_both(ours, theirs, x, rtol=RTOL)
    else:
        run_both(lambda a: ours(a, n(target)), lambda a: theirs(a, t(target)), x, rtol=RTOL)


def test_functional_activations_match_torch() -> None:
    run_both(F.silu, torch.nn.functional.silu, X, rtol=RTOL)
    run_both(lambda a: F.leaky_relu(a, 0.3), lambda a: torch.nn.functional.leaky_relu(a, 0.3),
             X, rtol=RTOL)


# torch-style positional calls: (function, the arguments after the input), the same values
# in the same places on both sides, so each argument's place is checked against torch's.
POSITIONAL_CASES: list[tuple[str, tuple[Any, ...]]] = [
    ("cross_entropy", (CLASSES, W)),  # F.cross_entropy(x, y, w): weight third, as torch's
    ("cross_entropy", (CLASSES, W, None, 2, None, "sum", 0.1)),
    ("nll_loss", (CLASSES, W, None, 3, None, "none")),
    ("mse_loss", (SOFT, None, None, "mean", MSE_W)),
    ("mse_loss", (SOFT, None, None, "sum")),
    ("binary_cross_entropy_with_logits", (SOFT, ELEMENT_W, None, None, "sum", POS_W)),
]


@pytest.mark.parametrize(("name", "args"), POSITIONAL_CASES,
                         ids=[f"{c[0]}_{len(c[1])}" for c in POSITIONAL_CASES])
def test_functional_losses_take_torch_s_positional_arguments(name: str, args: Any) -> None:
    def convert(to: Callable[[Any], Any]) -> list[Any]:
        return [to(a) if isinstance(a, np.ndarray) else a for a in args]

    ours, theirs = getattr(F, name), getattr(torch.nn.functional, name)
    run_both(lambda a: ours(a, *convert(n)), lambda a: theirs(a, *convert(t)), X, rtol=RTOL)


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss", "mse_loss",
                                  "binary_cross_entropy_with_logits"])
def test_functional_losses_refuse_torch_s_deprecated_reduction(name: str) -> None:
    target = n(CLASSES) if name in ("cross_entropy", "nll_loss") else n(SOFT)
    with pytest.raises(NotImplementedError, match=rf"{name}: size_average=False .*reduction="):
        getattr(F, name)(n(X), target, size_average=False)
    with pytest.raises(NotImplementedError, match=rf"{name}: reduce=True .*reduction="):
        getattr(F, name)(n(X), target, reduce=True)


def test_loss_buffers_are_saved_under_torch_names() -> None:
    pairs = [
        (nn.CrossEntropyLoss(n(W)), TNN.CrossEntropyLoss(t(W))),
        (nn.NLLLoss(), TNN.NLLLoss()),
        (nn.BCEWithLogitsLoss(n(ELEMENT_W), pos_weight=n(POS_W)),
         TNN.BCEWithLogitsLoss(t(ELEMENT_W), pos_weight=t(POS_W))),
    ]
    for ours, theirs in pairs:
        assert list(ours.state_dict()) == list(theirs.state_dict())
        ours.load_state_dict(theirs.state_dict())


@pytest.mark.parametrize("make", [nn.CrossEntropyLoss, nn.NLLLoss, nn.MSELoss,
                                  nn.BCEWithLogitsLoss])
def test_a_bad_reduction_fails_when_the_loss_is_made(make: Callable[..., nn.Module]) -> None:
    expected = r"\('mean', 'sum', 'none'\)"
    with pytest.raises(ValueError, match=rf"{make.__name__}: reduction .*{expected}.* 'avg'"):
        make(reduction="avg")
    with pytest.raises(NotImplementedError, match=r"size_average=False .*reduction="):
        make(size_average=False)
    with pytest.raises(NotImplementedError, match=r"reduce=True .*reduction="):
        make(reduce=True)


def test_inplace_activations_in_a_model_give_torch_s_forward_and_gradients() -> None:
    # torchvision's habit: nn.ReLU(inplace=True) between layers; netcl computes out of place.
    # RTOL holds: three dot products of at most 6 terms, the activations, and their backward
    # are within the 24 units a side counted above (20 seeds gave at most 20 units apart).
    torch.manual_seed(0)
    ours = nn.Sequential(nn.Linear(None, 4, 6), nn.ReLU(inplace=True), nn.Linear(None, 6, 5),
                         nn.LeakyReLU(0.1, True), nn.Linear(None, 5, 3), nn.SiLU(inplace=True))
    theirs = TNN.Sequential(TNN.Linear(4, 6), TNN.ReLU(inplace=True), TNN.Linear(6, 5),
                            TNN.LeakyReLU(0.1, True), TNN.Linear(5, 3), TNN.SiLU(inplace=True))
    ours.load_state_dict(theirs.state_dict())
    run_both(ours, theirs, X, rtol=RTOL)  # the output and the input's gradient
    reference = dict(theirs.named_parameters())
    for name, param in ours.named_parameters():
        assert param.grad is not None and reference[name].grad is not None, name
        assert_close(param.grad.numpy(), reference[name].grad, RTOL)
    activations = [1, 3, 5]  # "ReLU(inplace=True)", "LeakyReLU(negative_slope=0.1, inplace=True)"
    assert [repr(ours[i]) for i in activations] == [repr(theirs[i]) for i in activations]


@pytest.mark.parametrize("name", ["relu", "silu", "leaky_relu"])
def test_functional_inplace_returns_torch_s_value_and_leaves_the_input(name: str) -> None:
    x = n(X)
    out = getattr(F, name)(x, inplace=True)
    expected = getattr(torch.nn.functional, name)(t(X.copy()), inplace=True)
    assert_close(out.numpy(), expected, RTOL)
    np.testing.assert_array_equal(x.numpy(), X)  # unlike torch's, the input is not overwritten


def test_what_netcl_refuses_is_named() -> None:
    with pytest.raises(TypeError, match="dim"):
        nn.Softmax()  # type: ignore[call-arg]
    with pytest.raises(ValueError, match=r"weight must be a float tensor of shape \(4,\)"):
        nn.CrossEntropyLoss(n(W[:3]))(n(X), n(CLASSES))
    with pytest.raises(ValueError, match=r"nll_loss: weight .* got int64"):
        F.nll_loss(n(X), n(CLASSES), weight=n(CLASSES[:4]))


def test_module_dict_is_a_dict_of_registered_modules() -> None:
    a, b, c = nn.Linear(None, 2, 2), nn.ReLU(), nn.Identity()
    heads = nn.ModuleDict({"a": a, "b": b})
    heads.update([("c", c)])
    heads["a"] = a  # replacing keeps the key's place, as a dict does
    assert list(heads) == list(heads.keys()) == ["a", "b", "c"]
    assert list(heads.values()) == [a, b, c] and dict(heads.items()) == {"a": a, "b": b, "c": c}
    assert len(heads) == 3 and "b" in heads and "z" not in heads
    assert heads["a"] is heads.a is a  # type: ignore[attr-defined]  # torch's attribute access
    assert [name for name, _ in heads.named_parameters()] == ["a.weight", "a.bias"]
    del heads["a"]
    assert list(heads) == ["b", "c"] and not list(heads.parameters())
    assert heads.pop("b") is b and list(heads) == ["c"]
    heads.update(nn.ModuleDict({"d": a}))
    assert list(heads) == ["c", "d"]
    heads.clear()
    assert len(heads) == 0 and not hasattr(heads, "d")
    with pytest.raises(KeyError):
        del heads["d"]
    with pytest.raises(KeyError, match="'train' already exists"):
        heads["train"] = a
    with pytest.raises(KeyError, match=r"without '\.'"):
        heads["x.y"] = a
    with pytest.raises(TypeError, match="int is not a Module"):
        heads["x"] = 3  # type: ignore[assignment]
    with pytest.raises(ValueError, match="element #0 has length 3"):
        heads.update([("x", a, b)])  # type: ignore[list-item]


class Ours(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Linear(None, 3, 4)
        self.heads = nn.ModuleDict({
            "cls": nn.Sequential(nn.SiLU(), nn.Linear(None, 4, 2)),
            "box": nn.ModuleDict({"xy": nn.Linear(None, 4, 2), "wh": nn.Linear(None, 4, 2)}),
        })

    def forward(self, x: Tensor) -> Any:
        return self.heads["box"]["wh"](self.heads["cls"][0](self.stem(x)))  # type: ignore[index]


class Theirs(TNN.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = TNN.Linear(3, 4)
        self.heads = TNN.ModuleDict({
            "cls": TNN.Sequential(TNN.SiLU(), TNN.Linear(4, 2)),
            "box": TNN.ModuleDict({"xy": TNN.Linear(4, 2), "wh": TNN.Linear(4, 2)}),
        })

    def forward(self, x: torch.Tensor) -> Any:
        return self.heads["box"]["wh"](self.heads["cls"][0](self.stem(x)))  # type: ignore[index]


def test_module_dict_state_dict_is_torch_s() -> None:
    ours, theirs = Ours(), Theirs()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert "heads.box.wh.weight" in ours.state_dict()
    ours.load_state_dict(theirs.state_dict())  # torch tensors, as torch.save would hold them
    x = rng.standard_normal((5, 3)).astype(np.float32)
    np.testing.assert_allclose(ours(n(x)).numpy(), theirs(t(x)).detach().numpy(), rtol=RTOL,
                               atol=RTOL)


def test_reassigned_modules_parameters_and_buffers_keep_their_place_as_in_torch() -> None:
    # Fine-tuning's idiom: replace a built model's layer (here the first, as for grayscale
    # input); torch's registries are dicts, so the new one takes the old one's place.
    ours = nn.Sequential(nn.Linear(None, 3, 4), nn.BatchNorm1d(None, 4), nn.Linear(None, 4, 2))
    theirs = TNN.Sequential(TNN.Linear(3, 4), TNN.BatchNorm1d(4), TNN.Linear(4, 2))
    setattr(ours, "0", nn.Linear(None, 1, 4))
    setattr(theirs, "0", TNN.Linear(1, 4))
    ours[0].weight = nt.Parameter(nt.zeros((4, 1)))
    theirs[0].weight = TNN.Parameter(torch.zeros(4, 1))
    ours[1].register_buffer("running_mean", nt.ones(4))
    theirs[1].register_buffer("running_mean", torch.ones(4))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [name for name, _ in ours.named_parameters()] == [
        name for name, _ in theirs.named_parameters()]
    assert ours[0].in_features == 1  # type: ignore[attr-defined]  # indexing finds the new one
