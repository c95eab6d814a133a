"""Class targets and embedding indices: checked on the device, ignore_index, padding_idx."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pyopencl as cl
import pytest
import torch

import netcl.autograd as ag
import netcl.core.tensor as nt
import netcl.nn as nn
from netcl.core.tensor import Tensor, ops
from netcl.nn import functional as F

Array = np.ndarray[Any, Any]
RTOL = 1e-5  # float32 log_softmax and a mean over a few rows: a few ulps apart from torch


def logits_like(shape: tuple[int, ...], seed: int = 0) -> Array:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.fixture
def host_reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts device-to-host copies: each is a wait for the queue."""
    reads: list[int] = []
    copy = cl.enqueue_copy

    def counting(queue: cl.CommandQueue, dest: Any, src: Any, **kwargs: Any) -> Any:
        if isinstance(dest, np.ndarray):
            reads.append(dest.size)
        return copy(queue, dest, src, **kwargs)

    monkeypatch.setattr(cl, "enqueue_copy", counting)
    yield reads


@pytest.mark.parametrize("bad", [-1, 3, 7])
def test_an_out_of_range_target_raises_when_the_loss_is_read(bad: int) -> None:
    logits = nt.tensor(logits_like((4, 3)))
    loss = nn.cross_entropy(logits, nt.tensor([0, bad, 2, 1]))
    with pytest.raises(ValueError, match=rf"cross_entropy: target {bad} is out of range for "
                       r"3 classes \(valid: 0 to 2, or ignore_index=-100\)"):
        loss.item()
    assert np.isfinite(loss.item())  # reported once; the bad row was left out meanwhile
    nll = nn.nll_loss(logits, np.array([bad, 0, 0, 0]))
    with pytest.raises(ValueError, match=rf"nll_loss: target {bad} is out of range"):
        nll.item()


def test_the_check_waits_for_no_read_in_forward_and_backward(host_reads: list[int]) -> None:
    logits = nt.tensor(logits_like((8, 5)), requires_grad=True)
    targets = nt.tensor(np.arange(8) % 5)
    del host_reads[:]
    with ag.Tape() as tape:
        loss = nn.cross_entropy(logits, targets, label_smoothing=0.1)
    tape.backward(loss)
    assert host_reads == []
    loss.item()
    assert host_reads == [1, 1]  # the pending check's scalar, then the loss


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("ignore_index", [-100, 1])
def test_ignore_index_and_label_smoothing_match_torch(
    reduction: str, smoothing: float, ignore_index: int
) -> None:
    x = logits_like((6, 4, 2))  # (N, C, d): the class axis is 1
    y = np.array([[0, 1], [-100, 3], [2, 2], [1, -100], [3, 0], [1, 1]])
    if ignore_index != -100:
        y = np.where(y == -100, 0, y)  # -100 is out of range unless it is the ignore_index
    logits = nt.tensor(x, requires_grad=True)
    with ag.Tape() as tape:
        loss = nn.cross_entropy(logits, nt.tensor(y), reduction=reduction,
                                label_smoothing=smoothing, ignore_index=ignore_index)
        total = loss if reduction != "none" else loss.sum()
    tape.backward(total)
    theirs_x = torch.tensor(x, requires_grad=True)
    theirs = torch.nn.functional.cross_entropy(
        theirs_x, torch.tensor(y), reduction=reduction, label_smoothing=smoothing,
        ignore_index=ignore_index)
    (theirs if reduction != "none" else theirs.sum()).backward()
    np.testing.assert_allclose(loss.numpy(), theirs.detach().numpy(), rtol=RTOL, atol=1e-6)
    assert logits.grad is not None and theirs_x.grad is not None
    np.testing.assert_allclose(logits.grad.numpy(), theirs_x.grad.numpy(), rtol=RTOL, atol=1e-6)


def test_nll_loss_ignore_index_matches_torch() -> None:
    logp = torch.log_softmax(torch.tensor(logits_like((5, 3))), 1)
    y = np.array([2, -100, 0, 7, 1])
    ours = F.nll_loss(nt.tensor(logp.numpy()), nt.tensor(y), ignore_index=7)
    theirs = torch.nn.functional.nll_loss(logp, torch.tensor(np.where(y == -100, 0, y)),
                                          ignore_index=7)
    with pytest.raises(ValueError, match="target -100 is out of range"):
        ours.item()
    y = np.where(y == -100, 0, y)
    ours = F.nll_loss(nt.tensor(logp.numpy()), nt.tensor(y.astype(np.int32)), ignore_index=7)
    np.testing.assert_allclose(ours.item(), theirs.item(), rtol=RTOL)


