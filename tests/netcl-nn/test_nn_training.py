"""An MLP and a small CNN learn synthetic tasks with a plain SGD step written here."""

from __future__ import annotations

import numpy as np

import netcl.autograd as ag
import netcl.core.tensor as nt
import netcl.nn as nn
from netcl.core.tensor import Tensor


def sgd_step(model: nn.Module, lr: float) -> None:
    with ag.no_grad():
        for p in model.parameters():
            assert p.grad is not None
            p.add_(p.grad, alpha=-lr)
            p.grad = None


def train(model: nn.Module, x: Tensor, y: Tensor, steps: int, lr: float) -> list[float]:
    losses = []
    for _ in range(steps):
        with ag.Tape() as tape:
            loss = nn.cross_entropy(model(x), y)
        tape.backward(loss)
        sgd_step(model, lr)
        losses.append(float(loss.item()))
    return losses


def accuracy(model: nn.Module, x: Tensor, y: np.ndarray) -> float:
    model.eval()
    with ag.no_grad():
        predicted = model(x).argmax(axis=1).numpy()
    model.train()
    return float((predicted == y).mean())


def test_mlp_learns_a_teacher_network() -> None:
    """Labels from a random 2-layer teacher: learnable, but not linearly separable."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 8)).astype(np.float32)
    w1, w2 = rng.standard_normal((8, 16)), rng.standard_normal((16, 3))
    y = np.argmax(np.tanh(x @ w1) @ w2, axis=1)
    nt.manual_seed(0)
    model = nn.Sequential(nn.Linear(None, 8, 64), nn.ReLU(), nn.Linear(None, 64, 3))
    losses = train(model, nt.tensor(x), nt.tensor(y), steps=300, lr=0.5)
    assert losses[0] > 0.9
    assert losses[-1] < 0.2, losses[::50]
    assert accuracy(model, nt.tensor(x), y) > 0.95


def blob_images(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    """8x8 noise with a bright 3x3 blob; the class is the quadrant the blob sits in."""
    images = rng.normal(0.0, 0.3, (count, 1, 8, 8)).astype(np.float32)
    labels = rng.integers(0, 4, count)
    for i, label in enumerate(labels):
        top = 4 * (label // 2) + rng.integers(0, 2)
        left = 4 * (label % 2) + rng.integers(0, 2)
        images[i, 0, top : top + 3, left : left + 3] += 1.5
    return images, labels


def test_small_cnn_learns_where_the_blob_is() -> None:
    rng = np.random.default_rng(1)
    x, y = blob_images(rng, 128)
    nt.manual_seed(1)
    model = nn.Sequential(
        nn.Conv2d(None, 1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(None, 4 * 4 * 4, 4),
    )
    losses = train(model, nt.tensor(x), nt.tensor(y), steps=100, lr=0.2)
    assert losses[0] > 1.0
    assert losses[-1] < 0.05, losses[::20]
    test_x, test_y = blob_images(rng, 128)
    assert accuracy(model, nt.tensor(test_x), test_y) > 0.9
