"""Callback: hooks into Trainer.fit; Checkpoint saves the Trainer after every epoch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from netcl.core.tensor import Tensor
from netcl.train.checkpoint import PathLike

if TYPE_CHECKING:
    from netcl.train.trainer import Record, Trainer


class Callback:
    """Override the hooks you need; each does nothing by default.

    ``on_batch_end`` gets the batch's loss as a device Tensor: reading it
    (``.item()``) waits for the device, so read it only now and then. It is
    the hook's to keep, also when the JIT replays the steps (the Trainer
    hands hooks a copy then, as every replay writes its loss in one place).
    Setting ``trainer.stop = True`` ends ``fit`` after the current epoch.
    """

    def on_fit_start(self, trainer: Trainer) -> None:
        """Before the first epoch of a ``fit``."""

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        """Before epoch ``epoch`` (counted from 0)."""

    def on_batch_end(self, trainer: Trainer, batch: int, loss: Tensor) -> None:
        """After batch ``batch`` of the epoch has been enqueued (forward, backward, step)."""

    def on_epoch_end(self, trainer: Trainer, record: Record) -> None:
        """After an epoch (and its validation): ``record`` is its ``history`` entry."""

    def on_fit_end(self, trainer: Trainer) -> None:
        """After the last epoch of a ``fit``."""


class Checkpoint(Callback):
    """Save the Trainer to ``path`` after every ``every`` epochs (atomically: the previous
    checkpoint stays loadable until the new one has replaced it)."""

    def __init__(self, path: PathLike, every: int = 1) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"Checkpoint: every must be an int >= 1, got {every!r}")
        self.path = path
        self.every = every

    def on_epoch_end(self, trainer: Trainer, record: Record) -> None:
        if trainer.epoch % self.every == 0:
            trainer.save_checkpoint(self.path)