def test_every_target_ignored_gives_nan_as_torch() -> None:
    loss = nn.cross_entropy(nt.tensor(logits_like((2, 3))), nt.tensor([-100, -100]))
    assert np.isnan(loss.item())


@pytest.mark.parametrize("bad", [-1, 5])
def test_an_embedding_index_out_of_range_raises_at_the_next_read(bad: int) -> None:
    table = nn.Embedding(None, 5, 2)
    rows = table(nt.tensor([1, bad]))
    with pytest.raises(ValueError, match=rf"embedding: index {bad} is out of range for 5 "
                       r"embeddings \(valid: 0 to 4\)"):
        rows.numpy()
    np.testing.assert_array_equal(table(nt.tensor([1, 4])).numpy(), table.weight.numpy()[[1, 4]])


def test_padding_idx_starts_at_zero_and_gets_no_gradient_as_torch() -> None:
    ours = nn.Embedding(None, 6, 3, padding_idx=-2)
    assert ours.padding_idx == 4
    np.testing.assert_array_equal(ours.weight.numpy()[4], np.zeros(3))
    with ag.no_grad():
        ours.weight[4].fill_(2.5)  # a padding row that is not zero is still returned
    theirs = torch.nn.Embedding(6, 3, padding_idx=4)
    theirs.weight.data = torch.tensor(ours.weight.numpy())
    idx = np.array([[4, 1, 4], [0, 4, 1]])
    with ag.Tape() as tape:
        out = ours(nt.tensor(idx))
        loss = (out * out).sum()
    tape.backward(loss)
    expected = theirs(torch.tensor(idx))
    (expected * expected).sum().backward()
    np.testing.assert_array_equal(out.numpy(), expected.detach().numpy())
    grad = ours.weight.grad
    assert isinstance(grad, Tensor) and theirs.weight.grad is not None
    np.testing.assert_allclose(grad.numpy(), theirs.weight.grad.numpy(), rtol=RTOL)
    np.testing.assert_array_equal(grad.numpy()[4], np.zeros(3))
    with pytest.raises(ValueError, match="padding_idx 6 is out of range for 6 embeddings"):
        nn.Embedding(None, 6, 3, padding_idx=6)


@pytest.mark.parametrize("scale", [1e4, 1e8])
def test_cross_entropy_and_log_softmax_keep_precision_at_large_logits(scale: float) -> None:
    # Two tied logits: log_softmax is -ln 2 for both however large they are. Subtracting a
    # logsumexp of ~scale from x keeps only the float32 spacing at scale (1e-3 at 1e4, 8 at
    # 1e8); subtracting the row's max first leaves exact zeros and an exact ln 2.
    rows = np.array([[scale, scale, 0.0], [0.0, -scale, -scale]], np.float32)
    targets = np.array([1, 2])
    logits = nt.tensor(rows, requires_grad=True)
    with ag.Tape() as tape:
        losses = nn.cross_entropy(logits, nt.tensor(targets), reduction="none")
        loss = ops.mean(losses)
    tape.backward(loss)
    reference = torch.tensor(rows, dtype=torch.float64, requires_grad=True)
    expected = torch.nn.functional.cross_entropy(reference, torch.tensor(targets), reduction="none")
    expected.mean().backward()
    # float32 against float64: a few ulps of ln 2, of scale + ln 2, of the 1/N-scaled softmax
    np.testing.assert_allclose(losses.numpy(), expected.detach().numpy(), rtol=RTOL)
    assert reference.grad is not None and logits.grad is not None
    np.testing.assert_allclose(logits.grad.numpy(), reference.grad.numpy(), rtol=RTOL, atol=1e-7)
    logp = F.log_softmax(nt.tensor(rows), axis=1).numpy()
    np.testing.assert_allclose(logp, torch.log_softmax(torch.tensor(rows, dtype=torch.float64), 1),
                               rtol=RTOL)
