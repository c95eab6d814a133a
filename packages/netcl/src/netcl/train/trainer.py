"""Trainer: the training loop of the seed page, with progress, validation and checkpoints."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable, Sequence, Sized
from typing import Any

import numpy as np

import netcl.autograd as ag
from netcl.amp import GradScaler, autocast
from netcl.core.tensor import (
    Tensor,
    bfloat16,
    dtypes,
    float16,
    float32,
    get_rng_state,
    set_rng_state,
    zeros,
)
from netcl.jit import CaptureError
from netcl.jit import jit as jit_step  # `jit` is the name of the constructor's flag
from netcl.nn import Module
from netcl.optim import LRScheduler, Optimizer, ReduceLROnPlateau, clip_grad_norm_
from netcl.train.checkpoint import PathLike, load, save
from netcl.train.progress import EpochBar

LossFn = Callable[[Tensor, Tensor], Tensor]
Scheduler = LRScheduler | ReduceLROnPlateau
Batches = Iterable[Sequence[Tensor]]
Record = dict[str, float]


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


class Trainer:
    """Trains ``model`` with ``optimizer`` on ``loss_fn(model(x), y)``, one epoch at a time.

    Args:
        model: the Module to train.
        optimizer: a netcl Optimizer over the model's parameters.
        loss_fn: ``loss_fn(output, y)`` -> a one-element Tensor, the batch mean
            (``netcl.nn.cross_entropy``).
        scheduler: stepped once at the end of every epoch (a ReduceLROnPlateau
            with the epoch's validation loss, or its training loss without one).
        clip_grad_norm: if set, the gradients' joint 2-norm is clipped to it
            before each optimizer step (``netcl.optim.clip_grad_norm_``; this
            reads one number back from the device per step).
        accumulate: batches whose gradients add up into one optimizer step;
            each batch's loss is scaled by 1/(batches in its step), so a step
            over k batches of b items follows the mean loss of k*b items.
        callbacks: :class:`Callback` objects told of each epoch and batch.
        progress: show a tqdm bar per epoch (loss, lr, samples/s) on an
            interactive terminal and print one line per finished epoch.
        jit: replay each step with ``netcl.jit`` (captured once a step's
            conditions are steady, then replayed without running Python) when
            the step can be captured: one batch per step (``accumulate=1``), no
            ``clip_grad_norm`` (it reads the norm back), and a model that neither
            reads tensors back nor uploads host data (Dropout draws its masks on
            the device, so it replays). A step that cannot be captured says so at
            its first call; that batch and the rest run eagerly, with the same
            results. False: always eager.
        amp: mixed precision: ``bfloat16`` or ``float16`` (or their names) runs
            the forward pass and the loss under ``netcl.amp.autocast`` of that
            dtype (the parameters stay as they are; a 16-bit parameter steps
            through the optimizer's float32 master). float16 also scales the loss
            with a ``netcl.amp.GradScaler`` (``trainer.scaler``: its inf/NaN check
            skips an overflowed step; with Adam or AdamW the JIT replays it, other
            optimizers read the flag on the host and step eagerly); bfloat16 has
            float32's range and needs none. None (the default): float32 throughout.

    ``fit`` returns and keeps ``history``: one dict per epoch with ``epoch``,
    ``loss`` (the mean training loss), ``lr``, ``seconds``,
    ``samples_per_second`` and, with a validation loader, ``val_loss`` and
    ``val_accuracy``.

    >>> import numpy as np
    >>> from netcl.data import DataLoader
    >>> from netcl.nn import Linear, cross_entropy
    >>> from netcl.optim import SGD
    >>> x = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    >>> y = (x[:, 0] > 0).astype(np.int64)
    >>> model = Linear(None, 4, 2)
    >>> trainer = Trainer(model, SGD(model.parameters(), lr=0.5), cross_entropy, progress=False)
    >>> history = trainer.fit(DataLoader((x, y), batch_size=16), epochs=20)
    >>> trainer.evaluate(DataLoader((x, y), batch_size=64))["accuracy"] > 0.9
    True
    """

    def __init__(
        self,
        model: Module,
        optimizer: Optimizer,
        loss_fn: LossFn,
        scheduler: Scheduler | None = None,
        *,
        clip_grad_norm: float | None = None,
        accumulate: int = 1,
        callbacks: Sequence[Callback] = (),
        progress: bool = True,
        jit: bool = True,
        amp: dtypes.DTypeLike | None = None,
    ) -> None:
        self.amp = _amp_dtype(amp)
        if isinstance(accumulate, bool) or not isinstance(accumulate, int) or accumulate < 1:
            raise ValueError(f"Trainer: accumulate must be an int >= 1, got {accumulate!r}")
        if clip_grad_norm is not None and not clip_grad_norm > 0:
            raise ValueError(f"Trainer: clip_grad_norm must be > 0, got {clip_grad_norm!r}")
        self.model = model
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.scheduler = scheduler
        self.clip_grad_norm = clip_grad_norm
        self.accumulate = accumulate
        self.callbacks = list(callbacks)
        self.progress = progress
        #: The loss scaler of float16 mixed precision, else None.
        self.scaler = GradScaler() if self.amp == float16 else None
        #: Epochs trained so far (a resumed Trainer continues from the checkpoint's).
        self.epoch = 0
        self.history: list[Record] = []
        #: Set by a callback to end ``fit`` after the current epoch.
        self.stop = False
        # The jitted step while the JIT can replay it, else None (eager steps).
        capturable = accumulate == 1 and clip_grad_norm is None
        self._step: Callable[[Tensor, Tensor], Tensor] | None = (
            jit_step(self._whole_step) if jit and capturable else None)

    # -- training ------------------------------------------------------------------------
    def fit(self, train_loader: Batches, epochs: int, val_loader: Batches | None = None
            ) -> list[Record]:
        """Train until ``epochs`` epochs are done in all (from ``self.epoch``, so a resumed
        Trainer finishes the run it was saved from); returns ``history``.

        Before each epoch ``e`` (counted from 0) the loaders' ``set_epoch(e)`` is
        called if they have one, so a DataLoader draws the same order as it
        would have in one uninterrupted run.
        """
        self.stop = False
        for callback in self.callbacks:
            callback.on_fit_start(self)
        while self.epoch < epochs and not self.stop:
            epoch = self.epoch
            for callback in self.callbacks:
                callback.on_epoch_start(self, epoch)
            record = self._train_epoch(train_loader, epoch, epochs)
            if val_loader is not None:
                scores = self.evaluate(val_loader)
                record.update((f"val_{name}", value) for name, value in scores.items())
            self._step_scheduler(record)
            self.epoch = epoch + 1
            self.history.append(record)
            if self.progress:
                EpochBar.write(_summary(record, epochs))
            for callback in self.callbacks:
                callback.on_epoch_end(self, record)
        for callback in self.callbacks:
            callback.on_fit_end(self)
        return self.history

    def _train_epoch(self, loader: Batches, epoch: int, epochs: int) -> Record:
        set_epoch = getattr(loader, "set_epoch", None)
        if set_epoch is not None:
            set_epoch(epoch)
        self.model.train()
        lr = float(self.optimizer.param_groups[0]["lr"])
        batches = len(loader) if isinstance(loader, Sized) else None
        started = time.perf_counter()
        total_loss: Tensor | None = None  # summed on the device: no wait per batch
        samples = 0
        bar = EpochBar(f"epoch {epoch + 1}/{epochs}", _sample_count(loader), lr, self.progress)
        with bar:
            for index, (x, y) in enumerate(loader):
                if self._step is not None:
                    loss = self._jit_or_eager(x, y)
                else:
                    loss = self._forward_backward(x, y, 1.0 / self._group_size(index, batches))
                    if (index + 1) % self.accumulate == 0 or index + 1 == batches:
                        self._optimizer_step()
                n = int(x.shape[0])
                with ag.no_grad():
                    if total_loss is None:
                        total_loss = zeros((), float32, loss.device)
                    total_loss.add_(loss.detach(), alpha=n)
                samples += n
                bar.advance(n, loss)
                if self.callbacks:
                    # A replayed step's loss is overwritten by the next replay (reading it
                    # then raises): callbacks get a copy they may keep.
                    kept = loss.clone() if self._step is not None else loss
                    for callback in self.callbacks:
                        callback.on_batch_end(self, index, kept)
            if batches is None and samples and index % self.accumulate != self.accumulate - 1:
                self._optimizer_step()  # an iterable of unknown length ended mid-step
        seconds = time.perf_counter() - started
        mean_loss = float(total_loss.item()) / samples if total_loss is not None else float("nan")
        return {
            "epoch": epoch + 1, "loss": mean_loss, "lr": lr, "seconds": seconds,
            "samples_per_second": samples / seconds if seconds > 0 else 0.0,
        }

    def _group_size(self, index: int, batches: int | None) -> int:
        """How many batches the optimizer step that batch ``index`` belongs to adds up."""
        if batches is None:
            return self.accumulate
        first = index - index % self.accumulate
        return min(self.accumulate, batches - first)

    def _forward_backward(self, x: Tensor, y: Tensor, scale: float) -> Tensor:
        with ag.Tape() as tape:
            with autocast(dtype=bfloat16 if self.amp is None else self.amp,
                          enabled=self.amp is not None):
                loss = self.loss_fn(self.model(x), y)
            scaled = loss if scale == 1.0 else loss * scale
            if self.scaler is not None:
                scaled = self.scaler.scale(scaled)
        tape.backward(scaled)
        return loss

    def _whole_step(self, x: Tensor, y: Tensor) -> Tensor:
        """One batch, one optimizer step: what the JIT captures."""
        loss = self._forward_backward(x, y, 1.0)
        self._optimizer_step()
        return loss

    @property
    def jit_active(self) -> bool:
        """Whether steps are (still) replayed by netcl.jit."""
        return self._step is not None

    def _jit_or_eager(self, x: Tensor, y: Tensor) -> Tensor:
        """The jitted step; on a capture the JIT refuses, that batch again eagerly, and every
        later one (the refused capture changed nothing: the error comes before any update,
        and the random state it drew from is put back)."""
        assert self._step is not None
        rng = get_rng_state()
        try:
            return self._step(x, y)
        except CaptureError as error:
            warnings.warn(f"Trainer: stepping eagerly, the step cannot be jitted: {error}",
                          stacklevel=4)
            self._step = None
            set_rng_state(rng)
            self.optimizer.zero_grad()
            return self._whole_step(x, y)

    def _optimizer_step(self) -> None:
        scaler = self.scaler
        if self.clip_grad_norm is not None:
            if scaler is not None:
                scaler.unscale_(self.optimizer)  # clip the true gradients
            clip_grad_norm_(self.model.parameters(), self.clip_grad_norm)
        if scaler is None:
            self.optimizer.step()
        else:
            scaler.step(self.optimizer)
            scaler.update()
        self.optimizer.zero_grad()

    def _step_scheduler(self, record: Record) -> None:
        if isinstance(self.scheduler, ReduceLROnPlateau):
            self.scheduler.step(record.get("val_loss", record["loss"]))
        elif self.scheduler is not None:
            self.scheduler.step()

    def evaluate(self, loader: Batches) -> dict[str, float]:
        """The mean loss over ``loader`` and, for class logits (N, C) against integer labels,
        the accuracy; the model runs in eval mode without recording, then goes back."""
        was_training = self.model.training
        self.model.eval()
        total_loss: Tensor | None = None
        correct: Tensor | None = None
        samples = 0
        try:
            with ag.no_grad():
                for x, y in loader:
                    output = self.model(x)
                    n = int(x.shape[0])
                    if total_loss is None:
                        total_loss = zeros((), float32, output.device)
                    total_loss.add_(self.loss_fn(output, y), alpha=n)
                    if output.ndim == 2 and y.ndim == 1 and y.dtype.kind in "iu":
                        if correct is None:
                            correct = zeros((), float32, output.device)
                        correct.add_((output.argmax(axis=1) == y).astype(float32).sum())
                    samples += n
        finally:
            self.model.train(was_training)
        if total_loss is None:
            raise ValueError("Trainer.evaluate: the loader gave no batches")
        scores = {"loss": float(total_loss.item()) / samples}
        if correct is not None:
            scores["accuracy"] = float(correct.item()) / samples
        return scores

    # -- checkpoints ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs: epoch, model, optimizer, scheduler, the tensor
        layer's random generator (dropout, init) and history, as plain data."""
        return {
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "optimizer_class": type(self.optimizer).__name__,
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "scheduler_class": None if self.scheduler is None else type(self.scheduler).__name__,
            "rng": get_rng_state(),
            "history": self.history,
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take a :meth:`state_dict`; on any error (ValueError naming it) nothing changes."""
        problem = _mismatch(state, self)
        if problem:
            raise ValueError(f"Trainer.load_state_dict: {problem}")
        before = self.state_dict()
        try:
            self._load(state)
        except Exception:
            self._load(before)  # every part was checked on its own: put back the parts done
            raise

    def _load(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(dict(state["scheduler"]))
        if self.scaler is not None and state.get("scaler") is not None:
            self.scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        self.epoch = int(state["epoch"])
        self.history = [dict(record) for record in state["history"]]

    def save_checkpoint(self, path: PathLike) -> None:
        """Write :meth:`state_dict` to ``path`` atomically (``netcl.train.save``)."""
        save(self.state_dict(), path)

    def resume(self, path: PathLike) -> int:
        """Load the checkpoint at ``path`` (``netcl.train.load``) and return its epoch: the
        next ``fit`` continues bit-identically where the saved run was."""
        state = load(path)
        if not isinstance(state, dict):
            raise ValueError(f"{path} holds a {type(state).__name__}, not a Trainer checkpoint")
        try:
            self.load_state_dict(state)
        except (ValueError, TypeError, KeyError) as error:
            raise ValueError(f"cannot resume from {path}: {error}") from None
        return self.epoch


def _mismatch(state: dict[str, Any], trainer: Trainer) -> str | None:
    """What makes ``state`` unfit for ``trainer`` before anything is loaded, or None."""
    expected = {"epoch", "model", "optimizer", "optimizer_class", "scheduler",
                "scheduler_class", "rng", "history"}
    # "scaler" came with mixed precision: a checkpoint from before has none.
    if not isinstance(state, dict) or set(state) - {"scaler"} != expected:
        return f"expected a Trainer state with keys {sorted(expected)}, got {_keys(state)}"
    epoch = state["epoch"]
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        return f"epoch is {epoch!r}, expected an int >= 0"
    optimizer = type(trainer.optimizer).__name__
    if state["optimizer_class"] != optimizer:
        return f"it was saved with a {state['optimizer_class']} optimizer; this one is {optimizer}"
    scheduler = None if trainer.scheduler is None else type(trainer.scheduler).__name__
    if state["scheduler_class"] != scheduler:
        return f"it was saved with scheduler {state['scheduler_class']}; this one has {scheduler}"
    if scheduler is not None:
        current = trainer.scheduler.state_dict() if trainer.scheduler is not None else {}
        saved = state["scheduler"]
        if not isinstance(saved, dict) or set(saved) != set(current):
            return f"the scheduler state has keys {_keys(saved)}, {scheduler} has {sorted(current)}"
    history = state["history"]
    if not isinstance(history, list) or not all(isinstance(r, dict) for r in history):
        return "history must be a list of per-epoch dicts"
    if not isinstance(state["rng"], dict):
        return "rng must be a dict (numpy's bit generator state)"
    return None


def _amp_dtype(amp: dtypes.DTypeLike | None) -> np.dtype[Any] | None:
    """``amp`` as float16 or bfloat16, or None; ValueError for anything else."""
    if amp is None:
        return None
    try:
        dtype = dtypes.as_dtype(amp)
    except (TypeError, ValueError):
        dtype = None
    if dtype not in (float16, bfloat16):
        raise ValueError(f"Trainer: amp must be None, bfloat16 or float16, got {amp!r}")
    return dtype


def _keys(value: object) -> str:
    return str(sorted(value)) if isinstance(value, dict) else f"a {type(value).__name__}"


def _sample_count(loader: Batches) -> int | None:
    """Items per epoch, if the loader can tell (a DataLoader can)."""
    count = getattr(loader, "num_samples", None)
    return count if isinstance(count, int) else None


def _summary(record: Record, epochs: int) -> str:
    parts = [f"epoch {int(record['epoch'])}/{epochs}", f"loss {record['loss']:.4f}"]
    if "val_loss" in record:
        parts.append(f"val_loss {record['val_loss']:.4f}")
    if "val_accuracy" in record:
        parts.append(f"val_accuracy {record['val_accuracy']:.4f}")
    parts += [f"lr {record['lr']:.3g}", f"{record['samples_per_second']:,.0f} samples/s",
              f"{record['seconds']:.2f} s"]
    return "  ".join(parts)

