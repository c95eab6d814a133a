"""float32 master weights: a 16-bit parameter is stepped through a float32 copy kept in the
optimizer's state (``master_param``), the rounded parameter written by the same launch.

The case is one where the master matters: Adam with a constant gradient moves each
element by about lr = 2**-12 per step, a sixteenth of bfloat16's half unit on [1, 2),
so a parameter rounded every step never moves, while with a master it moves
STEPS * lr = 2**-6 (two bfloat16 units) as the float32 and float64 references do.
"""

from __future__ import annotations

import copy
from typing import Any

import ml_dtypes
import numpy as np
import pytest

from netcl.core.tensor import Parameter, bfloat16, float16, from_numpy
from netcl.optim import SGD, Adam, AdamW
from netcl.optim.functional import adam

BF16 = np.dtype(ml_dtypes.bfloat16)
LR = 2.0**-12
STEPS = 64
SIZES = (131, 126)  # odd and even: vector bodies and scalar tails


def problem(seed: int = 3) -> tuple[list[np.ndarray[Any, Any]], list[np.ndarray[Any, Any]]]:
    """Starts in [1, 2) and gradients of either sign in [0.5, 1), all bfloat16 values."""
    rng = np.random.default_rng(seed)
    starts = [rng.uniform(1.0, 2.0, n).astype(BF16) for n in SIZES]
    grads = [(rng.uniform(0.5, 1.0, n) * rng.choice([-1, 1], n)).astype(BF16) for n in SIZES]
    return starts, grads


def train(dtype: Any, fused: bool | None, steps: int = STEPS) -> tuple[list[Parameter], Adam]:
    starts, grads = problem()
    params = [Parameter(from_numpy(s.astype(dtype))) for s in starts]
    optimizer = Adam(params, lr=LR, fused=fused)
    for _ in range(steps):
        for p, g in zip(params, grads, strict=True):
            p.grad = from_numpy(g.astype(dtype))
        optimizer.step()
    return params, optimizer


def adam_float64(p: Any, g: Any, steps: int) -> Any:
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t in range(1, steps + 1):
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        p = p - LR / (1 - 0.9**t) * m / (np.sqrt(v) / np.sqrt(1 - 0.999**t) + 1e-8)
    return p


@pytest.mark.usefixtures("layout")
@pytest.mark.parametrize("fused", [None, False])
def test_bfloat16_parameters_move_like_float32_through_their_masters(fused: bool | None) -> None:
    low, optimizer = train(bfloat16, fused)
    full, _ = train(np.float32, fused)
    starts, grads = problem()
    for i, (p, reference) in enumerate(zip(low, full, strict=True)):
        master = optimizer.state[p]["master_param"]
        assert p.dtype == bfloat16 and master.dtype == np.float32
        # The master is stepped by the float32 kernel's arithmetic on float32 values: the
        # float32 run itself, bit for bit.
        np.testing.assert_array_equal(master.numpy(), reference.numpy())
        # The parameter is the master rounded to nearest even, by the same launch.
        np.testing.assert_array_equal(p.numpy().view(np.uint16),
                                      master.numpy().astype(BF16).view(np.uint16))
        # Against float64. Each step adds an update of about LR to a value in [0.9, 2):
        # the add rounds by at most half a float32 ulp, 2**-24, and the update itself, of
        # magnitude <= LR, carries the roundings of m, v (accumulated over t steps: 3 per
        # step for m's lerp and v's sum, 3 more for beta's float32 forms) and of the
        # sqrt, divisions and products of the step (<= 10): (6t + 10) * 2**-24 relative.
        bound = STEPS * 2.0**-24 + sum(LR * (6 * t + 10) * 2.0**-24 for t in range(1, STEPS + 1))
        expected = adam_float64(starts[i].astype(np.float64), grads[i].astype(np.float64), STEPS)
        assert np.max(np.abs(master.numpy() - expected)) <= bound
        moved = np.abs(p.numpy().astype(np.float64) - starts[i].astype(np.float64))
        assert np.all(moved >= 2.0**-7)  # every element moved at least one bfloat16 unit


def test_without_a_master_the_same_steps_leave_bfloat16_parameters_where_they_were() -> None:
    """The contrast: the same kernel on the parameter itself rounds every update away."""
    starts, grads = problem()
    params = [from_numpy(s) for s in starts]
    m = [from_numpy(np.zeros(n, np.float32)) for n in SIZES]
    v = [from_numpy(np.zeros(n, np.float32)) for n in SIZES]
    for t in range(1, STEPS + 1):
        adam(params, [from_numpy(g) for g in grads], m, v, None, [t] * len(SIZES), lr=LR,
             beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, amsgrad=False,
             maximize=False)
    for p, start in zip(params, starts, strict=True):
        np.testing.assert_array_equal(p.numpy().view(np.uint16), start.view(np.uint16))


