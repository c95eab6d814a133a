"""Trainer: it learns, its options do what they say, and a resumed run is bit-identical."""

from __future__ import annotations

import io
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from netcl.core.tensor import Tensor, bfloat16, float16, manual_seed, rand
from netcl.data import DataLoader, digits
from netcl.nn import Dropout, Flatten, Linear, ReLU, Sequential, cross_entropy
from netcl.optim import SGD, Adam, CosineAnnealingLR, ReduceLROnPlateau
from netcl.train import Callback, Checkpoint, Trainer, load, progress, save
from netcl.train.trainer import Record

pytest.importorskip("sklearn")
SPLITS = digits(seed=0)


def mlp(seed: int = 0, dropout: float = 0.0) -> Sequential:
    manual_seed(seed)
    return Sequential(Flatten(), Linear(None, 64, 32), ReLU(), Dropout(dropout),
                      Linear(None, 32, 10))


def loaders(batch_size: int = 64, seed: int = 0) -> tuple[DataLoader, DataLoader]:
    train = DataLoader(SPLITS.train, batch_size, shuffle=True, seed=seed)
    return train, DataLoader(SPLITS.test, 360)


def adam_trainer(model: Sequential, epochs: int = 4, **kwargs: Any) -> Trainer:
    optimizer = Adam(model.parameters(), lr=1e-2)
    return Trainer(model, optimizer, cross_entropy, CosineAnnealingLR(optimizer, T_max=epochs),
                   progress=False, **kwargs)


def test_fit_learns_digits_and_keeps_history() -> None:
    trainer = adam_trainer(mlp())
    train, test = loaders()
    history = trainer.fit(train, 4, val_loader=test)
    assert [r["epoch"] for r in history] == [1, 2, 3, 4] and trainer.epoch == 4
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["val_accuracy"] > 0.9
    assert history[1]["lr"] < history[0]["lr"]  # the scheduler stepped once per epoch
    assert set(history[0]) == {"epoch", "loss", "lr", "seconds", "samples_per_second",
                               "val_loss", "val_accuracy"}
    assert trainer.fit(train, 4) is history and len(history) == 4  # 4 epochs in all: done


@pytest.mark.parametrize("amp", [bfloat16, float16], ids=["bf16", "fp16"])
def test_mixed_precision_learns_digits_with_jitted_steps(amp: Any) -> None:
    trainer = adam_trainer(mlp(), epochs=3, amp=amp)
    train, test = loaders()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a step the JIT refused would warn
        history = trainer.fit(train, 3, val_loader=test)
    assert trainer.jit_active
    assert history[-1]["loss"] < history[0]["loss"] and history[-1]["val_accuracy"] > 0.9
    assert (trainer.scaler is not None) == (amp == float16)
    if trainer.scaler is not None:
        assert trainer.scaler.get_scale() > 1  # scaled, and grown or kept, not collapsed
    # The forward pass ran in the low dtype: the first epoch's loss is not float32's.
    full = adam_trainer(mlp(), epochs=3)
    assert full.fit(train, 1)[0]["loss"] != history[0]["loss"]


def test_a_float16_checkpoint_keeps_the_scaler_and_an_older_one_loads(tmp_path: Path) -> None:
    trainer = adam_trainer(mlp(), epochs=1, amp=float16)
    trainer.scaler.update(new_scale=512.0)  # type: ignore[union-attr]
    trainer.save_checkpoint(tmp_path / "c")
    other = adam_trainer(mlp(1), epochs=1, amp="float16")
    other.resume(tmp_path / "c")
    assert other.scaler is not None and other.scaler.get_scale() == 512.0
    older = trainer.state_dict()
    del older["scaler"]  # a checkpoint from before mixed precision
    again = adam_trainer(mlp(1), epochs=1, amp=float16)
    again.load_state_dict(older)
    assert again.scaler is not None and again.scaler.get_scale() == 2.0**16  # its own


def test_evaluate_matches_numpy() -> None:
    model = mlp()
    trainer = adam_trainer(model)
    scores = trainer.evaluate(DataLoader(SPLITS.test, 100))  # four batches, the last short
    x = SPLITS.test.x.reshape(360, 64)
    w1, b1, w2, b2 = (p.numpy().astype(np.float64) for p in model.parameters())
    logits = np.maximum(x @ w1.T + b1, 0) @ w2.T + b2
    expected_loss = float(torch.nn.functional.cross_entropy(
        torch.from_numpy(logits), torch.from_numpy(SPLITS.test.y)))
    assert scores["accuracy"] == float((logits.argmax(1) == SPLITS.test.y).mean())
    assert scores["loss"] == pytest.approx(expected_loss, rel=1e-5)
    assert model.training  # evaluate puts the mode back


def _final_weights(trainer: Trainer) -> list[np.ndarray]:
    return [p.numpy() for p in trainer.model.parameters()]


