"""``netcl train``: a dataset, a model, an optimizer and a scheduler handed to the Trainer."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from netcl.cli.errors import UserError, user_errors
from netcl.cli.models import build_model, parameter_count
from netcl.core.device import manager
from netcl.core.tensor import bfloat16, float16, manual_seed
from netcl.data import DataLoader, load_dataset
from netcl.nn import Module, cross_entropy
from netcl.optim import (
    SGD,
    Adam,
    Adam8bit,
    AdamW,
    CosineAnnealingLR,
    ExponentialLR,
    Optimizer,
    RMSProp,
    StepLR,
)
from netcl.train import Callback, Checkpoint, Trainer
from netcl.train.plot import plot_history, require_matplotlib
from netcl.train.trainer import Scheduler

CHECKPOINT_NAME = "checkpoint.safetensors"
AMP_DTYPES = {"bf16": bfloat16, "fp16": float16}


def make_optimizer(name: str, model: Module, lr: float) -> Optimizer:
    params = list(model.parameters())
    if name == "adam":
        return Adam(params, lr=lr)
    if name == "adamw":
        return AdamW(params, lr=lr)
    if name == "adam8bit":
        return Adam8bit(params, lr=lr)
    if name == "sgd":
        return SGD(params, lr=lr)
    if name == "momentum":
        return SGD(params, lr=lr, momentum=0.9)
    if name == "rmsprop":
        return RMSProp(params, lr=lr)
    raise ValueError(f"unknown optimizer {name!r}")


def make_scheduler(name: str, optimizer: Optimizer, epochs: int) -> Scheduler | None:
    if name == "cosine":
        return CosineAnnealingLR(optimizer, T_max=epochs)
    if name == "step":
        return StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.1)
    if name == "exponential":
        return ExponentialLR(optimizer, gamma=0.9)
    if name == "none":
        return None
    raise ValueError(f"unknown scheduler {name!r}")


def run_train(args: argparse.Namespace) -> int:
    show = not args.no_progress
    checkpoint = Path(args.checkpoint_dir) / CHECKPOINT_NAME if args.checkpoint_dir else None
    if args.resume and checkpoint is None:
        raise UserError("--resume needs --checkpoint-dir DIR (see netcl train --help)")
    if args.dataset == "idx" and not args.data:
        raise UserError("--dataset idx needs --data DIR (see netcl train --help)")
    # Whatever the paths name is checked now, not after the last epoch.
    if checkpoint is not None and checkpoint.parent.exists() and not checkpoint.parent.is_dir():
        raise UserError(f"--checkpoint-dir: {checkpoint.parent} is a file, not a folder")
    if args.plot:
        with user_errors("--plot"):
            require_matplotlib()
        folder = Path(args.plot).parent
        if not folder.is_dir():
            raise UserError(f"--plot: the folder {folder} does not exist")
    with user_errors("--device"):
        device = manager.default(args.device)
    with user_errors(f"--dataset {args.dataset}"):
        splits = load_dataset(args.dataset, args.data, seed=args.seed)
    if checkpoint is not None:
        try:
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:  # a file where a folder of the path should be, no permission
            raise UserError(f"--checkpoint-dir: cannot make {checkpoint.parent}: "
                            f"{error.strerror or error}") from error

    manual_seed(args.seed)
    model = build_model(args.model, device, splits.image_shape, splits.classes, args.hidden)
    optimizer = make_optimizer(args.optimizer, model, args.lr)
    scheduler = make_scheduler(args.scheduler, optimizer, args.epochs)
    callbacks: list[Callback] = [] if checkpoint is None else [Checkpoint(checkpoint)]
    trainer = Trainer(model, optimizer, cross_entropy, scheduler, callbacks=callbacks,
                      clip_grad_norm=args.clip_grad_norm, accumulate=args.accumulate,
                      progress=show, jit=not args.no_jit, amp=AMP_DTYPES.get(args.amp))
    if args.resume and checkpoint is not None:
        if checkpoint.exists():
            with user_errors("--resume"):
                trainer.resume(checkpoint)
            _say(f"resumed from {checkpoint} after epoch {trainer.epoch}")
        else:
            _say(f"no checkpoint at {checkpoint} yet: starting from epoch 0")

    train = DataLoader(splits.train, args.batch_size, shuffle=True, seed=args.seed, device=device)
    test = DataLoader(splits.test, 512, device=device)
    _say(f"device {device.spec}: {device.name} ({device.type}); {splits.name}: "
               f"{len(splits.train)} train / {len(splits.test)} test images "
               f"{'x'.join(map(str, splits.image_shape))}; {args.model} with "
               f"{parameter_count(model):,} parameters; {type(optimizer).__name__} lr {args.lr:g}"
               + (f", {type(scheduler).__name__}" if scheduler is not None else "")
               + (f"; mixed precision {args.amp}" if args.amp else "")
               + ("; steps replayed by netcl.jit" if trainer.jit_active else ""))
    started = time.perf_counter()
    history = trainer.fit(train, args.epochs, val_loader=test)
    seconds = time.perf_counter() - started
    if args.plot:
        title = f"netcl train: {args.model} on {splits.name}, {type(optimizer).__name__}"
        plot_history(history, args.plot, title=title)
        _say(f"wrote {args.plot}")
    if args.json:
        last = history[-1] if history else {}
        print(json.dumps({
            "epochs": trainer.epoch,
            "loss": last.get("loss"),
            "accuracy": last.get("val_accuracy"),
            "seconds": round(seconds, 3),
        }))
    return 0


def _say(line: str) -> None:
    print(line, flush=True)
