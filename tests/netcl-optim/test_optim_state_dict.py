"""State dicts: PyTorch's layout both ways mid-run, exact round trips, other devices, bad input."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pyopencl as cl
import pytest
import torch
from optim_cases import (
    BY_ID,
    CLASSES,
    LATE_STEP,
    Case,
    Run,
    assert_params_close,
    gradients,
    split,
    to_torch_state_dict,
    torch_optimizer,
)

import netcl.optim as no
from netcl.core.device import Device, manager
from netcl.core.tensor import Parameter, from_numpy

# One row per algorithm with all its state keys, plus groups and a late parameter
# (saved before its first grad, so it has no state yet when saved).
STATE_CASES = [
    "adam-amsgrad-wd", "adamw-groups", "adam-late", "sgd-wd", "momentum-maximize-nesterov-wd",
    "momentum-late", "sgd-momentum-maximize-nesterov-wd", "sgd-momentum-late",
    "rmsprop-centered-momentum", "rmsprop-groups", "adam-fp16-amsgrad-wd",
    "nadam-groups", "nadam-late", "radam-decoupled", "adamax-groups", "adagrad-late",
    "adafactor-late", "adafactor-groups",
]
HALF = 10  # steps before the hand-over; < LATE_STEP, so "late" params have no state yet
assert HALF < LATE_STEP


def continue_in_torch(case: Case, run: Run, state_dict: dict[str, Any]) -> torch.optim.Optimizer:
    """A fresh torch optimizer over copies of netcl's current parameters (a 16-bit one's
    float32 master, as a torch user keeps float32 parameters), loaded."""
    values = [run.optimizer.state[p]["master_param"].numpy() if run.half else v
              for p, v in zip(run.params, run.netcl_values(), strict=True)]
    params = [torch.tensor(v.astype(np.float32), requires_grad=True) for v in values]
    optimizer = torch_optimizer(case, split(params, case))
    optimizer.load_state_dict(to_torch_state_dict(state_dict))
    return optimizer


@pytest.mark.parametrize("case_id", STATE_CASES)
def test_netcl_state_continues_in_torch(case_id: str) -> None:
    case = BY_ID[case_id]
    run, grads = Run(case), gradients(case)
    for _ in range(HALF):
        run.step(next(grads))
    handed = continue_in_torch(case, run, run.optimizer.state_dict())
    handed_params = [p for group in handed.param_groups for p in group["params"]]
    order = [tp for group in split(list(range(len(run.params))), case) for tp in group["params"]]
    for _ in range(HALF):
        g = next(grads)
        run.step(g, torch_side=False)
        for index, p in zip(order, handed_params, strict=True):
            p.grad = None if g[index] is None else torch.from_numpy(g[index].astype(np.float32))
        handed.step()
    theirs = [None] * len(run.params)
    for index, p in zip(order, handed_params, strict=True):
        theirs[index] = p.detach().numpy()
    assert_params_close(run.netcl_values(), theirs, run.half, f"{case_id}: torch after hand-over")


@pytest.mark.parametrize("case_id", STATE_CASES)
def test_torch_state_continues_in_netcl(case_id: str) -> None:
    case = BY_ID[case_id]
    run, grads = Run(case), gradients(case)
    for _ in range(HALF):
        run.step(next(grads))
    # torch's state dict holds no fp16 masters: netcl's start from the fp16 parameters, so
    # torch goes on from those values too.
    run.round_torch_params()
    # A fresh netcl optimizer over torch's current values, loading torch's own state dict
    # (its tensors are read through __array__; no conversion needed).
    handed = Run(case, start=run.torch_values())
    handed.optimizer.load_state_dict(run.torch_optimizer.state_dict())
    for _ in range(HALF):
        g = next(grads)
        run.step(g, netcl=False)
        handed.step(g, torch_side=False)
    assert_params_close(handed.netcl_values(), run.torch_values(), run.half,
                        f"{case_id}: netcl after hand-over")


def assert_state_dicts_equal(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Bit-identical: same indices, keys, steps, array bytes and hyperparameters."""
    assert a["param_groups"] == b["param_groups"]
    assert list(a["state"]) == list(b["state"])
    for index, entry in a["state"].items():
        other = b["state"][index]
        assert list(entry) == list(other)
        for key, value in entry.items():
            if isinstance(value, np.ndarray):
                assert value.dtype == other[key].dtype and value.tobytes() == other[key].tobytes()
            else:
                assert type(value) is type(other[key]) and value == other[key]


