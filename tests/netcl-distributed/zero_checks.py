"""ZeroRedundancyOptimizer's mechanics, checked on every rank; run by test_zero.py under mpiexec.

On 3 ranks the buckets do not split evenly. The reference on every rank is
the wrapped optimizer alone, stepped with the gradients averaged by hand.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import netcl.autograd as ag
import netcl.distributed as dist
from netcl.core.tensor import Parameter, Tensor, from_numpy, manual_seed
from netcl.nn import Linear, Module, ReLU, Sequential, cross_entropy
from netcl.optim import SGD, Adagrad, Adam, Lion, NAdam, Optimizer

world = dist.init()
rank, size, q = world.rank, world.size, world.device.queue
rng = np.random.default_rng(rank)


def model_and_groups(seed: int) -> tuple[Module, Parameter, list[dict[str, Any]]]:
    """An MLP in two groups (one lr each), and a lone parameter in a third group of its own."""
    manual_seed(seed)
    model = Sequential(Linear(q, 5, 7), ReLU(), Linear(q, 7, 3))
    scale = Parameter(from_numpy(np.full(3, 1.5, np.float32), q))
    w1, b1, w2, b2 = model.parameters()
    groups = [{"params": [w1, b1]}, {"params": [w2, b2], "lr": 0.03}, {"params": [scale]}]
    return model, scale, groups


def backward(model: Module, scale: Tensor, x: Tensor, y: Tensor) -> None:
    with ag.Tape() as tape:
        loss = cross_entropy(model(x) * scale, y)
    tape.backward(loss)


def values(tensors: Any) -> list[np.ndarray[Any, Any]]:
    return [t.numpy().copy() for t in tensors]


def check(optimizer_class: type[Optimizer], **defaults: Any) -> None:
    model, scale, groups = model_and_groups(seed=10 + rank)  # unequal until the wrap
    zero = dist.ZeroRedundancyOptimizer(groups, optimizer_class, **defaults)
    params = [p for g in groups for p in g["params"]]
    for theirs in world.comm.allgather(values(params)):
        for a, b in zip(theirs, values(params), strict=True):
            np.testing.assert_array_equal(a, b)
    _, _, reference_groups = model_and_groups(seed=99)
    reference_params = [p for g in reference_groups for p in g["params"]]
    for mine, theirs in zip(reference_params, params, strict=True):
        with ag.no_grad():
            mine.copy_(theirs)
    reference = optimizer_class(reference_groups, **defaults)

    for step in range(3):
        if step == 2:  # as a scheduler would: the shards must follow the whole model's groups
            zero.param_groups[1]["lr"] = reference.param_groups[1]["lr"] = 0.2
        x = from_numpy(rng.standard_normal((4, 5)).astype(np.float32), q)
        y = from_numpy(rng.integers(0, 3, 4), q)
        backward(model, scale, x, y)
        grads = world.comm.allgather(values(p.grad for p in params))
        zero.step()
        zero.zero_grad()
        for p, i in zip(reference_params, range(len(params)), strict=True):
            p.grad = from_numpy(np.mean([theirs[i] for theirs in grads], axis=0), q)
        reference.step()
        reference.zero_grad()
        for got, want in zip(values(params), values(reference_params), strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
        for theirs in world.comm.allgather(values(params)):
            for a, b in zip(theirs, values(params), strict=True):
                np.testing.assert_array_equal(a, b)  # the all-gather leaves one model

    # Each rank's state covers its ranges only: 1/N of every bucket (+-1 element), in all N.
    total = sum(p.size for p in params)
    mine = zero.state_bytes()
    per_parameter = sum(b.nbytes for st in reference.state.values() for b in st.buffers.values())
    assert sum(world.comm.allgather(mine)) == per_parameter, (mine, per_parameter)
    if per_parameter:
        assert abs(mine - per_parameter / size) <= 3 * per_parameter / total, mine

    # The consolidated dict is the reference's, on the asked rank only.
    full = zero.consolidate_state_dict(to=size - 1)
    if rank == size - 1:
        assert full is not None
        want = reference.state_dict()
        assert full["param_groups"] == want["param_groups"]
        assert full["state"].keys() == want["state"].keys()
        for index, entry in want["state"].items():
            assert full["state"][index].keys() == entry.keys()
            for name, value in entry.items():
                np.testing.assert_allclose(full["state"][index][name], value, rtol=1e-6,
                                           atol=1e-8)
        assert zero.state_dict() is full
    else:
        assert full is None
        try:
            zero.state_dict()
        except RuntimeError as error:
            assert "consolidate_state_dict" in str(error)
        else:
            raise AssertionError("state_dict() without a consolidated dict did not raise")

    # A bad state dict changes nothing; a good one, made by another world size, loads.
    saved = world.comm.bcast(full, root=size - 1)
    before = snapshot(zero)
    if saved["state"]:
        broken = {**saved, "state": dict(saved["state"])}
        first = next(iter(broken["state"]))
        broken["state"][first] = {k: (v[:1] if isinstance(v, np.ndarray) else v)
                                  for k, v in broken["state"][first].items()}
        try:
            zero.load_state_dict(broken)
        except ValueError as error:
            assert "shape" in str(error), error
        else:
            raise AssertionError("a state dict of wrong shapes loaded")
        assert_unchanged(zero, before)
    # Another algorithm's state dict (Adam's betas in SGD's groups, SGD's momentum in
    # Adam's) is refused by the call that was given it, before anything changes.
    foreign = {**saved, "param_groups": [{**group, "momentum": 0.9, "betas": (0.8, 0.9)}
                                         for group in saved["param_groups"]]}
    try:
        zero.load_state_dict(foreign)
    except ValueError as error:
        assert "ZeroRedundancyOptimizer.load_state_dict: param group 0" in str(error), error
        assert "not this algorithm's" in str(error), error
    else:
        raise AssertionError("another algorithm's state dict loaded")
    assert_unchanged(zero, before)
    zero.load_state_dict(saved)
    again = zero.consolidate_state_dict(to=0)
    if rank == 0:
        assert again is not None
        for index, entry in saved["state"].items():
            for name, value in entry.items():
                np.testing.assert_array_equal(again["state"][index][name], value)


def snapshot(zero: dist.ZeroRedundancyOptimizer) -> tuple[int, list[list[Any]]]:
    """The optimizer's state bytes and every state buffer's values."""
    return zero.state_bytes(), [values(st.buffers.values()) for st in zero.state.values()]


def assert_unchanged(zero: dist.ZeroRedundancyOptimizer,
                     before: tuple[int, list[list[Any]]]) -> None:
    after = snapshot(zero)
    assert before[0] == after[0]
    for a, b in zip(before[1], after[1], strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)


def check_a_bucket_steps_as_one() -> None:
    _, _, groups = model_and_groups(seed=1)
    zero = dist.ZeroRedundancyOptimizer(groups, Adam)
    w1 = groups[0]["params"][0]
    w1.grad = from_numpy(np.ones(w1.shape, np.float32), q)
    try:
        zero.step()
    except ValueError as error:
        assert "have no grad" in str(error), error
    else:
        raise AssertionError("a half-gradded bucket stepped")
    # Rank 0 alone has grads for the second group: every rank must refuse, none may hang.
    zero.zero_grad()
    if rank == 0:
        for p in groups[1]["params"]:
            p.grad = from_numpy(np.ones(p.shape, np.float32), q)
    try:
        zero.step()
    except RuntimeError as error:
        assert "disagree" in str(error), error
    else:
        raise AssertionError("ranks stepping different buckets went unnoticed")


check(Adam, lr=0.01)
check(SGD, lr=0.05, momentum=0.9)
check(SGD, lr=0.1)
check(NAdam, lr=0.01)  # mu_product: a number per parameter, equal across a bucket
check(Adagrad, initial_accumulator_value=0.1)  # state that does not start at zero
check(Lion, lr=1e-3, weight_decay=0.1)  # no step count
check_a_bucket_steps_as_one()
print(f"rank {rank} of {size}: zero checks passed")
