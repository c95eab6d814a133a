"""Tape mechanics: recording, accumulation into leaves, reuse, no_grad, nesting, grad()."""

from __future__ import annotations

import gc
import re
import weakref
from pathlib import Path

import numpy as np
import pytest

import netcl.autograd as ag
import netcl.core.tensor as nt
from netcl.core.device import manager
from netcl.core.tensor import Tensor, ops
from netcl.core.tensor.dispatch import record

RNG = np.random.default_rng(0)


def leaf(*shape: int, requires_grad: bool = True) -> Tensor:
    return nt.tensor(RNG.standard_normal(shape).astype(np.float32), requires_grad=requires_grad)


@pytest.mark.smoke
def test_backward_accumulates_the_gradient_into_leaves() -> None:
    x, w = leaf(2, 3), leaf(3)
    with ag.Tape() as tape:
        loss = ops.sum(ops.mul(ops.mul(x, w), x))
    tape.backward(loss)
    xv, wv = x.numpy(), w.numpy()
    assert x.grad is not None and w.grad is not None
    np.testing.assert_allclose(x.grad.numpy(), 2 * xv * wv, rtol=1e-6)
    np.testing.assert_allclose(w.grad.numpy(), (xv * xv).sum(0), rtol=1e-6)
    assert x.grad.is_contiguous and not x.grad.requires_grad


def test_a_second_backward_adds_in_place_and_keeps_a_view_grad_a_view() -> None:
    x = leaf(4)
    flat = nt.zeros(10)
    # An optimizer places grads as views into one flat buffer; accumulation must keep them there.
    x.grad = ops.getitem(flat, slice(3, 7))
    for _ in range(2):
        with ag.Tape() as tape:
            loss = ops.sum(ops.mul(x, 3.0))
        tape.backward(loss)
    np.testing.assert_array_equal(flat.numpy(), [0, 0, 0, 6, 6, 6, 6, 0, 0, 0])


def test_a_leaf_used_twice_gets_both_contributions() -> None:
    x = leaf(5)
    with ag.Tape() as tape:
        loss = ops.sum(ops.add(ops.mul(x, x), x))
    tape.backward(loss)
    assert x.grad is not None
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy() + 1, rtol=1e-6)


def test_only_leaves_that_require_grad_get_grad() -> None:
    x, const = leaf(3), leaf(3, requires_grad=False)
    with ag.Tape() as tape:
        hidden = ops.exp(ops.mul(x, const))
        loss = ops.sum(hidden)
    tape.backward(loss)
    assert x.grad is not None
    assert const.grad is None and hidden.grad is None
    assert not hidden.is_leaf and hidden.requires_grad


def test_ops_on_tensors_that_need_no_grad_are_not_recorded() -> None:
    a, b = leaf(3, requires_grad=False), leaf(3, requires_grad=False)
    with ag.Tape() as tape:
        c = ops.add(a, b)
    assert len(tape) == 0 and not c.requires_grad and c.is_leaf


def test_tape_used_twice_raises_unless_retained() -> None:
    x = leaf(3)
    with ag.Tape() as tape:
        loss = ops.sum(ops.exp(x))
    tape.backward(loss)
    with pytest.raises(RuntimeError, match="already used by a backward pass"):
        tape.backward(loss)


@pytest.mark.parametrize("how", ["tape", "call"])
def test_retained_tape_runs_backward_again(how: str) -> None:
    x = leaf(3)
    with ag.Tape(retain=how == "tape") as tape:
        loss = ops.sum(ops.exp(x))
    tape.backward(loss, retain_graph=True if how == "call" else None)
    tape.backward(loss)
    assert x.grad is not None
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.exp(x.numpy()), rtol=1e-6)
    if how == "call":  # the second call did not retain
        with pytest.raises(RuntimeError, match="already used"):
            tape.backward(loss)


def test_backward_frees_the_saved_tensors() -> None:
    x = leaf(3)
    with ag.Tape() as tape:
        hidden = ops.exp(x)
        loss = ops.sum(ops.mul(hidden, hidden))
    ref = weakref.ref(hidden)
    del hidden
    gc.collect()
    assert ref() is not None  # the record holds it for backward
    tape.backward(loss)
    gc.collect()
    assert ref() is None and len(tape) == 0


def test_backward_with_a_seed_gradient() -> None:
    x = leaf(2, 3)
    seed = nt.tensor(RNG.standard_normal((2, 3)).astype(np.float32))
    with ag.Tape() as tape:
        y = ops.mul(x, 2.0)
    tape.backward(y, seed)
    assert x.grad is not None
    np.testing.assert_allclose(x.grad.numpy(), 2 * seed.numpy(), rtol=1e-6)