def fresh_optimizer(case: Case, values: list[np.ndarray[Any, Any]],
                    device: Device | None = None) -> no.Optimizer:
    params = [Parameter(from_numpy(v, device)) for v in values]
    return CLASSES[case.algorithm](split(params, case), **case.kwargs)


def params_of(optimizer: no.Optimizer) -> list[Any]:
    return [p for group in optimizer.param_groups for p in group["params"]]


def step_both(a: no.Optimizer, b: no.Optimizer, case: Case, steps: int) -> None:
    grads = gradients(case, seed=7)
    for _ in range(steps):
        g = next(grads)
        for opt in (a, b):
            for p, value in zip(sorted_params(opt, case), g, strict=True):
                p.grad = None if value is None else from_numpy(value, p.device)
            opt.step()


def sorted_params(optimizer: no.Optimizer, case: Case) -> list[Any]:
    """Parameters in SHAPES order (groups hold them round-robin)."""
    flat = params_of(optimizer)
    order = [i for group in split(list(range(len(flat))), case) for i in group["params"]]
    out: list[Any] = [None] * len(flat)
    for index, p in zip(order, flat, strict=True):
        out[index] = p
    return out


@pytest.mark.smoke
@pytest.mark.parametrize("case_id", STATE_CASES)
def test_round_trip_is_exact_and_continues_identically(case_id: str) -> None:
    case = BY_ID[case_id]
    run, grads = Run(case), gradients(case)
    for _ in range(HALF):
        run.step(next(grads))
    saved = run.optimizer.state_dict()
    copy_ = fresh_optimizer(case, [p.numpy() for p in sorted_params(run.optimizer, case)])
    copy_.load_state_dict(pickle.loads(pickle.dumps(saved)))
    assert_state_dicts_equal(copy_.state_dict(), saved)
    step_both(run.optimizer, copy_, case, 5)
    for p, q in zip(params_of(run.optimizer), params_of(copy_), strict=True):
        assert p.numpy().tobytes() == q.numpy().tobytes()
    assert_state_dicts_equal(copy_.state_dict(), run.optimizer.state_dict())


def test_state_dict_loads_onto_another_device() -> None:
    case = BY_ID["adam-amsgrad-wd"]
    run, grads = Run(case), gradients(case)
    for _ in range(HALF):
        run.step(next(grads))
    # Another Device for the same OpenCL device: its own context, queue and pool.
    other = Device(manager.default().cl_device, "test:other")
    moved = fresh_optimizer(case, [p.numpy() for p in run.params], device=other)
    moved.load_state_dict(run.optimizer.state_dict())
    for st in moved.state.values():
        for tensor in st.buffers.values():
            assert tensor.device is other and tensor.buffer.context == other.context
    step_both(run.optimizer, moved, case, 5)
    for p, q in zip(params_of(run.optimizer), params_of(moved), strict=True):
        assert p.numpy().tobytes() == q.numpy().tobytes()


def test_state_is_float32_with_pytorch_keys_and_float_steps() -> None:
    run, grads = Run(BY_ID["adam-fp16-amsgrad-wd"]), gradients(BY_ID["adam-fp16-amsgrad-wd"])
    for _ in range(3):
        run.step(next(grads))
    saved = run.optimizer.state_dict()
    assert list(saved) == ["state", "param_groups"]
    assert saved["param_groups"][0]["params"] == list(range(len(run.params)))
    for index, p in enumerate(run.params):
        entry = saved["state"][index]
        # PyTorch's keys, then the fp16 parameter's float32 master (netcl's own).
        assert list(entry) == ["step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq", "master_param"]
        assert entry["step"] == 3.0 and isinstance(entry["step"], float)
        for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq", "master_param"):
            assert entry[key].dtype == np.float32 and entry[key].shape == p.shape
        live = run.optimizer.state[p]
        assert live["step"] == 3.0 and "exp_avg" in live and live.keys()[0] == "step"


