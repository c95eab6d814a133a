"""Jitted training steps of models built from attention, BatchNorm, GroupNorm, RMSNorm and
average pooling, against the same steps run eagerly: bit for bit, buffers included."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import netcl.autograd as ag
import netcl.core.tensor as nt
import netcl.nn as nn
from netcl.core.tensor import Tensor, from_numpy, ops
from netcl.jit import jit
from netcl.optim import SGD, Adam


class TinyGPT(nn.Module):
    """Embedding, one pre-norm causal block (dropout 0.1: attention weights and feed-forward,
    drawn on the device), RMSNorm and a head: the attention model the jit test steps."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(None, 11, 16)
        self.block = nn.TransformerEncoderLayer(None, 16, 2, 32, dropout=0.1, batch_first=True,
                                                norm_first=True)
        self.norm = nn.RMSNorm(None, 16)
        self.head = nn.Linear(None, 16, 11)

    def forward(self, tokens: Tensor) -> Tensor:
        out: Tensor = self.head(self.norm(self.block(self.embed(tokens), is_causal=True)))
        return out


def test_a_jitted_gpt_step_equals_eager_bit_for_bit() -> None:
    rng = np.random.default_rng(5)
    batches = [from_numpy(rng.integers(0, 11, (2, 9)).astype(np.int64)) for _ in range(4)]

    def train(jitted: bool) -> tuple[list[float], dict[str, np.ndarray[Any, Any]]]:
        nt.manual_seed(0)
        model = TinyGPT()
        optimizer = Adam(model.parameters(), lr=1e-2)

        def step(tokens: Tensor) -> Tensor:
            with ag.Tape() as tape:
                logits = model(tokens[:, :-1])
                loss = nn.cross_entropy(ops.reshape(logits, (-1, 11)),
                                        ops.reshape(tokens[:, 1:], (-1,)))
            tape.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
            return loss

        run = jit(step) if jitted else step
        losses = [float(run(tokens).item()) for tokens in batches]
        return losses, model.state_dict()

    eager_losses, eager_state = train(False)
    jit_losses, jit_state = train(True)
    assert jit_losses == eager_losses
    for name, value in eager_state.items():
        np.testing.assert_array_equal(jit_state[name], value, err_msg=name)


@pytest.mark.parametrize("momentum", [0.1, None])
def test_a_jitted_cnn_step_equals_eager_bit_for_bit_running_statistics_included(
    momentum: float | None,
) -> None:
    rng = np.random.default_rng(9)
    batches = [(from_numpy(rng.standard_normal((4, 2, 6, 6)).astype(np.float32)),
                from_numpy(rng.integers(0, 3, 4).astype(np.int64))) for _ in range(4)]

    def train(jitted: bool) -> tuple[list[float], dict[str, np.ndarray[Any, Any]]]:
        nt.manual_seed(0)
        model = nn.Sequential(
            nn.Conv2d(None, 2, 4, 3, padding=1), nn.BatchNorm2d(None, 4, momentum=momentum),
            nn.ReLU(), nn.AvgPool2d(2), nn.GroupNorm(None, 2, 4), nn.AdaptiveAvgPool2d((2, 1)),
            nn.Flatten(), nn.Linear(None, 8, 3))
        optimizer = SGD(model.parameters(), lr=0.1)

        def step(x: Tensor, y: Tensor) -> Tensor:
            with ag.Tape() as tape:
                loss = nn.cross_entropy(model(x), y)
            tape.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
            return loss

        run = jit(step) if jitted else step
        losses = [float(run(x, y).item()) for x, y in batches]
        return losses, model.state_dict()

    eager_losses, eager_state = train(False)
    jit_losses, jit_state = train(True)
    assert jit_losses == eager_losses
    assert int(jit_state["1.num_batches_tracked"]) == len(batches)
    for name, value in eager_state.items():
        np.testing.assert_array_equal(jit_state[name], value, err_msg=name)
