"""Capture and replay with the tensor layer alone: signatures, results, refusals, memory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from netcl.core.device import manager
from netcl.core.tensor import Tensor, from_numpy, launch, ops
from netcl.jit import CaptureError, jit


def host(values: Any) -> Tensor:
    return from_numpy(np.asarray(values, np.float32))


@pytest.mark.smoke
def test_calls_one_and_two_run_eagerly_then_replays_skip_python() -> None:
    calls = 0

    def scaled(x: Tensor) -> Tensor:
        nonlocal calls
        calls += 1
        return ops.relu(x * 2.0 - 1.0)

    step = jit(scaled)
    for i in range(5):
        np.testing.assert_array_equal(step(host([i, -i, 0.5])).numpy(),
                                      np.maximum(np.float32([i, -i, 0.5]) * 2 - 1, 0))
    assert calls == 2


def test_a_new_signature_is_captured_again_and_the_old_capture_kept() -> None:
    calls = 0

    def total(x: Tensor, scale: float) -> Tensor:
        nonlocal calls
        calls += 1
        return ops.sum(x * scale)

    step = jit(total)
    for _ in range(3):
        assert step(host([1, 2, 3]), 2.0).item() == 12.0
    assert calls == 2
    for _ in range(3):
        assert step(host([1, 2, 3, 4]), 2.0).item() == 20.0  # a new shape
    assert calls == 4
    for _ in range(3):
        assert step(host([1, 2, 3]), 3.0).item() == 18.0  # a new non-tensor value
    assert calls == 6
    assert step(host([4, 5, 6]), 2.0).item() == 30.0  # the first capture, replayed
    assert calls == 6


@pytest.mark.smoke
def test_returned_tensors_hold_the_replays_results() -> None:
    @jit
    def affine(x: Tensor, w: Tensor) -> dict[str, Any]:
        h = x * w + 1.0
        return {"h": h, "both": (h, h.relu()), "x": x, "note": "kept"}

    rng = np.random.default_rng(0)
    w = host(rng.standard_normal(16))
    for _ in range(4):
        x_host = rng.standard_normal(16).astype(np.float32)
        x = from_numpy(x_host)
        out = affine(x, w)
        want = x_host * w.numpy() + np.float32(1.0)
        np.testing.assert_array_equal(out["h"].numpy(), want)
        np.testing.assert_array_equal(out["both"][1].numpy(), np.maximum(want, 0))
        assert out["x"].buffer is x.buffer and out["note"] == "kept"


def test_a_replay_sets_the_arguments_that_changed_and_keeps_the_rest() -> None:
    # A replay sets an argument's buffer only when it is not the one set last time: the
    # same, another, back again, and one argument changing while the other stays.
    step = jit(lambda x, w: x * w + w)
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal(8).astype(np.float32) for _ in range(2)]
    ws = [rng.standard_normal(8).astype(np.float32) for _ in range(2)]
    x_dev, w_dev = [from_numpy(x) for x in xs], [from_numpy(w) for w in ws]
    for i, j in [(0, 0), (0, 0), (0, 0), (1, 0), (0, 0), (0, 1), (1, 1), (1, 1), (0, 1)]:
        np.testing.assert_array_equal(step(x_dev[i], w_dev[j]).numpy(), xs[i] * ws[j] + ws[j])


def test_a_bind_that_fails_part_way_leaves_no_argument_believed_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # x's new buffer is set, then setting w's fails: the kernels hold x1 though the
    # program bound (x0, w0) last. Replaying (x0, w0) must set x0 again, not skip it.
    step = jit(lambda x, w: x * w + w)
    rng = np.random.default_rng(2)
    xs = [rng.standard_normal(8).astype(np.float32) for _ in range(2)]
    ws = [rng.standard_normal(8).astype(np.float32) for _ in range(2)]
    x_dev, w_dev = [from_numpy(x) for x in xs], [from_numpy(w) for w in ws]
    for _ in range(3):
        step(x_dev[0], w_dev[0])
    set_args = launch.set_args
    calls = 0

    def second_fails(kernel: Any, buffers: tuple[Any, ...], values: tuple[Any, ...]) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("injected set_args failure")
        set_args(kernel, buffers, values)

    monkeypatch.setattr(launch, "set_args", second_fails)
    with pytest.raises(RuntimeError, match="injected"):
        step(x_dev[1], w_dev[1])
    assert calls == 2
    monkeypatch.setattr(launch, "set_args", set_args)
    np.testing.assert_array_equal(step(x_dev[0], w_dev[0]).numpy(), xs[0] * ws[0] + ws[0])


def test_a_replay_that_holds_the_queue_while_it_enqueues_computes_the_same() -> None:
    # Replays hold the queue while they enqueue (Program.hold): bit for bit the same as
    # replays not held and as eager.
    def fn(x: Tensor) -> Tensor:
        return ops.relu(x * 2.0 - 1.0) + ops.sum(x)

    step = jit(fn)
    xs = [host(np.random.default_rng(i).standard_normal(8)) for i in range(3)]
    step(xs[0])
    step(xs[0])
    program = step._last.program  # type: ignore[union-attr]
    results = []
    for hold in (False, True):
        program.hold = hold
        results.append([step(x).numpy() for x in xs])
    for x, plain, held in zip(xs, *results, strict=True):
        np.testing.assert_array_equal(held, plain)
        np.testing.assert_array_equal(held, fn(x).numpy())


def test_replay_allocates_nothing() -> None:
    step = jit(lambda x: ops.exp(x - ops.max(x)) * 0.5)
    x = host(np.linspace(-2, 2, 1000))
    for _ in range(3):
        step(x)
    pool = manager.default("auto").pool
    before = pool.stats()
    for _ in range(5):
        step(x)
    after = pool.stats()
    assert (after.allocations, after.hits) == (before.allocations, before.hits)


@pytest.mark.parametrize(
    "read, named",
    [
        (lambda t: t.item(), r"item\(\)"),
        (lambda t: t.numpy(), r"numpy\(\)"),
        (lambda t: float(t), r"float\(\)"),
        (lambda t: 1 if t > 0 else 0, r"bool\(\) \(a Python branch"),
        (lambda t: from_numpy(np.ones(1, np.float32)), "from_numpy"),
    ],
)
def test_what_a_replay_cannot_repeat_raises_at_capture(
    read: Callable[[Tensor], Any], named: str
) -> None:
    @jit
    def step(x: Tensor) -> Tensor:
        total = ops.sum(x)
        read(total)
        return total

    with pytest.raises(CaptureError, match=named):
        step(host([1.0, 2.0]))


def test_a_non_tensor_unhashable_argument_is_refused() -> None:
    step = jit(lambda x, values: x)
    with pytest.raises(TypeError, match="neither a Tensor nor hashable"):
        step(host([0.0]), np.zeros(3))


def test_launches_before_a_capture_is_an_error() -> None:
    step = jit(lambda x: x + 1.0)
    with pytest.raises(RuntimeError, match="nothing captured yet"):
        step.launches  # noqa: B018
    step(host([1.0]))
    step(host([1.0]))
    assert step.launches.unfused == 1


def test_an_index_out_of_range_raises_in_a_replay_as_eagerly() -> None:
    """Tensor indices are checked on the device, so every replay checks them too (before,
    only the capture did, and a replay silently read element 0)."""
    logits = from_numpy(np.arange(12, dtype=np.float32).reshape(3, 4))
    step = jit(lambda y: ops.take_along_axis(logits, y, 1))
    good = np.array([[0], [3], [1]])
    for _ in range(3):
        np.testing.assert_array_equal(step(from_numpy(good)).numpy(), [[0.0], [7.0], [9.0]])
    bad = from_numpy(np.array([[0], [4], [1]]))
    with pytest.raises(ValueError, match="index 4 is out of range"):
        ops.take_along_axis(logits, bad, 1).numpy()  # eagerly
    replayed = step(bad)
    with pytest.raises(ValueError, match="index 4 is out of range"):
        replayed.numpy()
    np.testing.assert_array_equal(replayed.numpy(), [[0.0], [4.0], [9.0]])  # index 0 read instead
