"""Threads and asyncio tasks each keep their own Tape: nothing one records leaks into another."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Iterator

import numpy as np
import pytest

import netcl.autograd as ag
import netcl.core.tensor as nt
import netcl.nn as nn
from netcl.core.tensor import Tensor, recorder
from netcl.optim import Adam


@pytest.fixture
def rapid_thread_switching() -> Iterator[None]:
    """Switch threads every microsecond, so two threads' ops interleave finely."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)


def make_model(seed: int) -> nn.Module:
    nt.manual_seed(seed)
    return nn.Sequential(nn.Linear(None, 8, 32), nn.ReLU(), nn.Linear(None, 32, 3))


def train(model: nn.Module, seed: int, steps: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    x = nt.tensor(rng.standard_normal((64, 8)).astype(np.float32))
    y = nt.tensor(rng.integers(0, 3, 64))
    optimizer = Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        with ag.Tape() as tape:
            loss = nn.cross_entropy(model(x), y)
        tape.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
    return [p.numpy().tobytes() for p in model.parameters()]


def test_two_threads_training_their_own_models_get_single_thread_results(
    rapid_thread_switching: None,
) -> None:
    steps = 25
    alone = [train(make_model(seed), seed, steps) for seed in (1, 2)]
    models = [make_model(seed) for seed in (1, 2)]  # built here: init draws one shared RNG
    results: dict[int, list[bytes]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def worker(i: int) -> None:
        try:
            start.wait()
            results[i] = train(models[i], i + 1, steps)
        except BaseException as e:  # re-raised below, in the test's thread
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert results[0] == alone[0]
    assert results[1] == alone[1]


def test_a_tape_in_one_thread_does_not_record_another_threads_ops() -> None:
    x = nt.tensor(np.arange(4, dtype=np.float32), requires_grad=True)
    seen: list[object] = []

    def other() -> None:
        seen.append(recorder.current())
        (x * 2.0).sum()

    with ag.Tape() as tape:
        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert recorder.current() is tape
    assert seen == [None]
    assert len(tape) == 0


def test_asyncio_tasks_each_record_on_their_own_tape() -> None:
    async def square_sum(x: Tensor) -> int:
        with ag.Tape() as tape:
            y = x * x
            await asyncio.sleep(0)  # the other task runs its ops here
            loss = y.sum()
            await asyncio.sleep(0)
        recorded = len(tape)
        tape.backward(loss)
        return recorded

    async def both() -> list[int]:
        return list(await asyncio.gather(square_sum(a), square_sum(b)))

    a = nt.tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    b = nt.tensor(np.array([3.0, 4.0, 5.0], np.float32), requires_grad=True)
    assert asyncio.run(both()) == [2, 2]  # each tape: its own mul and sum, nothing else
    assert recorder.current() is None
    assert a.grad is not None and b.grad is not None
    np.testing.assert_array_equal(a.grad.numpy(), [2.0, 4.0])
    np.testing.assert_array_equal(b.grad.numpy(), [6.0, 8.0, 10.0])


def test_a_no_grad_decorated_function_called_from_two_threads() -> None:
    """Each call has a no_grad of its own: leaving it restores the caller's own tape."""
    together = threading.Barrier(2)

    @ag.no_grad()
    def wait_then_check() -> bool:
        together.wait()
        return ag.is_recording()

    results: list[tuple[bool, bool]] = []

    def worker() -> None:
        with ag.Tape() as tape:
            inside = wait_then_check()
            together.wait()  # both threads have left no_grad
            results.append((inside, recorder.current() is tape))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [(False, True), (False, True)]
