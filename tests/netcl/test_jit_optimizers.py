"""The optimizers of issue 35 under netcl.jit: a captured training step replays the eager
one bit for bit while a scheduler moves lr (their kernels' scalars are re-read at replay:
step counts, bias corrections, RAdam's switch to the rectified step, NAdam's mu_product)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_digits

import netcl.autograd as ag
import netcl.optim as no
from netcl.core.tensor import Tensor, from_numpy, manual_seed
from netcl.jit import jit
from netcl.nn import Linear, ReLU, Sequential, cross_entropy

STEPS = 20


def build(kind: str, model: Sequential) -> list[no.Optimizer]:
    if kind == "Muon":  # Muon takes the matrices; the biases go to AdamW, as torch advises
        matrices = [p for p in model.parameters() if len(p.shape) == 2]
        others = [p for p in model.parameters() if len(p.shape) != 2]
        return [no.Muon(matrices, lr=2e-2), no.AdamW(others, lr=1e-2)]
    cls: Callable[..., no.Optimizer] = getattr(no, kind)
    return [cls(model.parameters(), lr=1e-2)]


def run(kind: str, jitted: bool) -> tuple[list[np.ndarray[Any, Any]], list[dict[str, Any]]]:
    manual_seed(0)
    model = Sequential(Linear(None, 64, 32), ReLU(), Linear(None, 32, 10))
    optimizers = build(kind, model)
    schedulers = [no.StepLR(o, step_size=3, gamma=0.7) for o in optimizers]

    def train_step(x: Tensor, y: Tensor) -> Tensor:
        with ag.Tape() as tape:
            loss = cross_entropy(model(x), y)
        tape.backward(loss)
        for optimizer in optimizers:
            optimizer.step()
            optimizer.zero_grad()
        return loss

    step = jit(train_step) if jitted else train_step
    digits = load_digits()
    x = from_numpy((digits.data[:32] / 16.0).astype(np.float32))
    y = from_numpy(digits.target[:32].astype(np.int64))
    for _ in range(STEPS):
        step(x, y)
        for scheduler in schedulers:
            scheduler.step()
    return [p.numpy() for p in model.parameters()], [o.state_dict() for o in optimizers]


@pytest.mark.parametrize(
    "kind", ["NAdam", "RAdam", "Adamax", "Adagrad", "Lion", "Muon", "Adam8bit", "AdamW8bit"])
def test_jitted_steps_equal_eager_bit_for_bit(kind: str) -> None:
    eager_params, eager_states = run(kind, jitted=False)
    jit_params, jit_states = run(kind, jitted=True)
    for a, b in zip(eager_params, jit_params, strict=True):
        np.testing.assert_array_equal(a, b)
    for eager, jitted in zip(eager_states, jit_states, strict=True):
        assert eager["param_groups"] == jitted["param_groups"]
        for index, entry in eager["state"].items():
            for key, value in entry.items():
                np.testing.assert_array_equal(value, jitted["state"][index][key], err_msg=key)
