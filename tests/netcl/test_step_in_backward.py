"""The optimizer step fused into backward (netcl.optim.step_in_backward) through autograd's
post-accumulate-grad hook: the same parameters as a step after backward, less memory."""

from __future__ import annotations

import numpy as np
import pytest

import netcl.autograd as ag
import netcl.core.tensor as nt
import netcl.nn as nn
import netcl.optim as no
from netcl.core.device import manager


def data() -> tuple[nt.Tensor, nt.Tensor]:
    rng = np.random.default_rng(3)
    # A small batch: the weights' gradients, not the activations, are most of what a
    # backward pass holds, as in a large model trained with small micro-batches.
    x = rng.standard_normal((4, 64)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1).astype(np.int64)
    return nt.tensor(x), nt.tensor(y)


def mlp() -> nn.Sequential:
    """The same initial weights on every call; a few layers, so gradients come one by one."""
    nt.manual_seed(5)
    return nn.Sequential(nn.Linear(None, 64, 256), nn.ReLU(), nn.Linear(None, 256, 256),
                         nn.ReLU(), nn.Linear(None, 256, 64), nn.ReLU(), nn.Linear(None, 64, 3))


def backward(model: nn.Module, x: nt.Tensor, y: nt.Tensor) -> tuple[int, int]:
    """One forward and backward: the pool's peak bytes in use during the backward pass, and
    its bytes in use after it, each less what was in use before it."""
    pool = manager.default().pool
    with ag.Tape() as tape:
        loss = nn.cross_entropy(model(x), y)
    pool.reset_peak()
    before = pool.stats().bytes_in_use
    tape.backward(loss)
    return pool.stats().peak_bytes_in_use - before, pool.stats().bytes_in_use - before


@pytest.mark.parametrize(("cls", "kwargs"), [(no.Adam, {"lr": 1e-2}), (no.NAdam, {}),
                                             (no.SGD, {"lr": 0.1, "momentum": 0.9})])
def test_same_parameters_as_a_step_after_backward_and_less_memory(
    cls: type[no.Optimizer], kwargs: dict[str, float]
) -> None:
    x, y = data()
    after, during = mlp(), mlp()
    normal = cls(after.parameters(), **kwargs, fused=False)
    fused = cls(during.parameters(), **kwargs, fused=False)
    handle = no.step_in_backward(fused, ag.register_post_accumulate_grad_hook)
    memory: dict[str, list[tuple[int, int]]] = {"after": [], "during": []}
    for _ in range(50):
        memory["after"].append(backward(after, x, y))
        normal.step()
        normal.zero_grad()
        memory["during"].append(backward(during, x, y))
        assert all(p.grad is None for p in during.parameters())
    for (name, a), b in zip(after.named_parameters(), during.parameters(), strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)
    # From the second step on (the first makes the optimizer's state): a step after
    # backward holds every gradient once backward ends, a step in backward none.
    sizes = [p.size * p.itemsize for p in after.parameters()]
    grad_bytes, largest = sum(sizes), max(sizes)
    # The two peaks fall at different layers (pool traces of every allocation showed each
    # byte): a step after backward's in the first layer's weight-gradient matmul, the step
    # in backward's in the largest (256x256) layer's. Besides gradients, the latter holds
    # what the former lacks: (a) the gradient of its input, batch x 256 floats (the first
    # layer's input is data, with none; the rule makes it before the weight's gradient,
    # since the other order overlaps the CPU matmul's 256 KB packing of the weight with
    # that gradient), (b) the matmul's contiguous copy of its input, batch x 256 floats
    # against batch x 64 at the first layer. And (c) the first layer's bias gradient, one
    # of "all gradients", is made only after the normal run's peak. Measured: exactly
    # (a) + (b) + (c) = 8,192 bytes short of every gradient but the largest.
    batch = x.shape[0]
    activations = batch * 256 * 4 + batch * (256 - 64) * 4 + 256 * 4
    for (peak_after, held_after), (peak_during, held_during) in zip(
        memory["after"][1:], memory["during"][1:], strict=True
    ):
        # (Both free the tape's saved tensors as they walk, the same bytes on both sides.)
        assert held_after - held_during >= grad_bytes and held_during <= 0, memory
        # The bound: the peak holds every gradient but the largest less (autograd
        # hands its own gradient to .grad rather than copying it, so none is held twice).
        assert peak_after - peak_during >= grad_bytes - largest - activations, memory
    handle.remove()
    fused.zero_grad()
    backward(during, x, y)  # hooks gone: the grads stay for a step after backward
    assert all(p.grad is not None for p in during.parameters())


def test_refuses_a_flat_layout_and_clipping_by_norm() -> None:
    model = mlp()
    with pytest.raises(ValueError, match=r"flat layout.*fused=False"):
        no.step_in_backward(no.Adam(model.parameters()), ag.register_post_accumulate_grad_hook)
    optimizer = no.Adam(model.parameters(), fused=False)
    handle = no.step_in_backward(optimizer, ag.register_post_accumulate_grad_hook)
    with pytest.raises(ValueError, match="stepped in backward"):
        no.clip_grad_norm_(model.parameters(), 1.0)
    handle.remove()
    x, y = data()
    backward(model, x, y)
    assert no.clip_grad_norm_(model.parameters(), 1.0) > 0  # allowed again once removed
