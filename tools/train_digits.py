"""Train the seed's MLP with Adam on scikit-learn's bundled digits dataset.

The netcl run command until the Trainer exists: the loop is the seed page's
code example, on 8x8 digit images (64 features) instead of 784-pixel MNIST,
which needs no download. Prints loss and accuracy per epoch.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pyopencl as cl
from sklearn.datasets import load_digits

import netcl.autograd as ag
from netcl.core.device import manager
from netcl.core.tensor import Tensor, from_numpy, manual_seed
from netcl.nn import Linear, ReLU, Sequential, cross_entropy
from netcl.optim import Adam, CosineAnnealingLR


def batches(
    x: np.ndarray, y: np.ndarray, batch_size: int, rng: np.random.Generator, queue: cl.CommandQueue
) -> list[tuple[Tensor, Tensor]]:
    order = rng.permutation(len(x))
    out = []
    for start in range(0, len(x), batch_size):
        rows = order[start : start + batch_size]
        out.append((from_numpy(x[rows], queue), from_numpy(y[rows], queue)))
    return out


def accuracy(model: Sequential, x: Tensor, y: np.ndarray) -> float:
    with ag.no_grad():
        predicted = model(x).argmax(axis=1).numpy()
    return float((predicted == y).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(x))
    test_rows, train_rows = order[:360], order[360:]
    x_train, y_train, x_test, y_test = x[train_rows], y[train_rows], x[test_rows], y[test_rows]

    manual_seed(args.seed)
    device = manager.default("auto")
    q = device.queue
    print(
        f"device: {device.name} ({device.type}); {len(x_train)} train / {len(x_test)} test digits"
    )

    model = Sequential(Linear(q, 64, 256), ReLU(), Linear(q, 256, 10))
    optimizer = Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    scheduler = CosineAnnealingLR(optimizer, T_max=args.epochs)
    x_test_t = from_numpy(x_test, q)

    for epoch in range(args.epochs):
        started = time.perf_counter()
        losses = []
        for xb, yb in batches(x_train, y_train, args.batch_size, rng, q):
            with ag.Tape() as tape:
                logits = model(xb)
                loss = cross_entropy(logits, yb)
            tape.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
            losses.append(loss)
        scheduler.step()
        mean_loss = float(np.mean([loss.item() for loss in losses]))
        seconds = time.perf_counter() - started
        print(
            f"epoch {epoch + 1:3d}  loss {mean_loss:.4f}  "
            f"test accuracy {accuracy(model, x_test_t, y_test):.3f}  ({seconds:.2f} s)"
        )


if __name__ == "__main__":
    main()
