"""Forward values and gradients against PyTorch's autograd, on the same weights and inputs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

import netcl.autograd as ag
import netcl.core.tensor as nt
import netcl.nn as nn
from netcl.core.tensor import Tensor, ops
from netcl.nn import functional as F

RTOL = 1e-5


def assert_close(ours: np.ndarray[Any, Any], theirs: torch.Tensor, rtol: float = RTOL) -> None:
    """Elementwise to ``rtol``; near-zero entries are judged against the tensor's scale,
    since summation order alone moves them by ~1e-7 of the largest entry."""
    expected = theirs.detach().numpy()
    scale = float(np.abs(expected).max(initial=0.0))
    np.testing.assert_allclose(ours, expected, rtol=rtol, atol=rtol * scale)


def to_torch(module: nn.Module, reference: torch.nn.Module) -> None:
    """Copy the netcl module's weights into the PyTorch one, by state_dict name."""
    state = {k: torch.from_numpy(v) for k, v in module.state_dict().items()}
    reference.load_state_dict(state)


def check_model(
    ours: nn.Module, theirs: torch.nn.Module, x: np.ndarray[Any, Any], y: np.ndarray[Any, Any]
) -> None:
    to_torch(ours, theirs)
    with ag.Tape() as tape:
        loss = nn.cross_entropy(ours(nt.tensor(x)), nt.tensor(y))
    tape.backward(loss)
    torch_loss = torch.nn.functional.cross_entropy(theirs(torch.from_numpy(x)), torch.from_numpy(y))
    torch_loss.backward()
    assert_close(np.asarray(loss.item()), torch_loss)
    reference = dict(theirs.named_parameters())
    for name, param in ours.named_parameters():
        assert param.grad is not None, name
        grad = reference[name].grad
        assert grad is not None
        assert_close(param.grad.numpy(), grad)


@pytest.mark.smoke
def test_mlp_matches_pytorch() -> None:
    nt.manual_seed(1)
    rng = np.random.default_rng(1)
    ours = nn.Sequential(
        nn.Linear(None, 20, 32), nn.ReLU(), nn.Linear(None, 32, 16), nn.GELU(), nn.Tanh(),
        nn.Linear(None, 16, 5), nn.Sigmoid(), nn.Linear(None, 5, 5),
    )
    theirs = torch.nn.Sequential(
        torch.nn.Linear(20, 32), torch.nn.ReLU(), torch.nn.Linear(32, 16), torch.nn.GELU(),
        torch.nn.Tanh(), torch.nn.Linear(16, 5), torch.nn.Sigmoid(), torch.nn.Linear(5, 5),
    )
    x = rng.standard_normal((8, 20)).astype(np.float32)
    check_model(ours, theirs, x, rng.integers(0, 5, 8))


