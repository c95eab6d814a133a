"""The seed page's code example (shared/seeds, the Adam page), run as written on real data.

The data are scikit-learn's handwritten digits (1797 images of 8x8, bundled
with scikit-learn, no download), each pixel repeated 3x3 and padded to 28x28
so that the example's ``Linear(q, 784, 256)`` takes them unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

import netcl.core.tensor as nt
from netcl.core.tensor import Tensor

datasets = pytest.importorskip("sklearn.datasets")


def digits_784() -> tuple[np.ndarray, np.ndarray]:
    data = datasets.load_digits()
    images = data.images.astype(np.float32) / 16.0  # (n, 8, 8) in [0, 1]
    big = np.kron(images, np.ones((1, 3, 3), np.float32))  # (n, 24, 24)
    big = np.pad(big, ((0, 0), (2, 2), (2, 2)))  # (n, 28, 28)
    return big.reshape(len(big), 784), data.target.astype(np.int64)


class DataLoader:
    """Shuffled mini-batches of (x float32 (B, 784), y int64 (B,)) tensors, anew each epoch."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, queue: object) -> None:
        self.x, self.y, self.batch_size, self.queue = x, y, batch_size, queue
        self.rng = np.random.default_rng(0)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        order = self.rng.permutation(len(self.x))
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            yield nt.tensor(self.x[batch], self.queue), nt.tensor(self.y[batch], self.queue)


def test_seed_example_trains_on_digits() -> None:
    x_all, y_all = digits_784()
    # A shuffled split: the file's last few hundred digits come from writers unlike the rest.
    order = np.random.default_rng(0).permutation(len(x_all))
    train, held_out = order[:1500], order[1500:]
    train_x, train_y, test_x, test_y = x_all[train], y_all[train], x_all[held_out], y_all[held_out]
    nt.manual_seed(0)
    epochs = 5

    # ---- the seed's example, as written -----------------------------------------------------
    import netcl.autograd as ag
    from netcl.core.device import manager
    from netcl.nn import Linear, ReLU, Sequential, cross_entropy
    from netcl.optim import Adam, CosineAnnealingLR

    q = manager.default("auto").queue
    dataloader = DataLoader(train_x, train_y, 64, q)
    model = Sequential(Linear(q, 784, 256), ReLU(), Linear(q, 256, 10))
    optimizer = Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999),
                     eps=1e-8, weight_decay=0.0)
    scheduler = CosineAnnealingLR(optimizer, T_max=epochs)
    losses: list[float] = []
    for epoch in range(epochs):  # noqa: B007 (the seed's line, as written)
        for x, y in dataloader:
            with ag.Tape() as tape:
                logits = model(x)
                loss = cross_entropy(logits, y)
            tape.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
            losses.append(loss.item())  # added: the test's record of the loss
        scheduler.step()
    # ------------------------------------------------------------------------------------------

    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert first > 1.5 and last < 0.3, (first, last)
    with ag.no_grad():
        predicted = model(nt.tensor(test_x, q)).argmax(axis=1).numpy()
    accuracy = float((predicted == test_y).mean())
    assert accuracy > 0.9, accuracy  # chance is 0.1
