"""The JIT's contract (DESIGN.md): a capture is replayed only under the conditions it was
recorded in. Each case here replayed silently wrong before guards: it is run jitted and
eagerly from the same start and must end bit-identical (or raise as eagerly)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import netcl.autograd as ag
from netcl.core.tensor import Parameter, Tensor, from_numpy, manual_seed
from netcl.jit import jit
from netcl.nn import Dropout, Linear, Module, ReLU, Sequential, cross_entropy
from netcl.nn.functional import dropout
from netcl.optim import Adam
from netcl.train import Callback, Trainer

Array = np.ndarray[Any, Any]


def batches(count: int, seed: int = 0) -> list[tuple[Tensor, Tensor]]:
    rng = np.random.default_rng(seed)
    return [(from_numpy(rng.standard_normal((8, 6)).astype(np.float32)),
             from_numpy(rng.integers(0, 3, 8))) for _ in range(count)]


class HalvedInTraining(Module):
    """Stands for Dropout and BatchNorm: what it computes depends on ``training``."""

    def forward(self, x: Tensor) -> Tensor:
        return x * 0.5 if self.training else x


def model() -> Sequential:
    manual_seed(0)
    return Sequential(Linear(None, 6, 16), ReLU(), HalvedInTraining(), Linear(None, 16, 3))


def params(m: Sequential) -> list[Array]:
    return [p.numpy() for p in m.parameters()]


def assert_same(a: list[Array], b: list[Array]) -> None:
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def forward_backward(m: Sequential, x: Tensor, y: Tensor) -> Tensor:
    with ag.Tape() as tape:
        loss = cross_entropy(m(x), y)
    tape.backward(loss)
    return loss


def train(jitted: bool, fail_first: str | None = None, steps: int = 6) -> list[Array]:
    """``steps`` Adam steps; with ``fail_first``, call 1 raises at that point."""
    m = model()
    optimizer = Adam(m.parameters(), lr=1e-2)
    state = {"fail": fail_first}

    def step(x: Tensor, y: Tensor) -> Tensor:
        if state["fail"] == "before backward":
            state["fail"] = None
            raise RuntimeError("first call fails")
        loss = forward_backward(m, x, y)
        if state["fail"] == "after backward":
            state["fail"] = None
            raise RuntimeError("first call fails")
        optimizer.step()
        optimizer.zero_grad()
        return loss

    run = jit(step) if jitted else step
    for x, y in batches(steps):
        try:
            run(x, y)
        except RuntimeError:
            optimizer.zero_grad()
    return params(m)


@pytest.mark.parametrize("fail_first", [None, "before backward", "after backward"])
def test_a_capture_is_a_steady_step_even_when_call_one_raised(fail_first: str | None) -> None:
    # Item 1: a capture containing Adam's state creation zero-filled the moments at every replay.
    assert_same(train(False, fail_first), train(True, fail_first))


@pytest.mark.parametrize("set_to_none", [True, False])
def test_gradient_accumulation_under_jit_equals_eager(set_to_none: bool) -> None:
    # Item 2: the capture baked in "a grad exists, accumulate" (or "none, create").
    results = []
    for jitted in (False, True):
        m = model()
        optimizer = Adam(m.parameters(), lr=1e-2)
        micro = jit(forward_backward) if jitted else forward_backward
        for i, (x, y) in enumerate(batches(12)):
            micro(m, x, y)
            if i % 2 == 1:
                optimizer.step()
                optimizer.zero_grad(set_to_none=set_to_none)
        results.append(params(m))
    assert_same(*results)


def test_out_of_range_labels_raise_in_replays_after_a_host_read() -> None:
    # Item 3: after a host read, replays given label 7 of 3 classes updated the parameters.
    m = model()
    optimizer = Adam(m.parameters(), lr=1e-2)

    @jit
    def step(x: Tensor, y: Tensor) -> Tensor:
        loss = forward_backward(m, x, y)
        optimizer.step()
        optimizer.zero_grad()
        return loss

    data = batches(6)
    for x, y in data[:5]:
        step(x, y).item()  # a host read between replays
    x, good = data[5]
    for bad in (7, -5):
        with pytest.raises(ValueError, match=rf"target {bad} is out of range for 3 classes"):
            step(x, from_numpy(np.array([0, 1, bad, 2, 0, 1, 2, 0]))).item()
    # A bad replay followed by good ones, no read between: the next read still raises;
    # once it has, good replays read cleanly.
    step(x, from_numpy(np.array([0, 1, 9, 2, 0, 1, 2, 0])))
    step(x, good)
    with pytest.raises(ValueError, match="target 9 is out of range"):
        step(x, good).item()
    assert np.isfinite(step(x, good).item())


Edit = Callable[[Sequential], None]


def replace_weight(m: Sequential) -> None:
    first = m[0]
    assert isinstance(first, Linear)
    first.weight = Parameter(from_numpy(first.weight.numpy() * 0.5))


def freeze_weight(m: Sequential) -> None:
    first = m[0]
    assert isinstance(first, Linear)
    first.weight.requires_grad = False


@pytest.mark.parametrize("edit", [replace_weight, freeze_weight, lambda m: m.train()],
                         ids=["replaced Parameter", "requires_grad", "train after eval"])
def test_python_state_changed_between_replays_is_honoured(edit: Edit) -> None:
    # Item 4: a replaced Parameter, a requires_grad change or train() after capturing in eval().
    results = []
    for jitted in (False, True):
        m = model().eval()

        def step(x: Tensor, y: Tensor, m: Sequential = m) -> Tensor:
            loss = forward_backward(m, x, y)
            with ag.no_grad():  # SGD by hand: a replaced Parameter needs no optimizer's consent
                for p in m.parameters():
                    if p.grad is not None:
                        p.add_(p.grad, alpha=-0.1)
            return loss

        run = jit(step) if jitted else step
        losses = []
        for i, (x, y) in enumerate(batches(8)):
            if i == 4:
                edit(m)
            m.zero_grad()
            losses.append(run(x, y).numpy())
        results.append([*losses, *params(m), *[p.grad.numpy() for p in m.parameters()
                                               if p.grad is not None]])
    assert_same(*results)


def test_a_result_read_after_the_next_replay_raises() -> None:
    # Item 6: every kept loss read the latest replay's value.
    m = model()

    @jit
    def loss_of(x: Tensor, y: Tensor) -> Tensor:
        return cross_entropy(m(x), y)

    data = batches(5)
    kept = [loss_of(x, y) for x, y in data]
    fresh = kept[-1].item()
    assert fresh == cross_entropy(m(data[-1][0]), data[-1][1]).item()
    for stale in kept[1:4]:  # the capture's and the replays' results before the last
        with pytest.raises(RuntimeError, match=r"overwritten.*before the next call"):
            stale.item()
        with pytest.raises(RuntimeError, match="overwritten"):
            stale.detach().numpy()
    assert kept[0].item() == cross_entropy(m(data[0][0]), data[0][1]).item()  # the warm-up's


def test_the_trainer_hands_callbacks_losses_that_stay_valid() -> None:
    class Keep(Callback):
        def __init__(self) -> None:
            self.losses: list[Tensor] = []

        def on_batch_end(self, trainer: Trainer, batch: int, loss: Tensor) -> None:
            self.losses.append(loss)

    kept = []
    for jit_steps in (False, True):
        m = model()
        keep = Keep()
        trainer = Trainer(m, Adam(m.parameters(), lr=1e-2), cross_entropy, callbacks=[keep],
                          progress=False, jit=jit_steps)
        trainer.fit(batches(6), epochs=2)
        assert trainer.jit_active == jit_steps
        kept.append([loss.item() for loss in keep.losses])
    assert kept[0] == kept[1]


def test_dropout_jits_and_each_replay_draws_a_new_mask_equal_to_eager() -> None:
    # Item 5: Dropout drew its mask on the host, so call 1 raised CaptureError.
    runs = []
    for jitted in (False, True):
        manual_seed(0)
        m = Sequential(Linear(None, 6, 32), ReLU(), Dropout(0.5), Linear(None, 32, 3))
        optimizer = Adam(m.parameters(), lr=1e-2)

        def step(x: Tensor, y: Tensor, m: Sequential = m, optimizer: Adam = optimizer) -> Tensor:
            loss = forward_backward(m, x, y)
            optimizer.step()
            optimizer.zero_grad()
            return loss

        run = jit(step) if jitted else step
        x, y = batches(1)[0]
        losses = [run(x, y).item() for _ in range(8)]
        runs.append((losses, params(m)))
    (eager, eager_params), (jitted_losses, jitted_params) = runs
    assert eager == jitted_losses
    assert_same(eager_params, jitted_params)

    masks = []
    for drop in (dropout, jit(dropout)):
        manual_seed(1)
        ones = from_numpy(np.ones((4, 64), np.float32))
        masks.append([drop(ones, 0.5).numpy() for _ in range(6)])
    for eager_mask, jitted_mask in zip(*masks, strict=True):
        np.testing.assert_array_equal(eager_mask, jitted_mask)
    replays = masks[1][2:]  # calls 3 to 6
    assert all(not np.array_equal(a, b) for a, b in itertools.pairwise(replays))
