"""A jitted training step against the same step run eagerly: bit for bit, state included."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_digits

import netcl.autograd as ag
from netcl.core.device import manager
from netcl.core.tensor import Tensor, from_numpy, manual_seed
from netcl.jit import CaptureError, jit
from netcl.nn import Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential, cross_entropy
from netcl.optim import Adam, CosineAnnealingLR

Step = Callable[[Tensor, Tensor], Tensor]


def digits_batches(batch_size: int) -> list[tuple[Tensor, Tensor]]:
    """The first 200 digits in batches; the last batch is short (a second signature)."""
    digits = load_digits()
    x = (digits.data[:200] / 16.0).astype(np.float32)
    y = digits.target[:200].astype(np.int64)
    return [
        (from_numpy(x[i:i + batch_size]), from_numpy(y[i:i + batch_size]))
        for i in range(0, len(x), batch_size)
    ]


def trainer(model: Sequential, **adam: Any) -> tuple[Step, Adam]:
    optimizer = Adam(model.parameters(), lr=1e-2, **adam)

    def train_step(x: Tensor, y: Tensor) -> Tensor:
        with ag.Tape() as tape:
            loss = cross_entropy(model(x), y)
        tape.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        return loss

    return train_step, optimizer


def mlp() -> Sequential:
    manual_seed(0)
    return Sequential(Linear(None, 64, 256), ReLU(), Linear(None, 256, 10))


def run(mode: str, steps: int, edit: Callable[[int, Adam], None] | None = None) -> dict[str, Any]:
    """``steps`` steps of the digits MLP with Adam and CosineAnnealingLR (stepped every 7
    batches, so lr changes inside an epoch of batches), eagerly or jitted."""
    model = mlp()
    train_step, optimizer = trainer(model)
    scheduler = CosineAnnealingLR(optimizer, T_max=5)
    step: Step = train_step if mode == "eager" else jit(train_step, fuse=mode == "fused")
    batches = digits_batches(64)
    losses, lrs = [], []
    for i in range(steps):
        if edit is not None:
            edit(i, optimizer)
        losses.append(step(*batches[i % len(batches)]).numpy())
        lrs.append(optimizer.param_groups[0]["lr"])
        if i % 7 == 6:
            scheduler.step()
    return {
        "losses": losses,
        "lrs": lrs,
        "params": [p.numpy() for p in model.parameters()],
        "state": optimizer.state_dict(),
        "step": step,
    }


def assert_same(eager: dict[str, Any], jitted: dict[str, Any]) -> None:
    for i, (a, b) in enumerate(zip(eager["losses"], jitted["losses"], strict=True)):
        assert np.array_equal(a, b), f"loss of step {i}: eager {a}, jitted {b}"
    for a, b in zip(eager["params"], jitted["params"], strict=True):
        np.testing.assert_array_equal(a, b)
    assert eager["state"]["param_groups"] == jitted["state"]["param_groups"]
    for index, state in eager["state"]["state"].items():
        other = jitted["state"]["state"][index]
        assert state["step"] == other["step"]
        for key in ("exp_avg", "exp_avg_sq"):
            np.testing.assert_array_equal(state[key], other[key])


@pytest.fixture(scope="module")
def eager50() -> dict[str, Any]:
    return run("eager", 50)


@pytest.mark.parametrize("mode", ["fused", "unfused"])
def test_50_jitted_digits_steps_equal_eager_bit_for_bit(
    eager50: dict[str, Any], mode: str
) -> None:
    jitted = run(mode, 50)
    assert_same(eager50, jitted)
    # The scheduler moved lr while replaying, and every step was counted.
    assert len(set(jitted["lrs"])) > 5
    assert all(s["step"] == 50 for s in jitted["state"]["state"].values())
    launches = jitted["step"].launches
    if mode == "fused":
        assert launches.fused < launches.unfused
    else:
        assert launches.fused == launches.unfused


def test_param_group_edits_between_replays_are_honoured() -> None:
    def edit(i: int, optimizer: Adam) -> None:
        group = optimizer.param_groups[0]
        group["weight_decay"] = 0.05 if i >= 6 else 0.0
        if i == 9:
            group["lr"] = 0.5
            group["betas"] = (0.8, 0.99)

    eager, jitted = run("eager", 12, edit), run("fused", 12, edit)
    assert_same(eager, jitted)
    assert jitted["state"]["param_groups"][0]["weight_decay"] == 0.05


def test_a_new_input_shape_is_captured_again() -> None:
    model = mlp()
    train_step, _ = trainer(model)
    calls = 0

    def counted(x: Tensor, y: Tensor) -> Tensor:
        nonlocal calls
        calls += 1
        return train_step(x, y)

    step = jit(counted)
    long, short = digits_batches(64)[0], digits_batches(64)[-1]
    assert long[0].shape != short[0].shape
    for _ in range(4):
        step(*long)
    assert calls == 2  # calls 3 and 4 replayed
    for _ in range(4):
        step(*short)
    assert calls == 4  # the short batch ran eagerly twice, then replayed
    # The short batch's capture, the most recent. Its fused count may differ from the
    # long batch's: a reduction takes a prologue only of launches no longer than itself.
    latest = step.launches
    for _ in range(2):
        step(*long)
    assert calls == 4  # the long batch's capture is still there
    assert step.launches == latest  # and replaying it captured nothing again


def test_replay_allocates_nothing() -> None:
    model = mlp()
    train_step, _ = trainer(model)
    step = jit(train_step)
    x, y = digits_batches(64)[0]
    for _ in range(3):
        step(x, y)
    pool = manager.default("auto").pool
    before = pool.stats()
    for _ in range(5):
        step(x, y)
    after = pool.stats()
    assert (after.allocations, after.hits) == (before.allocations, before.hits)



@pytest.mark.parametrize(
    "read, named",
    [
        (lambda loss: loss.item(), "item()"),
        (lambda loss: loss.numpy(), "numpy()"),
        (lambda loss: bool(loss > 1.0), "bool()"),
    ],
)
def test_a_host_read_inside_raises_at_capture(read: Callable[[Tensor], Any], named: str) -> None:
    model = mlp()
    train_step, _ = trainer(model)

    @jit
    def step(x: Tensor, y: Tensor) -> Tensor:
        loss = train_step(x, y)
        read(loss)
        return loss

    with pytest.raises(CaptureError, match=named.replace("(", r"\(").replace(")", r"\)")):
        step(*digits_batches(64)[0])



def small_cnn() -> Sequential:
    manual_seed(0)
    return Sequential(
        Conv2d(None, 1, 4, 3, padding=1), ReLU(), MaxPool2d(2), Flatten(), Linear(None, 64, 10)
    )


def test_a_small_cnn_replays_bit_for_bit() -> None:
    rng = np.random.default_rng(1)
    x = from_numpy(rng.standard_normal((8, 1, 8, 8)).astype(np.float32))
    y = from_numpy(rng.integers(0, 10, 8))
    results = []
    for jitted in (False, True):
        model = small_cnn()
        train_step, _ = trainer(model)
        step = jit(train_step) if jitted else train_step
        losses = [step(x, y).numpy() for _ in range(6)]
        results.append((losses, [p.numpy() for p in model.parameters()]))
    (eager_losses, eager_params), (jit_losses, jit_params) = results
    for a, b in zip(eager_losses + eager_params, jit_losses + jit_params, strict=True):
        np.testing.assert_array_equal(a, b)