def _mutations() -> list[tuple[str, Callable[[dict[str, Any]], None], str]]:
    def set_state(index: int, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
        return lambda sd: sd["state"][index].__setitem__(key, value)

    return [
        ("not-a-dict", lambda sd: sd.clear(), "'state' and 'param_groups'"),
        ("extra-group", lambda sd: sd["param_groups"].append(dict(sd["param_groups"][0])),
         "2 param groups, this optimizer has 1"),
        ("group-size", lambda sd: sd["param_groups"][0]["params"].pop(),
         "has 4 params in the state dict, 5 in this optimizer"),
        ("duplicate-index", lambda sd: sd["param_groups"][0]["params"].__setitem__(1, 0),
         "listed twice"),
        ("bad-index", lambda sd: sd["param_groups"][0]["params"].__setitem__(1, "one"),
         "not an index"),
        ("unknown-state-index", lambda sd: sd["state"].__setitem__(99, sd["state"][0]),
         "state for parameter index 99"),
        ("bad-lr", lambda sd: sd["param_groups"][0].__setitem__("lr", -1.0),
         "invalid lr: -1.0"),
        ("bad-betas", lambda sd: sd["param_groups"][0].__setitem__("betas", (0.9, 1.5)),
         "invalid beta2 (betas[1]): 1.5"),
        ("missing-key", lambda sd: sd["state"][2].pop("exp_avg_sq"), "missing ['exp_avg_sq']"),
        ("unexpected-key", set_state(2, "momentum_buffer", np.zeros(300, np.float32)),
         "unexpected ['momentum_buffer']"),
        ("amsgrad-off-keeps-max", lambda sd: sd["param_groups"][0].__setitem__("amsgrad", False),
         "unexpected ['max_exp_avg_sq']"),
        ("wrong-shape", set_state(2, "exp_avg", np.zeros(299, np.float32)),
         "has shape (299,); expected (300,)"),
        ("int-dtype", set_state(2, "exp_avg", np.zeros(300, np.int32)), "dtype int32"),
        ("not-an-array", set_state(2, "exp_avg", "zeros"), "expected an array"),
        ("step-string", set_state(4, "step", "ten"), "['step'] is 'ten'"),
        ("step-negative", set_state(4, "step", -1.0), "['step'] is -1.0"),
        ("entry-not-dict", lambda sd: sd["state"].__setitem__(3, [1, 2]), "must be a dict"),
    ]


@pytest.mark.parametrize(("mutate", "fragment"),
                         [m[1:] for m in _mutations()], ids=[m[0] for m in _mutations()])
def test_bad_state_dict_raises_and_changes_nothing(
    mutate: Callable[[dict[str, Any]], None], fragment: str
) -> None:
    case = BY_ID["adam-amsgrad-wd"]
    run, grads = Run(case), gradients(case)
    for _ in range(3):
        run.step(next(grads))
    optimizer = run.optimizer
    before = optimizer.state_dict()
    groups_before = [dict(group) for group in optimizer.param_groups]
    buffers_before = {id(p): dict(st.buffers) for p, st in optimizer.state.items()}
    bad = copy.deepcopy(before)
    mutate(bad)
    with pytest.raises(ValueError, match="load_state_dict") as error:
        optimizer.load_state_dict(bad)
    assert fragment in str(error.value)
    assert_state_dicts_equal(optimizer.state_dict(), before)
    assert [dict(group) for group in optimizer.param_groups] == groups_before
    for p, st in optimizer.state.items():  # the very same device buffers, not copies
        assert all(st.buffers[k] is t for k, t in buffers_before[id(p)].items())


def test_loaded_hyperparameters_replace_current_ones_and_unknown_keys_are_kept() -> None:
    case = BY_ID["adam"]
    run, grads = Run(case), gradients(case)
    run.step(next(grads))
    saved = run.optimizer.state_dict()
    saved["param_groups"][0].update(lr=0.5, initial_lr=0.25)  # a scheduler's key survives
    run.optimizer.load_state_dict(saved)
    assert run.optimizer.param_groups[0]["lr"] == 0.5
    assert run.optimizer.param_groups[0]["initial_lr"] == 0.25
    assert run.optimizer.param_groups[0]["params"][0] is run.params[0]
    cl.enqueue_barrier(run.params[0].device.queue)  # the queue is still usable


def _stepped_adam() -> tuple[no.Optimizer, list[Parameter]]:
    params = [Parameter(from_numpy(np.ones(3, np.float32))) for _ in range(2)]
    optimizer = no.Adam(params, lr=1e-3)
    for p in params:
        p.grad = from_numpy(np.full(3, 0.5, np.float32))
    optimizer.step()
    return optimizer, params


def _torch_state(cls: type[torch.optim.Optimizer], **kwargs: Any) -> dict[str, Any]:
    params = [torch.nn.Parameter(torch.ones(3)) for _ in range(2)]
    optimizer = cls(params, **kwargs)
    for p in params:
        p.grad = torch.full((3,), 0.5)
    optimizer.step()
    return optimizer.state_dict()


@pytest.mark.parametrize(
    ("load", "fragment"),
    [
        (lambda: _torch_state(torch.optim.SGD, lr=0.1), "lacks ['amsgrad', 'betas', 'eps']"),
        (lambda: _torch_state(torch.optim.RMSprop, lr=0.1),
         "lacks ['amsgrad', 'betas'] and has ['alpha=0.99', 'centered=False', 'momentum=0']"),
    ],
    ids=["torch-sgd", "torch-rmsprop"],
)
def test_another_algorithms_state_dict_is_refused_and_changes_nothing(
    load: Callable[[], dict[str, Any]], fragment: str
) -> None:
    """Issue 16: Adam loading torch's SGD state set lr 0.1, added SGD's keys and cleared
    every moment. Now the groups are checked against Adam's hyperparameters first."""
    optimizer, _ = _stepped_adam()
    before = optimizer.state_dict()
    with pytest.raises(ValueError, match="not this algorithm's") as error:
        optimizer.load_state_dict(load())
    assert fragment in str(error.value)
    assert_state_dicts_equal(optimizer.state_dict(), before)
    assert optimizer.param_groups[0]["lr"] == 1e-3 and len(optimizer.state) == 2


def test_sgd_and_momentum_take_torch_sgds_state_dicts_and_each_others() -> None:
    params = [Parameter(from_numpy(np.ones(3, np.float32))) for _ in range(2)]
    sgd = no.SGD(params, lr=0.5)
    sgd.load_state_dict(_torch_state(torch.optim.SGD, lr=0.1))  # momentum 0: plain SGD
    assert sgd.param_groups[0]["lr"] == 0.1 and not sgd.state_dict()["state"]
    torch_momentum = _torch_state(torch.optim.SGD, lr=0.2, momentum=0.9, nesterov=True)
    sgd.load_state_dict(torch_momentum)
    assert sgd.param_groups[0]["momentum"] == 0.9 and sgd.param_groups[0]["nesterov"]
    np.testing.assert_array_equal(sgd.state_dict()["state"][1]["momentum_buffer"],
                                  torch_momentum["state"][1]["momentum_buffer"].numpy())
    momentum = no.Momentum(params, lr=0.5, allow_shared=True)
    momentum.load_state_dict(sgd.state_dict())
    assert_state_dicts_equal(momentum.state_dict(), sgd.state_dict())
    sgd.load_state_dict(momentum.state_dict())
    adam, _ = _stepped_adam()
    with pytest.raises(ValueError, match=r"has \['amsgrad=False', 'betas=\(0.9, 0.999\)'"):
        sgd.load_state_dict(adam.state_dict())
    assert sgd.param_groups[0]["lr"] == 0.2
    # An SGD saved before SGD took momentum (netcl-optim 0.4.0: no momentum, dampening or
    # nesterov in its groups) loads as the plain SGD it was.
    saved = no.SGD(params, lr=0.3, allow_shared=True).state_dict()
    for key in ("momentum", "dampening", "nesterov"):
        del saved["param_groups"][0][key]
    sgd.load_state_dict(saved)
    assert {k: sgd.param_groups[0][k] for k in ("lr", "momentum", "dampening", "nesterov")} == {
        "lr": 0.3, "momentum": 0.0, "dampening": 0.0, "nesterov": False}
    assert not sgd.state_dict()["state"]