def test_a_gradient_only_the_walk_holds_becomes_grad_without_a_copy() -> None:
    x = leaf(64, 64)
    seed = nt.tensor(RNG.standard_normal((64, 64)).astype(np.float32))
    with ag.Tape() as tape:
        y = ops.mul(x, 2.0)
    pool = manager.default().pool
    pool.reset_peak()
    before = pool.stats().bytes_in_use
    tape.backward(y, seed)
    # mul's rule makes new memory: handed over, one gradient's bytes at most (a copy: two).
    assert pool.stats().peak_bytes_in_use - before < 2 * x.nbytes
    assert x.grad is not None
    np.testing.assert_array_equal(x.grad.numpy(), 2 * seed.numpy())


def test_a_gradient_others_can_reach_is_copied_into_grad() -> None:
    a, b, c = leaf(2, 3), leaf(2, 3), leaf(6)
    seed = nt.tensor(RNG.standard_normal((2, 3)).astype(np.float32))
    with ag.Tape() as tape:
        # add passes its gradient through to both inputs: the caller's seed, shared; the
        # reshape's gradient is a view of the seed too.
        y = ops.add(ops.add(a, b), ops.reshape(c, (2, 3)))
    tape.backward(y, seed)
    assert a.grad is not None and b.grad is not None and c.grad is not None
    want = seed.numpy()
    a.grad.add_(1.0)
    b.grad.add_(2.0)
    c.grad.add_(3.0)
    np.testing.assert_array_equal(seed.numpy(), want)
    np.testing.assert_array_equal(a.grad.numpy(), want + 1)
    np.testing.assert_array_equal(b.grad.numpy(), want + 2)
    np.testing.assert_array_equal(c.grad.numpy(), want.reshape(6) + 3)
    ptrs = {t.buffer.int_ptr for t in (seed, a.grad, b.grad, c.grad)}
    assert len(ptrs) == 4


def test_backward_errors_name_the_shapes() -> None:
    x = leaf(2, 3)
    with ag.Tape(retain=True) as tape:
        y = ops.mul(x, 2.0)
        z = ops.mul(leaf(2, requires_grad=False), 2.0)
    with pytest.raises(RuntimeError, match=r"shape \(2, 3\).*pass grad="):
        tape.backward(y)
    with pytest.raises(ValueError, match=r"\(3, 2\).*\(2, 3\)"):
        tape.backward(y, nt.ones((3, 2)))
    with pytest.raises(RuntimeError, match="does not require grad"):
        tape.backward(z)


@pytest.mark.smoke
def test_no_grad_records_nothing() -> None:
    x = leaf(3)
    with ag.Tape() as tape:
        with ag.no_grad():
            assert not ag.is_recording()
            y = ops.exp(x)
        assert ag.is_recording()
    assert len(tape) == 0 and not y.requires_grad and y.is_leaf

    @ag.no_grad()
    def step(t: Tensor) -> Tensor:
        return ops.mul(t, 2.0)

    with ag.Tape() as tape:
        z = step(x)
    assert len(tape) == 0 and not z.requires_grad


def test_in_place_update_of_a_parameter_is_allowed_under_no_grad_only() -> None:
    p = nt.Parameter(nt.ones(3))
    p.grad = nt.full(3, 0.5)
    with ag.Tape(), pytest.raises(RuntimeError, match="in-place"):
        p.add_(p.grad, alpha=-1.0)
    with ag.Tape(), ag.no_grad():
        p.add_(p.grad, alpha=-1.0)
    np.testing.assert_allclose(p.numpy(), [0.5, 0.5, 0.5])


def test_nested_tapes_both_record_the_inner_block() -> None:
    x = leaf(3)
    with ag.Tape() as outer:
        y = ops.exp(x)
        with ag.Tape() as inner:
            z = ops.mul(y, y)
            with ag.no_grad():
                ops.mul(z, 2.0)  # seen by neither
        loss = ops.sum(z)
    assert len(inner) == 1 and len(outer) == 3
    # The inner tape stops at y (a non-leaf it did not record): no leaf grad.
    (dz_dy,) = inner.grad([z], [y], [nt.ones(3)])
    assert dz_dy is not None
    np.testing.assert_allclose(dz_dy.numpy(), 2 * np.exp(x.numpy()), rtol=1e-6)
    outer.backward(loss)
    assert x.grad is not None
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.exp(2 * x.numpy()), rtol=1e-5)


def test_a_tape_records_one_block() -> None:
    tape = ag.Tape()
    with tape:
        pass
    with pytest.raises(RuntimeError, match="already recorded a block"), tape:
        pass


