"""Fused elementwise chains compute exactly what the unfused launches compute."""

from __future__ import annotations

import gc
from collections.abc import Callable

import numpy as np
import pyopencl as cl
import pytest

from netcl.core.device import manager
from netcl.core.tensor import Tensor, from_numpy, launch, ops
from netcl.jit import jit

Chain = Callable[[Tensor, Tensor, Tensor], Tensor]

# Each row a chain over x (N, M), b (M,) and i (N, M) int32; values chosen so that
# rounding differs between a contracted and an uncontracted a * b + c.
CHAINS: dict[str, Chain] = {
    "bias add then relu": lambda x, b, i: ops.relu(x + b),
    "multiply-add, not contracted": lambda x, b, i: x * b + x,
    "softmax pieces": lambda x, b, i: ops.exp(x - b) * (1.0 / 3.0),
    "relu mask times grad": lambda x, b, i: ops.where(ops.gt(x, 0), x * b, 0.0),
    "transcendentals": lambda x, b, i: ops.tanh(ops.sigmoid(x) + ops.log(ops.abs(b) + 1.0)),
    "division and sqrt": lambda x, b, i: ops.sqrt(ops.abs(x) / (ops.abs(b) + 0.5)),
    "ints and casts": lambda x, b, i: ops.cast(i * 3 - 7, "float32") * x,
    "max, min and compare": lambda x, b, i: ops.cast(
        ops.ge(ops.maximum(x, b), ops.minimum(x, 0.25)), "float32"
    ) + x,
    "in place": lambda x, b, i: (x * 2.0).add_(b, alpha=0.3).mul_(x),
    "transposed operand": lambda x, b, i: ops.relu(x.T.contiguous() * 2.0 + 1.0).T + x,
}


def operands(seed: int) -> tuple[Tensor, Tensor, Tensor]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((33, 40)).astype(np.float32) * 3
    b = rng.standard_normal(40).astype(np.float32)
    i = rng.integers(-50, 50, (33, 40)).astype(np.int32)
    return from_numpy(x), from_numpy(b), from_numpy(i)


@pytest.mark.parametrize("name", CHAINS)
def test_a_fused_chain_is_bit_identical_to_its_launches(name: str) -> None:
    chain = CHAINS[name]
    step = jit(chain)
    for seed in range(4):  # calls 1, 2 eager; 3, 4 replay the fused capture
        args = operands(seed)
        np.testing.assert_array_equal(step(*args).numpy(), chain(*args).numpy())
    assert step.launches.fused < step.launches.unfused


def test_intermediates_of_a_fused_chain_are_not_kept() -> None:
    """Five ops over 4 MB tensors: the unfused capture keeps every intermediate buffer,
    the fused one only what a launch still writes or reads."""
    x = from_numpy(np.ones((1024, 1024), np.float32))
    pool = manager.default("auto").pool

    def held_by_capture(fuse: bool) -> int:
        step = jit(lambda t: ops.relu(ops.exp(t * 0.5 + 1.0) - 2.0), fuse=fuse)
        gc.collect()
        before = pool.stats().bytes_in_use
        step(x)
        step(x)
        gc.collect()
        held = pool.stats().bytes_in_use - before
        np.testing.assert_array_equal(step(x).numpy(), np.maximum(np.exp(np.float32(1.5)) - 2, 0))
        return held

    unfused, fused = held_by_capture(False), held_by_capture(True)
    assert unfused >= 5 * x.nbytes
    assert fused <= x.nbytes  # the result; no intermediate


def test_a_reduction_takes_only_a_run_it_covers_as_its_prologue() -> None:
    """A run ending in a short result that a reduction reads, with a longer member before
    it: computed inside the reduction, the longer member would stop at the short length."""

    def step(x: Tensor, b: Tensor, i: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        longer = x - 1.0  # 33 x 40 elements
        shorter = ops.exp(b * 0.5)  # 40, read by the reduction next
        return longer, ops.sum(shorter), ops.max(ops.abs(x) * 2.0)

    jitted = jit(step)
    for seed in range(4):
        args = operands(seed)
        for got, want in zip(jitted(*args), step(*args), strict=True):
            np.testing.assert_array_equal(got.numpy(), want.numpy())
    assert jitted.launches.fused < jitted.launches.unfused


def _replayed_launches(monkeypatch: pytest.MonkeyPatch, step: Callable[[], object]
                       ) -> list[tuple[str, tuple[int, ...], tuple[int, ...] | None]]:
    """(kernel name, global size, local size) of every launch one call of ``step`` enqueues."""
    seen: list[tuple[str, tuple[int, ...], tuple[int, ...] | None]] = []
    enqueue = launch._ENQUEUE

    def recording(queue: object, kernel: cl.Kernel, global_size: tuple[int, ...],
                  local_size: tuple[int, ...] | None, *rest: object) -> object:
        seen.append((kernel.function_name, tuple(global_size),
                     None if local_size is None else tuple(local_size)))
        return enqueue(queue, kernel, global_size, local_size, *rest)

    monkeypatch.setattr(launch, "_ENQUEUE", recording)
    step()
    monkeypatch.setattr(launch, "_ENQUEUE", enqueue)
    return seen


def test_a_strided_run_is_launched_as_rows_on_a_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """A broadcast along the inner axis, one along the outer axis and a reshape to shorter
    rows: the fused kernel's rows are 32 long (the common divisor of 96 and 32), so the
    96-long rows' index takes the row part of its innermost dimension too."""
    rng = np.random.default_rng(0)
    x = from_numpy(rng.standard_normal((4, 96)).astype(np.float32))
    b = from_numpy(rng.standard_normal(96).astype(np.float32))
    s = from_numpy(rng.standard_normal((4, 1)).astype(np.float32))
    c = from_numpy(rng.standard_normal(32).astype(np.float32))

    def chain() -> Tensor:
        t = ops.relu(x + b) * s
        return ops.reshape(t, (12, 32)) * c - 1.0

    jitted = jit(chain)
    for _ in range(2):
        jitted()
    fused = [g for name, *g in _replayed_launches(monkeypatch, jitted) if name == "fused"]
    np.testing.assert_array_equal(jitted().numpy(), chain().numpy())
    if manager.default("auto").type == "cpu":
        assert fused == [[(32, 12), (32, 6)]]  # 6 rows a work-group: 192 work-items
    else:
        assert len(fused) == 1 and len(fused[0][0]) == 1 and fused[0][1] is None


def test_cpu_runs_keep_one_length_and_strided_prologues_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a CPU a run holds launches of one length only, a run with a broadcast operand
    is no reduction's prologue, and a lone strided launch is generated too (its
    divisors compiled in); the results are the eager ones either way."""

    def step(x: Tensor, b: Tensor, i: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        longer = x * 2.0 + 1.0  # 33 x 40 elements
        shorter = b * 3.0 - 1.0  # 40
        return longer, shorter, ops.sum(x + b)

    jitted = jit(step)
    for seed in range(4):
        args = operands(seed)
        for got, want in zip(jitted(*args), step(*args), strict=True):
            np.testing.assert_array_equal(got.numpy(), want.numpy())
    counts = jitted.launches
    names = [name for name, _, _ in _replayed_launches(monkeypatch, lambda: jitted(*args))]
    # Unfused: 2 + 2 elementwise launches, the broadcast add and the sum's launches.
    if manager.default("auto").type == "cpu":
        assert counts.unfused - counts.fused == 2  # two runs of two; the sum reads memory
        assert names.count("fused") == 3 and "elementwise" not in names
    else:
        assert counts.unfused - counts.fused >= 3  # the add also became the sum's prologue
