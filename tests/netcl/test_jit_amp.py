"""A jitted AMP step (autocast + GradScaler + Adam) replays with no host read and equals
the same steps run eagerly bit for bit, overflowed steps (skipped on the device) included;
so does a step of bfloat16 weights through their float32 masters."""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
import pytest

import netcl.autograd as ag
from netcl.amp import GradScaler, autocast
from netcl.core.tensor import Parameter, Tensor, bfloat16, float16, from_numpy, manual_seed
from netcl.jit import CaptureError, jit
from netcl.nn import Linear, ReLU, Sequential, cross_entropy
from netcl.nn.functional import linear, relu
from netcl.optim import SGD, Adagrad, Adam, Adamax, Lion, Muon, RAdam

STEPS = 8
INF_AT = (3, 6)


def batches() -> list[tuple[Tensor, Tensor]]:
    rng = np.random.default_rng(11)
    out = []
    for i in range(STEPS):
        x = rng.standard_normal((16, 12)).astype(np.float32)
        if i in INF_AT:
            x[0, 0] = np.inf
        out.append((from_numpy(x), from_numpy(rng.integers(0, 4, 16).astype(np.int64))))
    return out


def run(jitted: bool, optimizer_class: Any = Adam) -> dict[str, Any]:
    manual_seed(1)
    model = Sequential(Linear(None, 12, 32), ReLU(), Linear(None, 32, 4))
    params = list(model.parameters())
    if optimizer_class is Muon:  # which steps matrices only
        params = [p for p in params if p.ndim == 2]
    optimizer = optimizer_class(params, lr=1e-2)
    scaler = GradScaler(init_scale=2.0**8, growth_interval=2)

    def step(x: Tensor, y: Tensor) -> Tensor:
        with ag.Tape() as tape:
            with autocast(dtype=float16):
                loss = cross_entropy(model(x), y)
            scaled = scaler.scale(loss)
        tape.backward(scaled)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad()
        return loss

    call = jit(step) if jitted else step
    for x, y in batches():
        call(x, y)
    return {"params": [p.numpy() for p in model.parameters()],
            "scale": scaler.get_scale(), "state": optimizer.state_dict()["state"]}


# Every optimizer whose kernel takes the scaler's buffers (its step captures, so a replay
# reads nothing back: see the next test).
@pytest.mark.parametrize("optimizer_class", [Adam, RAdam, Adamax, Adagrad, Lion, Muon])
def test_jitted_amp_step_equals_eager_and_skips_on_replay(optimizer_class: Any) -> None:
    eager, replayed = run(False, optimizer_class), run(True, optimizer_class)
    assert replayed["scale"] == eager["scale"]
    for ours, theirs in zip(replayed["params"], eager["params"], strict=True):
        np.testing.assert_array_equal(ours, theirs)
    for index, entry in eager["state"].items():
        if optimizer_class not in (Lion, Muon):  # which count no steps
            assert replayed["state"][index]["step"] == entry["step"] == STEPS - len(INF_AT)
        for key, value in entry.items():
            np.testing.assert_array_equal(replayed["state"][index][key], value)


def test_capture_refuses_the_host_path_so_adams_has_none() -> None:
    """netcl.jit raises at capture on any host read. Adam's step under the scaler
    captures (test above); SGD's, which reads found_inf on the host as PyTorch's
    non-fused path does, is refused: the check above could fail."""
    manual_seed(1)
    model = Sequential(Linear(None, 12, 4))
    optimizer, scaler = SGD(model.parameters(), lr=0.1), GradScaler()

    @jit
    def step(x: Tensor, y: Tensor) -> None:
        with ag.Tape() as tape:
            scaled = scaler.scale(cross_entropy(model(x), y))
        tape.backward(scaled)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad()

    data = batches()
    with pytest.raises(CaptureError, match="item"):
        for x, y in data[:3]:
            step(x, y)


def run_bfloat16(jitted: bool) -> dict[str, Any]:
    """bfloat16 weights (float32 masters in Adam's state) under bfloat16 autocast: each
    weight's gradient arrives in bfloat16."""
    rng = np.random.default_rng(4)
    shapes = [(32, 12), (32,), (4, 32), (4,)]
    params = [Parameter(from_numpy((rng.standard_normal(s) * 0.3).astype(ml_dtypes.bfloat16)))
              for s in shapes]
    w1, b1, w2, b2 = params
    optimizer = Adam(params, lr=1e-3)

    def step(x: Tensor, y: Tensor) -> Tensor:
        with ag.Tape() as tape, autocast(dtype=bfloat16):
            loss = cross_entropy(linear(relu(linear(x, w1, b1)), w2, b2), y)
        tape.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        return loss

    call = jit(step) if jitted else step
    data = batches()
    for i in range(STEPS):
        x, y = data[(i + 1) % 2]  # finite batches (INF_AT holds neither 1 nor 2)
        call(x, y)
    return {"params": [p.numpy() for p in params], "state": optimizer.state_dict()["state"]}


def test_jitted_step_with_bfloat16_masters_equals_eager() -> None:
    eager, replayed = run_bfloat16(False), run_bfloat16(True)
    for ours, theirs in zip(replayed["params"], eager["params"], strict=True):
        assert ours.dtype == ml_dtypes.bfloat16
        np.testing.assert_array_equal(ours.view(np.uint16), theirs.view(np.uint16))
    for index, entry in eager["state"].items():
        for key in ("master_param", "exp_avg", "exp_avg_sq"):
            np.testing.assert_array_equal(replayed["state"][index][key], entry[key])