def test_accumulating_two_half_batches_equals_one_whole_batch() -> None:
    # The mean over two halves, each scaled by 1/2, is the mean over the whole: equal up to
    # float32 summation order (a few ulps of the largest grad).
    results = []
    for batch, accumulate in ((64, 1), (32, 2)):
        model = mlp()
        trainer = Trainer(model, SGD(model.parameters(), lr=0.1), cross_entropy,
                          accumulate=accumulate, progress=False)
        trainer.fit(DataLoader(SPLITS.train, batch), 1)
        results.append(_final_weights(trainer))
    for whole, halves in zip(*results, strict=True):
        np.testing.assert_allclose(halves, whole, rtol=0, atol=1e-5)
    untouched = [p.numpy() for p in mlp().parameters()]
    assert not np.allclose(results[0][0], untouched[0])


def test_clip_grad_norm_bounds_every_step() -> None:
    # With SGD the step is lr * grad, so a clipped grad norm of c moves the weights by at
    # most lr * c per step; unclipped, the first step is larger than that.
    max_norm, lr = 0.01, 1.0
    sizes = []
    for clip in (None, max_norm):
        model = mlp()
        before = np.concatenate([p.numpy().ravel() for p in model.parameters()])
        trainer = Trainer(model, SGD(model.parameters(), lr=lr), cross_entropy,
                          clip_grad_norm=clip, progress=False)
        trainer.fit(DataLoader(SPLITS.train, 64, sampler=range(64)), 1)  # one step
        after = np.concatenate([p.numpy().ravel() for p in model.parameters()])
        sizes.append(float(np.linalg.norm(after - before)))
    assert sizes[0] > 10 * lr * max_norm
    assert sizes[1] == pytest.approx(lr * max_norm, rel=1e-3)


def test_callbacks_see_every_batch_and_epoch_and_can_stop() -> None:
    events: list[tuple[str, int]] = []

    class Log(Callback):
        def on_fit_start(self, trainer: Trainer) -> None:
            events.append(("fit", trainer.epoch))

        def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
            events.append(("epoch", epoch))

        def on_batch_end(self, trainer: Trainer, batch: int, loss: Tensor) -> None:
            events.append(("batch", batch))

        def on_epoch_end(self, trainer: Trainer, record: Record) -> None:
            events.append(("end", int(record["epoch"])))
            trainer.stop = record["epoch"] == 2

        def on_fit_end(self, trainer: Trainer) -> None:
            events.append(("done", trainer.epoch))

    trainer = adam_trainer(mlp(), callbacks=[Log()])
    trainer.fit(DataLoader(SPLITS.train, 500), 10)
    batches = [("batch", 0), ("batch", 1), ("batch", 2)]
    assert events == [("fit", 0), ("epoch", 0), *batches, ("end", 1), ("epoch", 1), *batches,
                      ("end", 2), ("done", 2)]


def test_reduce_on_plateau_steps_on_the_validation_loss() -> None:
    model = mlp()
    optimizer = SGD(model.parameters(), lr=1e-6)  # too small to learn: the loss plateaus
    scheduler = ReduceLROnPlateau(optimizer, factor=0.5, patience=0)
    metrics: list[float] = []
    step = scheduler.step
    scheduler.step = lambda metric: (metrics.append(metric), step(metric))[1]  # type: ignore
    trainer = Trainer(model, optimizer, cross_entropy, scheduler, progress=False)
    train, test = loaders(500)
    trainer.fit(train, 3, val_loader=test)
    assert metrics == [r["val_loss"] for r in trainer.history]
    # The first epoch sets the best loss, the second does not improve on it: halved.
    assert [r["lr"] for r in trainer.history] == [1e-6, 1e-6, 5e-7]


def _resumable(tmp: Path, epochs: int, stop_after: int | None, dropout: float) -> Trainer:
    """Adam + cosine (+ dropout, which draws from the tensor layer's generator) on digits."""
    model = mlp(seed=0, dropout=dropout)
    trainer = adam_trainer(model, epochs=epochs, callbacks=[Checkpoint(tmp / "c")])
    if stop_after is not None:
        trainer.fit(loaders()[0], stop_after)
    return trainer


# The steps are replayed, Dropout's too (its masks are drawn on the device, from the
# generator state the checkpoint keeps): resume is exact either way.
@pytest.mark.parametrize("dropout", [0.2, 0.0])
def test_two_epochs_then_resume_then_two_equals_four_straight(
    tmp_path: Path, dropout: float
) -> None:
    straight = _resumable(tmp_path / "a", 4, None, dropout)
    (tmp_path / "a").mkdir()
    straight.fit(loaders()[0], 4)

    (tmp_path / "b").mkdir()
    _resumable(tmp_path / "b", 4, stop_after=2, dropout=dropout)
    manual_seed(123)  # a fresh process: other weights, another generator state
    rand(5)
    resumed = adam_trainer(mlp(seed=7, dropout=dropout), epochs=4)
    assert resumed.resume(tmp_path / "b" / "c") == 2
    resumed.fit(loaders()[0], 4)  # a new loader, as a restarted process builds
    assert straight.jit_active and resumed.jit_active

    for a, b in zip(_final_weights(straight), _final_weights(resumed), strict=True):
        np.testing.assert_array_equal(a, b)
    assert straight.optimizer.state_dict()["param_groups"] == \
        resumed.optimizer.state_dict()["param_groups"]
    assert [r["loss"] for r in straight.history] == [r["loss"] for r in resumed.history]


