"""step(), zero_grad() and the lazy state: what the base class promises every optimizer."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import netcl.optim as no
from netcl.core.device import manager
from netcl.core.tensor import Parameter, Tensor, from_numpy

ALL = [
    (no.Adam, {}), (no.AdamW, {}), (no.SGD, {"lr": 0.1}), (no.Momentum, {"lr": 0.1}),
    (no.RMSProp, {"momentum": 0.5, "centered": True}), (no.NAdam, {}), (no.RAdam, {}),
    (no.Adamax, {}), (no.Adagrad, {}), (no.Lion, {}),
]
IDS = [cls.__name__ for cls, _ in ALL]


def param(values: Any, dtype: str = "float32") -> Parameter:
    return Parameter(from_numpy(np.asarray(values, dtype=dtype)))


def grad_like(p: Tensor, value: float = 0.5) -> Tensor:
    return from_numpy(np.full(p.shape, value, dtype=p.dtype), p.device)


@pytest.mark.parametrize(("cls", "kwargs"), ALL, ids=IDS)
def test_state_is_created_on_first_step_in_float32_on_the_param_device(
    cls: type[no.Optimizer], kwargs: dict[str, Any]
) -> None:
    p, q = param(np.arange(6.0).reshape(2, 3), "float16"), param([1.0, 2.0])
    optimizer = cls([p, q], **kwargs)
    assert optimizer.state == {}
    p.grad = grad_like(p)
    optimizer.step()
    if cls is no.SGD:  # PyTorch's SGD keeps nothing; netcl's keeps the fp16 master
        assert list(optimizer.state[p].keys()) == ["master_param"]
    assert list(optimizer.state) == [p]  # q had no grad: no state
    for tensor in optimizer.state[p].buffers.values():
        assert tensor.dtype == np.float32 and tensor.shape == p.shape
        assert tensor.device is p.device
    assert p.dtype == np.float16


@pytest.mark.parametrize(("cls", "kwargs"), ALL, ids=IDS)
def test_params_without_grad_and_non_leaves_are_skipped(
    cls: type[no.Optimizer], kwargs: dict[str, Any]
) -> None:
    stepped, no_grad, non_leaf = param([1.0, 2.0]), param([3.0, 4.0]), param([5.0, 6.0])
    optimizer = cls([stepped, no_grad, non_leaf], **kwargs)
    stepped.grad, non_leaf.grad = grad_like(stepped), grad_like(non_leaf)
    non_leaf.is_leaf = False  # as if an op had produced it
    optimizer.step()
    assert not np.array_equal(stepped.numpy(), [1.0, 2.0])
    np.testing.assert_array_equal(no_grad.numpy(), [3.0, 4.0])
    np.testing.assert_array_equal(non_leaf.numpy(), [5.0, 6.0])
    assert no_grad not in optimizer.state and non_leaf not in optimizer.state


def test_step_counts_are_per_parameter() -> None:
    early, late = param([1.0]), param([1.0])
    optimizer = no.Adam([early, late], lr=0.1)
    for step in range(5):
        early.grad = grad_like(early)
        late.grad = grad_like(late) if step >= 3 else None
        optimizer.step()
    assert optimizer.state[early].step == 5.0 and optimizer.state[late].step == 2.0
    # Bias correction restarted at t=1 for the late one: it moved exactly as a fresh
    # Adam's first two steps move a parameter.
    alone = param([1.0])
    single = no.Adam([alone], lr=0.1)
    for _ in range(2):
        alone.grad = grad_like(alone)
        single.step()
    assert late.numpy().tobytes() == alone.numpy().tobytes()
    assert early.numpy().tobytes() != alone.numpy().tobytes()


def test_closure_runs_once_before_the_update_and_its_value_is_returned() -> None:
    p = param([1.0, -1.0])
    optimizer = no.SGD([p], lr=0.5)
    calls: list[int] = []

    def closure() -> float:
        calls.append(1)
        p.grad = from_numpy(np.array([2.0, 4.0], dtype=np.float32))
        return 3.25

    assert optimizer.step(closure) == 3.25
    assert calls == [1]
    np.testing.assert_allclose(p.numpy(), [0.0, -3.0])
    assert optimizer.step() is None


def test_zero_grad_sets_to_none_or_zeroes_in_place() -> None:
    p, q = param([1.0, 2.0]), param([3.0])
    optimizer = no.Momentum([p, q], lr=0.1)
    p.grad = grad_like(p)
    buffer = p.grad.buffer
    optimizer.zero_grad(set_to_none=False)
    assert p.grad is not None and p.grad.buffer is buffer and q.grad is None
    np.testing.assert_array_equal(p.grad.numpy(), [0.0, 0.0])
    optimizer.zero_grad()
    assert p.grad is None


def test_changing_lr_builds_no_kernel() -> None:
    device = manager.default()
    p = param(np.ones(10))
    optimizer = no.Adam([p], lr=0.1)
    p.grad = grad_like(p)
    optimizer.step()
    built = len(device.kernels)
    for lr in (0.05, 0.01, 0.2):
        optimizer.param_groups[0]["lr"] = lr
        optimizer.param_groups[0]["betas"] = (0.8, 0.99)
        optimizer.step()
    assert len(device.kernels) == built


def test_a_bad_grad_raises_before_any_parameter_moves() -> None:
    good, bad = param([1.0, 2.0]), param([1.0, 2.0])
    optimizer = no.Adam([{"params": [good]}, {"params": [bad]}], lr=0.1)
    good.grad = grad_like(good)
    bad.grad = from_numpy(np.ones(3, dtype=np.float32))
    with pytest.raises(ValueError, match=r"shape \(2,\).*grad of shape \(3,\)"):
        optimizer.step()
    np.testing.assert_array_equal(good.numpy(), [1.0, 2.0])
    assert optimizer.state == {}
    bad.grad = from_numpy(np.ones(2, dtype=np.float16))
    with pytest.raises(ValueError, match="dtype float16"):
        optimizer.step()


def test_a_bad_hyperparameter_set_after_construction_raises_before_any_launch() -> None:
    first, second = param([1.0, 2.0]), param([3.0, 4.0])
    optimizer = no.Adam([{"params": [first]}, {"params": [second]}], lr=0.1)
    for p in (first, second):
        p.grad = grad_like(p)
    optimizer.param_groups[1]["betas"] = (0.9, 1.5)  # as a hand edit or a schedule could
    expected = r"Adam.step: param group 1: invalid beta2 \(betas\[1\]\): 1.5"
    with pytest.raises(ValueError, match=expected):
        optimizer.step()
    np.testing.assert_array_equal(first.numpy(), [1.0, 2.0])  # group 0 untouched too
    assert optimizer.state == {}
    optimizer.param_groups[1]["betas"] = (0.9, 0.999)
    optimizer.step()
    assert optimizer.state[first]["step"] == optimizer.state[second]["step"] == 1.0


def test_a_non_contiguous_grad_is_stepped_through_a_contiguous_copy() -> None:
    p = param(np.ones((2, 2)))
    optimizer = no.SGD([p], lr=0.1)
    g = from_numpy(np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32))
    p.grad = Tensor(g.buffer, (2, 2), g.dtype, g.device, strides=(1, 2))  # g transposed
    optimizer.step()
    np.testing.assert_allclose(p.numpy(), 1 - 0.1 * np.array([[1.0, 3.0], [2.0, 4.0]]))


@pytest.mark.parametrize(("cls", "kwargs"), ALL, ids=IDS)
def test_a_strided_parameter_is_stepped_in_place_and_the_rest_stay_fused(
    cls: type[no.Optimizer], kwargs: dict[str, Any]
) -> None:
    """Issue 16: Adam([Parameter(base.T), w]) stepped nothing. Now the strided one steps
    through a contiguous copy written back into base's memory, the others in one bucket,
    and every value is what the per-parameter path (fused=False, contiguous) gives."""
    rng = np.random.default_rng(5)
    start = [rng.standard_normal(s).astype(np.float32) for s in ((3, 2), (4,), (2, 2), (5,))]
    grads = [[rng.standard_normal(s.shape).astype(np.float32) for s in start] for _ in range(4)]
    base = from_numpy(np.ascontiguousarray(start[0].T))
    ours = [Parameter(base.T), *(param(v) for v in start[1:])]
    reference = [param(v) for v in start]
    optimizer = cls(ours, **kwargs)
    twin = cls(reference, fused=False, **kwargs)
    assert not ours[0].is_contiguous
    assert [q for b in optimizer.flat_layout.buckets for q in b.params] == ours[1:]
    for step_grads in grads:
        for group in (ours, reference):
            for q, g in zip(group, step_grads, strict=True):
                q.grad = from_numpy(g)
        optimizer.step()
        twin.step()
    for q, r in zip(ours, reference, strict=True):
        np.testing.assert_array_equal(q.numpy(), r.numpy())
    np.testing.assert_array_equal(base.numpy(), ours[0].numpy().T)  # still base's memory
    assert not np.array_equal(ours[0].numpy(), start[0])


def test_momentum_changed_from_zero_starts_a_buffer_from_the_gradient() -> None:
    p = param([0.0])
    optimizer = no.Momentum([p], lr=1.0, momentum=0.0)
    p.grad = grad_like(p, 1.0)
    optimizer.step()
    assert optimizer.state == {}
    optimizer.param_groups[0]["momentum"] = 0.5
    optimizer.step()  # first buffer step: b = g = 1
    optimizer.step()  # b = 0.5 * 1 + 1 = 1.5
    np.testing.assert_allclose(p.numpy(), [-3.5])


def test_seed_example_optimizer_and_scheduler_learn_together() -> None:
    """The seed's Adam + CosineAnnealingLR, on a least-squares problem without autograd:
    the lr follows torch's schedule, the loss falls, and no kernel is built after step 1."""
    import torch

    from netcl.optim import CosineAnnealingLR

    rng = np.random.default_rng(8)
    a = rng.standard_normal((32, 8)).astype(np.float32)
    target = a @ rng.standard_normal(8).astype(np.float32)  # a solvable system
    w = param(np.zeros(8))
    optimizer = no.Adam([w], lr=1e-1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    scheduler = CosineAnnealingLR(optimizer, T_max=20)
    reference = torch.optim.Adam([torch.zeros(8, requires_grad=True)], lr=1e-1)
    torch_scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(reference, T_max=20)
    device, built, losses = manager.default(), None, []
    for epoch in range(30):
        residual = a @ w.numpy() - target
        losses.append(float(residual @ residual))
        w.grad = from_numpy((2 * a.T @ residual).astype(np.float32))
        optimizer.step()
        optimizer.zero_grad()
        reference.step()
        scheduler.step()
        torch_scheduler.step()
        assert optimizer.param_groups[0]["lr"] == pytest.approx(
            reference.param_groups[0]["lr"], rel=1e-12, abs=1e-15
        ), f"epoch {epoch}"
        built = built if built is not None else len(device.kernels)
    assert losses[-1] < 0.05 * losses[0]
    assert len(device.kernels) == built


def test_step_in_backward_steps_each_param_as_its_hook_fires_without_autograd() -> None:
    """A stand-in for autograd's hook registry: the caller's backward calls the hooks."""
    hooks: dict[int, list[Any]] = {}

    class Handle:
        def __init__(self, key: int, hook: Any) -> None:
            self.key, self.hook = key, hook

        def remove(self) -> None:
            hooks[self.key].remove(self.hook)

    def register(p: Tensor, hook: Any) -> Handle:
        hooks.setdefault(id(p), []).append(hook)
        return Handle(id(p), hook)

    values = [np.arange(4.0), np.ones((2, 3))]
    ours, reference = [param(v) for v in values], [param(v) for v in values]
    fused = no.NAdam(ours, lr=0.1, fused=False)
    normal = no.NAdam(reference, lr=0.1, fused=False)
    handle = no.step_in_backward(fused, register)
    for step in range(3):
        for p, q in zip(reversed(ours), reversed(reference), strict=True):  # "backward"
            p.grad, q.grad = grad_like(p, 0.5 + step), grad_like(q, 0.5 + step)
            for hook in hooks[id(p)]:
                hook(p)
            assert p.grad is None
        normal.step()
    for p, q in zip(ours, reference, strict=True):
        np.testing.assert_array_equal(p.numpy(), q.numpy())
    handle.remove()
    assert all(not h for h in hooks.values())
    with pytest.raises(ValueError, match="in no param group"):
        fused.step_param(param([1.0]))
