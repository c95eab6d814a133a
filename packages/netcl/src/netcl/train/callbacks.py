"""Callbacks for Trainer.fit: Checkpoint saves the Trainer after every epoch.

:class:`Callback`, the hooks the Trainer calls, lives beside the Trainer and is
named here too.
"""

from __future__ import annotations

from netcl.train.checkpoint import PathLike
from netcl.train.trainer import Callback as Callback
from netcl.train.trainer import Record, Trainer


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