@pytest.mark.parametrize("fused", [None, False])
def test_master_weights_false_rounds_every_step_and_keeps_no_copy(fused: bool | None) -> None:
    """The opt-out: the same steps through the class leave every bfloat16 parameter where
    it was (each update is under half a unit), and its state has no master."""
    starts, grads = problem()
    params = [Parameter(from_numpy(s)) for s in starts]
    optimizer = Adam(params, lr=LR, fused=fused, master_weights=False)
    assert optimizer.master_weights is False
    for _ in range(STEPS):
        for p, g in zip(params, grads, strict=True):
            p.grad = from_numpy(g)
        optimizer.step()
    for p, start in zip(params, starts, strict=True):
        np.testing.assert_array_equal(p.numpy().view(np.uint16), start.view(np.uint16))
        assert "master_param" not in optimizer.state[p]
        assert optimizer.state[p]["step"] == STEPS  # it did step
    saved = optimizer.state_dict()
    saved["state"][0]["master_param"] = np.zeros(SIZES[0], np.float32)
    with pytest.raises(ValueError, match="unexpected \\['master_param'\\]"):
        optimizer.load_state_dict(saved)
    with pytest.raises(ValueError, match="invalid master_weights: 1"):
        Adam(params, master_weights=1)  # type: ignore[arg-type]


@pytest.mark.parametrize("cls", [SGD, AdamW])
def test_every_kernel_algorithm_keeps_masters_and_float32_parameters_have_none(cls: Any) -> None:
    half = Parameter(from_numpy(np.ones(9, np.float16)))
    single = Parameter(from_numpy(np.ones(9, np.float32)))
    optimizer = cls([half, single], lr=2.0**-14)  # a quarter of float16's unit below 1
    for _ in range(8):
        half.grad = from_numpy(np.ones(9, np.float16))
        single.grad = from_numpy(np.ones(9, np.float32))
        optimizer.step()
    assert half.dtype == float16
    np.testing.assert_array_equal(optimizer.state[half]["master_param"].numpy(), single.numpy())
    assert "master_param" not in optimizer.state[single]
    assert np.all(half.numpy() < 1)  # 8 quarter units: moved, where rounding each step would not


def test_state_dict_carries_masters_and_a_loaded_one_resumes_bit_for_bit() -> None:
    first, optimizer = train(bfloat16, None, steps=STEPS // 2)
    saved = copy.deepcopy(optimizer.state_dict())
    for i, p in enumerate(first):
        assert saved["state"][i]["master_param"].dtype == np.float32
        assert saved["state"][i]["master_param"].shape == p.shape
    resumed = [Parameter(from_numpy(p.numpy())) for p in first]
    other = Adam(resumed, lr=LR)
    other.load_state_dict(saved)
    _, grads = problem()
    for _ in range(STEPS // 2):
        for params, opt in ((first, optimizer), (resumed, other)):
            for p, g in zip(params, grads, strict=True):
                p.grad = from_numpy(g)
            opt.step()
    after, again = optimizer.state_dict(), other.state_dict()
    for i, (a, b) in enumerate(zip(first, resumed, strict=True)):
        np.testing.assert_array_equal(a.numpy().view(np.uint16), b.numpy().view(np.uint16))
        for key in ("master_param", "exp_avg", "exp_avg_sq"):
            np.testing.assert_array_equal(after["state"][i][key], again["state"][i][key])


def test_a_state_dict_without_masters_loads_and_the_master_starts_from_the_parameter() -> None:
    params, optimizer = train(bfloat16, None, steps=2)
    saved = optimizer.state_dict()
    for entry in saved["state"].values():  # as PyTorch's optimizers save it
        del entry["master_param"]
    optimizer.load_state_dict(saved)
    assert all("master_param" not in optimizer.state[p] for p in params)
    values = [p.numpy().astype(np.float32) for p in params]
    for p in params:
        p.grad = from_numpy(np.zeros(p.shape, BF16))
    optimizer.step()  # a zero gradient: Adam's update is then m_hat / .. from the kept m
    for p, value in zip(params, values, strict=True):
        master = optimizer.state[p]["master_param"].numpy()
        assert np.max(np.abs(master - value)) <= 2 * 2.0**-12  # one step from the parameter


@pytest.mark.parametrize("bad", ["shape", "float32 parameter"])
def test_a_bad_master_in_a_state_dict_changes_nothing(bad: str) -> None:
    params, optimizer = train(bfloat16, None, steps=2)
    single = Parameter(from_numpy(np.ones(3, np.float32)))
    optimizer.add_param_group({"params": [single]})
    single.grad = from_numpy(np.ones(3, np.float32))
    optimizer.step()
    before = copy.deepcopy(optimizer.state_dict())
    values = [p.numpy() for p in params]
    saved = copy.deepcopy(before)
    if bad == "shape":
        saved["state"][1]["master_param"] = np.zeros(5, np.float32)
        match = "master_param.*shape"
    else:
        saved["state"][2]["master_param"] = np.zeros(3, np.float32)
        match = "unexpected \\['master_param'\\]"
    with pytest.raises(ValueError, match=match):
        optimizer.load_state_dict(saved)
    now = optimizer.state_dict()
    for index, entry in before["state"].items():
        for key, value in entry.items():
            np.testing.assert_array_equal(now["state"][index][key], value)
    for p, value in zip(params, values, strict=True):
        np.testing.assert_array_equal(p.numpy().view(np.uint16), value.view(np.uint16))