def test_small_cnn_matches_pytorch() -> None:
    nt.manual_seed(2)
    rng = np.random.default_rng(2)
    ours = nn.Sequential(
        nn.Conv2d(None, 2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(None, 4, 3, 3, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(None, 3 * 2 * 2, 10),
    )
    theirs = torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(4, 3, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(3 * 2 * 2, 10),
    )
    x = rng.standard_normal((5, 2, 8, 8)).astype(np.float32)
    check_model(ours, theirs, x, rng.integers(0, 10, 5))


def run_both(
    ours: Callable[..., Tensor],
    theirs: Callable[..., torch.Tensor],
    *arrays: np.ndarray[Any, Any],
    seed: int = 0,
    rtol: float = RTOL,
) -> None:
    """Apply both to the same float inputs, seed both backward passes with the same
    random gradient, and compare outputs and every input's gradient."""
    xs = [nt.tensor(a, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    with ag.Tape() as tape:
        out = ours(*xs)
    expected = theirs(*ts)
    seed_np = np.random.default_rng(seed).standard_normal(expected.shape).astype(np.float32)
    tape.backward(out, nt.tensor(seed_np))
    expected.backward(torch.from_numpy(seed_np))
    assert_close(out.numpy(), expected, rtol)
    for x, t in zip(xs, ts, strict=True):
        assert x.grad is not None and t.grad is not None
        assert_close(x.grad.numpy(), t.grad, rtol)


def test_layer_norm_matches_pytorch() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 3, 6)).astype(np.float32) * 3 + 1
    w = rng.standard_normal((3, 6)).astype(np.float32)
    b = rng.standard_normal((3, 6)).astype(np.float32)
    run_both(
        lambda x, w, b: F.layer_norm(x, (3, 6), w, b),
        lambda x, w, b: torch.nn.functional.layer_norm(x, (3, 6), w, b),
        x, w, b,
    )
    layer = nn.LayerNorm(None, 6)
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    assert layer.weight is not None and layer.bias is not None
    np.testing.assert_array_equal(layer.weight.numpy(), np.ones(6))
    np.testing.assert_array_equal(layer.bias.numpy(), np.zeros(6))


def test_embedding_matches_pytorch() -> None:
    nt.manual_seed(4)
    ours = nn.Embedding(None, 10, 4)
    theirs = torch.nn.Embedding(10, 4)
    to_torch(ours, theirs)
    indices = np.array([[1, 3, 3], [9, 0, 1]], dtype=np.int64)
    seed_np = np.random.default_rng(4).standard_normal((2, 3, 4)).astype(np.float32)
    with ag.Tape() as tape:
        out = ours(nt.tensor(indices))
    tape.backward(out, nt.tensor(seed_np))
    expected = theirs(torch.from_numpy(indices))
    expected.backward(torch.from_numpy(seed_np))
    assert_close(out.numpy(), expected)
    assert ours.weight.grad is not None and theirs.weight.grad is not None
    assert_close(ours.weight.grad.numpy(), theirs.weight.grad)


LOGITS = np.random.default_rng(5).standard_normal((6, 4)).astype(np.float32) * 3
CLASSES = np.array([0, 3, 1, 1, 2, 3], dtype=np.int64)
OTHER = LOGITS[::-1].copy()  # a second (6, 4) array
PROBS = (np.exp(OTHER) / np.exp(OTHER).sum(1, keepdims=True)).astype(np.float32)
BINARY = (LOGITS > 0).astype(np.float32)
SOFT = (1 / (1 + np.exp(-OTHER))).astype(np.float32)
POS_WEIGHT = np.array([1.0, 2.0, 0.5, 3.0], np.float32)
CLASS_WEIGHT = np.array([0.5, 2.0, 1.0, 3.0], np.float32)
TF = torch.nn.functional
n, t = nt.tensor, torch.from_numpy

Ours = Callable[[Tensor], Tensor]
Theirs = Callable[[torch.Tensor], torch.Tensor]
LOSS_CASES: list[tuple[str, Ours, Theirs]] = [
    ("ce_mean",
     lambda x: F.cross_entropy(x, CLASSES),
     lambda x: TF.cross_entropy(x, t(CLASSES))),
    ("ce_sum",
     lambda x: F.cross_entropy(x, CLASSES, reduction="sum"),
     lambda x: TF.cross_entropy(x, t(CLASSES), reduction="sum")),
    ("ce_none",
     lambda x: F.cross_entropy(x, n(CLASSES), reduction="none"),
     lambda x: TF.cross_entropy(x, t(CLASSES), reduction="none")),
    ("ce_label_smoothing",
     lambda x: F.cross_entropy(x, CLASSES, label_smoothing=0.1),
     lambda x: TF.cross_entropy(x, t(CLASSES), label_smoothing=0.1)),
    ("ce_int32_targets",
     lambda x: F.cross_entropy(x, CLASSES.astype(np.int32)),
     lambda x: TF.cross_entropy(x, t(CLASSES))),
    ("ce_probabilities",
     lambda x: F.cross_entropy(x, n(PROBS), label_smoothing=0.2),
     lambda x: TF.cross_entropy(x, t(PROBS), label_smoothing=0.2)),
    ("ce_spatial",
     lambda x: F.cross_entropy(ops.reshape(x, (2, 4, 3)), CLASSES.reshape(2, 3)),
     lambda x: TF.cross_entropy(x.reshape(2, 4, 3), t(CLASSES.reshape(2, 3)))),
    ("ce_huge_logits",
     lambda x: F.cross_entropy(ops.mul(x, 1e4), CLASSES),
     lambda x: TF.cross_entropy(x * 1e4, t(CLASSES))),
    ("ce_weight_ignore_smoothing",
     lambda x: F.cross_entropy(x, CLASSES, label_smoothing=0.1, ignore_index=1,
                               weight=n(CLASS_WEIGHT)),
     lambda x: TF.cross_entropy(x, t(CLASSES), weight=t(CLASS_WEIGHT), ignore_index=1,
                                label_smoothing=0.1)),
    ("ce_weight_probabilities",
     lambda x: F.cross_entropy(x, n(PROBS), label_smoothing=0.2, weight=n(CLASS_WEIGHT)),
     lambda x: TF.cross_entropy(x, t(PROBS), weight=t(CLASS_WEIGHT), label_smoothing=0.2)),
    ("nll_weight_spatial",
     lambda x: F.nll_loss(ops.reshape(x, (2, 4, 3)), CLASSES.reshape(2, 3),
                          weight=n(CLASS_WEIGHT)),
     lambda x: TF.nll_loss(x.reshape(2, 4, 3), t(CLASSES.reshape(2, 3)),
                           weight=t(CLASS_WEIGHT))),
    ("nll",
     lambda x: F.nll_loss(F.log_softmax(x), CLASSES),
     lambda x: TF.nll_loss(TF.log_softmax(x, 1), t(CLASSES))),
    ("mse_mean",
     lambda x: F.mse_loss(x, n(OTHER)),
     lambda x: TF.mse_loss(x, t(OTHER))),
    ("mse_sum",
     lambda x: F.mse_loss(x, n(OTHER), reduction="sum"),
     lambda x: TF.mse_loss(x, t(OTHER), reduction="sum")),
    ("bce_logits",
     lambda x: F.binary_cross_entropy_with_logits(x, n(BINARY)),
     lambda x: TF.binary_cross_entropy_with_logits(x, t(BINARY))),
    ("bce_logits_soft_targets_pos_weight",
     lambda x: F.binary_cross_entropy_with_logits(x, n(SOFT), pos_weight=n(POS_WEIGHT)),
     lambda x: TF.binary_cross_entropy_with_logits(x, t(SOFT), pos_weight=t(POS_WEIGHT))),
    ("bce_logits_weight",
     lambda x: F.binary_cross_entropy_with_logits(x, n(SOFT), weight=n(CLASS_WEIGHT)),
     lambda x: TF.binary_cross_entropy_with_logits(x, t(SOFT), weight=t(CLASS_WEIGHT))),
    ("bce_logits_at_zero",
     lambda x: F.binary_cross_entropy_with_logits(ops.mul(x, 0.0), n(SOFT), reduction="sum"),
     lambda x: TF.binary_cross_entropy_with_logits(x * 0.0, t(SOFT), reduction="sum")),
    ("log_softmax", lambda x: F.log_softmax(x, 0), lambda x: TF.log_softmax(x, 0)),
    ("softmax", lambda x: F.softmax(x), lambda x: TF.softmax(x, -1)),
    ("gelu_erf", lambda x: F.gelu(x), lambda x: TF.gelu(x)),
    ("gelu_tanh", lambda x: F.gelu(x, "tanh"), lambda x: TF.gelu(x, approximate="tanh")),
]


@pytest.mark.parametrize(("name", "ours", "theirs"), LOSS_CASES, ids=[c[0] for c in LOSS_CASES])
def test_loss_and_activation_match_pytorch(name: str, ours: Ours, theirs: Theirs) -> None:
    run_both(ours, theirs, LOGITS)


def test_default_init_follows_pytorch_bounds() -> None:
    nt.manual_seed(0)
    linear = nn.Linear(None, 400, 300)
    conv = nn.Conv2d(None, 3, 8, 5)
    for layer, fan_in in ((linear, 400), (conv, 75)):
        bound = 1 / np.sqrt(fan_in)
        for param in (layer.weight, layer.bias):
            assert param is not None
            values = param.numpy()
            assert np.abs(values).max() <= bound
            if values.size > 1000:
                # Uniform on [-b, b]: the spread reaches the bound and the std is b / sqrt(3).
                assert np.abs(values).max() > 0.99 * bound
                np.testing.assert_allclose(values.std(), bound / np.sqrt(3), rtol=0.05)
    nt.manual_seed(0)
    again = nn.Linear(None, 400, 300)
    np.testing.assert_array_equal(again.weight.numpy(), linear.weight.numpy())
