"""8-bit Adam trains as well as float32-state Adam: the digits MLP and the tiny GPT reach
a final loss within 1% of Adam's (AdamW's for the GPT), same seed, same batches: at most
1.01 times it. (Lower is allowed: quantisation noise moves the trajectory, and the digits
MLP's 8-bit run ends below Adam's.)"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

import netcl.autograd as ag
import netcl.optim as no
from netcl.core.tensor import from_numpy, manual_seed
from netcl.nn import Linear, ReLU, Sequential, cross_entropy

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gpt.py"


def digits_loss(kind: str, steps: int = 100) -> float:
    """Full-batch training loss on the digits after ``steps`` steps of ``kind``."""
    digits = load_digits()
    x = from_numpy((digits.data / 16.0).astype(np.float32))
    y = from_numpy(digits.target.astype(np.int64))
    manual_seed(0)
    model = Sequential(Linear(None, 64, 128), ReLU(), Linear(None, 128, 10))
    optimizer = getattr(no, kind)(model.parameters(), lr=3e-3)
    for _ in range(steps):
        with ag.Tape() as tape:
            loss = cross_entropy(model(x), y)
        tape.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
    with ag.no_grad():
        return float(cross_entropy(model(x), y).item())


def test_the_digits_mlp_ends_within_one_percent_of_adams_loss() -> None:
    adam, eight_bit = digits_loss("Adam"), digits_loss("Adam8bit")
    assert adam < 0.3, adam  # it learned: ln 10 = 2.30 at the start
    assert eight_bit <= 1.01 * adam, (eight_bit, adam)


@pytest.mark.filterwarnings("ignore")
def test_the_tiny_gpt_ends_within_one_percent_of_adamws_loss() -> None:
    spec = importlib.util.spec_from_file_location("gpt_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    setting = ["--steps", "50", "--layers", "1", "--d-model", "32", "--context", "32",
               "--batch", "16", "--lr", "1e-2"]
    adamw = module.main([*setting, "--optimizer", "adamw"])["valid_loss"]
    eight_bit = module.main([*setting, "--optimizer", "adamw8bit"])["valid_loss"]
    assert adamw < 2.6, adamw  # below the unigram model's 2.87: it learned
    assert eight_bit <= 1.01 * adamw, (eight_bit, adamw)
