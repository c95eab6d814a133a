"""gradcheck of every layer's functional form (inputs and parameters) and of each loss."""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np
import pytest

import netcl.autograd as ag
import netcl.core.tensor as nt
import netcl.nn as nn
from netcl.core.tensor import Tensor
from netcl.nn import functional as F

CLASSES = np.array([2, 0, 1, 2], dtype=np.int64)


def seeded_dropout(x: Tensor) -> Tensor:
    # The same mask on every evaluation, so finite differences see one function.
    nt.manual_seed(3)
    return F.dropout(x, 0.3)


def distinct_image(rng: np.random.Generator) -> np.ndarray:
    # No ties within eps inside any pooling window.
    return (rng.permutation(2 * 2 * 6 * 6).reshape(2, 2, 6, 6) * 0.1).astype(np.float32)


CASES: list[tuple[str, Callable[..., Tensor], list[tuple[int, ...]]]] = [
    ("linear", lambda x, w, b: F.linear(x, w, b), [(3, 4), (5, 4), (5,)]),
    ("linear_batched_no_bias", lambda x, w: F.linear(x, w), [(2, 3, 4), (5, 4)]),
    ("layer_norm", lambda x, w, b: F.layer_norm(x, (4,), w, b), [(3, 4), (4,), (4,)]),
    ("layer_norm_2d_no_affine", lambda x: F.layer_norm(x, (2, 3)), [(2, 2, 3)]),
    ("embedding", lambda w: F.embedding(np.array([[1, 3], [3, 0]]), w), [(4, 3)]),
    ("conv2d", lambda x, w, b: F.conv2d(x, w, b), [(2, 2, 5, 5), (3, 2, 3, 3), (3,)]),
    ("conv2d_strided_padded", lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1),
     [(1, 2, 5, 5), (2, 2, 3, 3), (2,)]),
    ("conv2d_dilated_rect", lambda x, w: F.conv2d(x, w, None, (1, 2), (0, 1), 2),
     [(1, 1, 6, 5), (2, 1, 2, 3)]),
    ("flatten", lambda x: F.flatten(x), [(2, 3, 2)]),
    ("gelu", lambda x: F.gelu(x), [(2, 5)]),
    ("gelu_tanh", lambda x: F.gelu(x, "tanh"), [(2, 5)]),
    ("tanh", lambda x: F.tanh(x), [(6,)]),
    ("sigmoid", lambda x: F.sigmoid(x), [(6,)]),
    ("softmax", lambda x: F.softmax(x, 0), [(3, 4)]),
    ("log_softmax", lambda x: F.log_softmax(x), [(3, 4)]),
    ("dropout", seeded_dropout, [(4, 5)]),
    ("cross_entropy", lambda x: F.cross_entropy(x, CLASSES), [(4, 3)]),
    ("cross_entropy_smoothed_sum",
     lambda x: F.cross_entropy(x, CLASSES, reduction="sum", label_smoothing=0.2), [(4, 3)]),
    ("cross_entropy_none", lambda x: F.cross_entropy(x, CLASSES, reduction="none"), [(4, 3)]),
    ("cross_entropy_probabilities", lambda x, q: F.cross_entropy(x, F.softmax(q)),
     [(4, 3), (4, 3)]),
    ("mse_loss", lambda a, b: F.mse_loss(a, b), [(3, 4), (3, 4)]),
    ("bce_with_logits", lambda x, y: F.binary_cross_entropy_with_logits(x, F.sigmoid(y)),
     [(3, 4), (3, 4)]),
    ("bce_with_logits_pos_weight",
     lambda x, y, p: F.binary_cross_entropy_with_logits(x, F.sigmoid(y), pos_weight=F.sigmoid(p)),
     [(3, 4), (3, 4), (4,)]),
]


@pytest.mark.parametrize(("name", "fn", "shapes"), CASES, ids=[c[0] for c in CASES])
def test_gradcheck(name: str, fn: Callable[..., Tensor], shapes: list[tuple[int, ...]]) -> None:
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    inputs = [
        nt.tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True) for s in shapes
    ]
    assert ag.gradcheck(fn, inputs)


@pytest.mark.parametrize("pool", [(2, None, 0), (3, 2, 1), (2, 1, 0)], ids=str)
def test_gradcheck_max_pool2d(pool: tuple[int, int | None, int]) -> None:
    x = nt.tensor(distinct_image(np.random.default_rng(0)), requires_grad=True)
    assert ag.gradcheck(lambda x: F.max_pool2d(x, *pool), [x])


def test_relu_layer_away_from_its_kink() -> None:
    values = np.array([[-1.0, -0.3, 0.4], [0.7, -2.0, 1.5]], np.float32)
    assert ag.gradcheck(nn.ReLU(), [nt.tensor(values, requires_grad=True)])


def test_modules_call_their_functional_form_with_their_parameters() -> None:
    rng = np.random.default_rng(0)
    x = nt.tensor(rng.standard_normal((2, 2, 5, 5)).astype(np.float32))
    conv = nn.Conv2d(None, 2, 3, 3, stride=2, padding=1)
    expected = F.conv2d(x, conv.weight, conv.bias, 2, 1)
    np.testing.assert_array_equal(conv(x).numpy(), expected.numpy())
    pooled = nn.Sequential(nn.MaxPool2d(2, 1), nn.Flatten())(x)
    assert pooled.shape == (2, 2 * 4 * 4)
    norm = nn.LayerNorm(None, (5, 5), elementwise_affine=False)
    assert list(norm.parameters()) == []
    np.testing.assert_array_equal(norm(x).numpy(), F.layer_norm(x, (5, 5)).numpy())


def test_dropout_drops_at_rate_p_scales_the_rest_and_is_identity_in_eval() -> None:
    layer = nn.Dropout(0.25)
    x = nt.ones((200, 100))
    first, second = layer(x).numpy(), layer(x).numpy()
    assert set(np.unique(first)) <= {0.0, np.float32(1 / 0.75)}
    assert abs((first == 0).mean() - 0.25) < 0.02
    assert (first != second).any()  # a fresh mask each call
    w = nt.tensor(np.ones((200, 100), np.float32), requires_grad=True)
    with ag.Tape() as tape:
        out = layer(w)
    tape.backward(out, nt.ones((200, 100)))
    assert w.grad is not None
    np.testing.assert_array_equal(w.grad.numpy(), out.numpy())  # d out/dx is the mask
    layer.eval()
    assert layer(x) is x
    assert nn.Dropout(1.0)(x).numpy().max() == 0
    with pytest.raises(ValueError, match="p must be in"):
        nn.Dropout(1.5)