def test_grad_returns_gradients_and_leaves_dot_grad_alone() -> None:
    x, w = leaf(3), leaf(3)
    with ag.Tape():
        h = ops.mul(x, w)
        loss = ops.sum(ops.tanh(h))
    gx, gh = ag.grad(loss, [x, h], retain_graph=True)
    assert gx is not None and gh is not None
    dh = 1 - np.tanh(x.numpy() * w.numpy()) ** 2
    np.testing.assert_allclose(gh.numpy(), dh, rtol=1e-5)
    np.testing.assert_allclose(gx.numpy(), dh * w.numpy(), rtol=1e-5)
    assert x.grad is None and w.grad is None
    unused = leaf(2)
    with pytest.raises(ValueError, match=r"input 1.*not used"):
        ag.grad(loss, [x, unused], retain_graph=True)
    assert ag.grad(loss, [x, unused], allow_unused=True)[1] is None


def test_grad_of_an_unrecorded_output_raises() -> None:
    with pytest.raises(ValueError, match="not recorded by any live Tape"):
        ag.grad(ops.exp(leaf(2)), [leaf(2)])


def test_an_op_without_a_rule_raises_naming_it() -> None:
    x = leaf(2)
    with ag.Tape() as tape:
        y = record("frobnicate", [x], ops.copy(x))
    with pytest.raises(NotImplementedError, match="frobnicate"):
        tape.backward(y, nt.ones(2))


def test_every_op_the_tensor_layer_records_has_a_rule() -> None:
    """Scan the tensor layer's op sources for recorded names: a new op needs a rule."""
    ops_dir = Path(nt.__file__).parent / "ops"
    pattern = re.compile(r'(?:record|_binary|_unary)\(\s*"(\w+)"')
    recorded = {m for path in ops_dir.glob("*.py") for m in pattern.findall(path.read_text())}
    assert {"add", "where", "sum", "reshape", "getitem", "matmul", "unfold"} <= recorded
    assert recorded - set(ag.RULES) == set()


def test_post_accumulate_grad_hooks_fire_once_per_leaf_as_soon_as_its_grad_is_complete() -> None:
    x, w1, w2, unused = leaf(2, 3, requires_grad=False), leaf(3, 4), leaf(4, 1), leaf(5)
    seen: list[tuple[str, bool, np.ndarray]] = []

    def hook(name: str) -> ag.RemovableHandle:
        tensor = {"w1": w1, "w2": w2, "unused": unused}[name]
        return ag.register_post_accumulate_grad_hook(
            tensor,
            lambda t: seen.append((name, w1.grad is None, t.grad.numpy())),  # type: ignore[union-attr]
        )

    hook("w1"), hook("w2"), hook("unused")
    with ag.Tape() as tape:
        h = ops.relu(ops.matmul(x, w1))
        # w2 is used twice: its hook must see both contributions, once.
        loss = ops.sum(ops.add(ops.matmul(h, w2), ops.matmul(h, w2)))
    tape.backward(loss)
    # w2 is complete first (its uses come last in the record), while w1 still has no grad.
    assert [(name, w1_missing) for name, w1_missing, _ in seen] == [("w2", True), ("w1", False)]
    assert w2.grad is not None and w1.grad is not None
    np.testing.assert_array_equal(seen[0][2], w2.grad.numpy())
    hv = np.maximum(x.numpy() @ w1.numpy(), 0)
    np.testing.assert_allclose(seen[0][2], 2 * hv.sum(0)[:, None], rtol=1e-5)


def test_a_removed_hook_is_not_called_and_hooks_need_a_leaf_that_requires_grad() -> None:
    w = leaf(3)
    calls: list[int] = []
    handle = ag.register_post_accumulate_grad_hook(w, lambda t: calls.append(1))
    for _ in range(2):
        with ag.Tape() as tape:
            loss = ops.sum(ops.mul(w, w))
        tape.backward(loss)
    assert calls == [1, 1]
    handle.remove()
    with ag.Tape() as tape:
        loss = ops.sum(ops.mul(w, w))
    tape.backward(loss)
    assert calls == [1, 1]
    with pytest.raises(ValueError, match="leaf that requires grad"):
        ag.register_post_accumulate_grad_hook(leaf(3, requires_grad=False), print)
    with pytest.raises(TypeError, match="expected a Tensor"):
        ag.register_post_accumulate_grad_hook(np.zeros(3), print)  # type: ignore[arg-type]


def test_tapes_that_are_gone_leave_no_reference_behind() -> None:
    # A loop that never calls grad() kept one dead weak reference per Tape (per step).
    from netcl.autograd import tape as tape_module

    x = nt.tensor(np.ones(3, np.float32), requires_grad=True)
    for _ in range(1000):
        with ag.Tape() as tape:
            y = (x * 2.0).sum()
        tape.backward(y)
    del tape, y
    assert len(tape_module._live_tapes) <= 128  # pruned at 64 entries, then at twice the live