def test_a_checkpoint_that_does_not_fit_changes_nothing(tmp_path: Path) -> None:
    source = adam_trainer(mlp())
    source.fit(loaders(500)[0], 1)
    source.save_checkpoint(tmp_path / "c")
    state = load(tmp_path / "c")

    target = adam_trainer(mlp(seed=5))
    before = _final_weights(target)
    wrong_shape = {**state, "model": {**state["model"], "1.weight": np.zeros((3, 3))}}
    save(wrong_shape, tmp_path / "bad")
    with pytest.raises(ValueError, match=r"(?s)cannot resume from .*bad.*1\.weight"):
        target.resume(tmp_path / "bad")
    bad_optimizer = {**state, "optimizer": {**state["optimizer"], "param_groups": []}}
    save(bad_optimizer, tmp_path / "bad2")
    with pytest.raises(ValueError, match="param groups"):
        target.resume(tmp_path / "bad2")
    for a, b in zip(before, _final_weights(target), strict=True):
        np.testing.assert_array_equal(a, b)  # the model loaded first was put back
    assert target.epoch == 0 and target.optimizer.state == {}

    sgd = Trainer(target.model, SGD(mlp().parameters(), lr=1.0), cross_entropy, progress=False)
    with pytest.raises(ValueError, match="saved with a Adam optimizer; this one is SGD"):
        sgd.resume(tmp_path / "c")
    save([1, 2], tmp_path / "list")
    with pytest.raises(ValueError, match="holds a list, not a Trainer checkpoint"):
        target.resume(tmp_path / "list")


def test_bad_options() -> None:
    model = mlp()
    optimizer = SGD(model.parameters(), lr=1.0)
    with pytest.raises(ValueError, match="accumulate must be an int >= 1"):
        Trainer(model, optimizer, cross_entropy, accumulate=0)
    with pytest.raises(ValueError, match="clip_grad_norm must be > 0"):
        Trainer(model, optimizer, cross_entropy, clip_grad_norm=-1.0)
    with pytest.raises(ValueError, match="amp must be None, bfloat16 or float16, got 'int32'"):
        Trainer(model, optimizer, cross_entropy, amp="int32")
    with pytest.raises(ValueError, match="gave no batches"):
        Trainer(model, optimizer, cross_entropy).evaluate([])


def test_progress_shows_a_bar_on_a_terminal_and_a_line_per_epoch(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr(progress, "LOSS_EVERY_S", 0.0)  # show every batch's loss
    monkeypatch.setattr(progress, "REDRAW_EVERY_S", 0.0)
    trainer = adam_trainer(mlp(), epochs=1)
    trainer.progress = True
    trainer.fit(DataLoader(SPLITS.train, 256), 1)
    bar = terminal.getvalue()
    assert "epoch 1/1" in bar and "sample/s" in bar and "/1.44k" in bar  # of 1,437 samples
    assert "loss=" in bar and "lr=0.01" in bar
    line = capsys.readouterr().out.strip()
    assert line.startswith("epoch 1/1  loss ") and line.endswith(" s") and "samples/s" in line


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_jitted_steps_match_eager_steps_bit_for_bit(dropout: float) -> None:
    runs = []
    for jit in (False, True):
        trainer = adam_trainer(mlp(dropout=dropout), jit=jit)
        assert trainer.jit_active == jit
        trainer.fit(loaders()[0], 2)  # 23 batches an epoch: captured on call 2, then replayed
        runs.append((_final_weights(trainer), [r["loss"] for r in trainer.history]))
    (eager_weights, eager_losses), (jit_weights, jit_losses) = runs
    for a, b in zip(eager_weights, jit_weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert jit_losses == eager_losses  # the replays' losses are the ones reported


def test_a_step_the_jit_refuses_runs_eagerly_with_the_same_results() -> None:
    runs = []
    for jit in (False, True):
        trainer = adam_trainer(mlp(), jit=jit)
        # A loss that reads its targets back: the JIT refuses it at its first call.
        trainer.loss_fn = lambda out, y: cross_entropy(out, y.numpy())
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trainer.fit(loaders()[0], 1)
        assert not trainer.jit_active
        assert any("cannot be jitted" in str(w.message) for w in caught) == jit
        runs.append(_final_weights(trainer))
    for a, b in zip(*runs, strict=True):
        np.testing.assert_array_equal(a, b)
